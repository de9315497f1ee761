"""The owner's and technician's secrets: scrypt hashes in a 0600 file, a setup code good once."""
from __future__ import annotations

import json
import random
import stat

import pytest

from agent import owner_access
from agent.owner_access import AccessError, create_setup_code, set_password, verify


def test_a_setup_code_lets_the_owner_in_and_only_its_hash_is_stored(tmp_path):
    path = tmp_path / "owner-access.json"
    code = create_setup_code(path, rng=random.Random(1))
    assert len(code) == owner_access.SETUP_CODE_CHARS and set(code) <= set(owner_access.SETUP_CODE_ALPHABET)
    text = path.read_text()
    assert code not in text and "scrypt" in text
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert verify(path, role="owner", password_or_code=code)
    assert verify(path, role="owner", password_or_code=code.lower())  # typed off a label
    assert not verify(path, role="technician", password_or_code=code)
    assert not verify(path, role="owner", password_or_code=code[:-1] + ("A" if code[-1] != "A" else "B"))


def test_setting_the_owners_password_uses_up_the_setup_code(tmp_path):
    path = tmp_path / "access.json"
    code = create_setup_code(path, rng=random.Random(2))
    set_password(path, role="owner", password="a long secret")
    assert verify(path, role="owner", password_or_code="a long secret")
    assert not verify(path, role="owner", password_or_code=code)
    assert "a long secret" not in path.read_text()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_a_new_setup_code_keeps_the_password_the_owner_set(tmp_path):
    path = tmp_path / "access.json"
    set_password(path, role="owner", password="first password")
    code = create_setup_code(path)
    assert verify(path, role="owner", password_or_code="first password")
    assert verify(path, role="owner", password_or_code=code)


def test_each_hash_has_its_own_salt(tmp_path):
    path = tmp_path / "access.json"
    set_password(path, role="owner", password="same password")
    set_password(path, role="technician", password="same password")
    roles = json.loads(path.read_text())["roles"]
    assert roles["owner"]["password"]["scrypt"]["salt"] != roles["technician"]["password"]["scrypt"]["salt"]
    assert roles["owner"]["password"]["scrypt"]["hash"] != roles["technician"]["password"]["scrypt"]["hash"]


def test_a_short_password_or_unknown_role_is_refused_and_changes_nothing(tmp_path):
    path = tmp_path / "access.json"
    set_password(path, role="owner", password="good password")
    before = path.read_text()
    with pytest.raises(AccessError, match="password: must be at least 8"):
        set_password(path, role="owner", password="short")
    with pytest.raises(AccessError, match="role: unknown 'admin'"):
        set_password(path, role="admin", password="good password")
    assert path.read_text() == before
    assert not verify(path, role="admin", password_or_code="good password")
    assert not verify(path, role="owner", password_or_code="")


def test_a_damaged_access_file_is_named_in_one_line(tmp_path):
    path = tmp_path / "access.json"
    path.write_text("{not json")
    with pytest.raises(AccessError, match="access.json: not a readable access file"):
        verify(path, role="owner", password_or_code="anything")


def test_no_file_means_nobody_gets_in(tmp_path):
    assert not verify(tmp_path / "missing.json", role="owner", password_or_code="anything at all")
