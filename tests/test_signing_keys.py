"""The charger's keyring: file modes, refusal of unsafe files, rotation, no secrets in reprs."""
from __future__ import annotations

import json
import os
import stat

import pytest

from protocols.signing.beckn import Verifier, sign_body
from protocols.signing.errors import KeyringError, SignatureError
from protocols.signing.keys import (
    KEYRING_FILE,
    REQUEST_FILE,
    Profile,
    create_keyring,
    load_keyring,
    rotate_keyring,
)

T0 = 1_800_000_000
DAY = 86400


def ids(*names):
    it = iter(names)
    return lambda: next(it)


@pytest.fixture
def keyring(tmp_path):
    return create_keyring(
        tmp_path / "keys", subscriber_id="charger-1.example.in", valid_days=30, now_s=T0,
        profile=Profile(city="std:080", gps="12.97,77.59"), new_key_id=ids("k1"),
    )


def test_private_files_are_0600_and_directory_0700(keyring):
    key_dir = keyring.key_dir
    assert stat.S_IMODE(os.stat(key_dir).st_mode) == 0o700
    private = sorted(p.name for p in key_dir.glob("*.pem"))
    assert private == ["k1.encryption.pem", "k1.metering.pem", "k1.signing.pem"]
    for name in private:
        assert stat.S_IMODE(os.stat(key_dir / name).st_mode) == 0o600


def test_private_files_are_0600_even_with_permissive_umask(tmp_path):
    old = os.umask(0)
    try:
        kr = create_keyring(tmp_path / "k", subscriber_id="c", valid_days=1, now_s=T0, new_key_id=ids("k1"))
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(kr.key_dir / "k1.signing.pem").st_mode) == 0o600


def test_public_description_and_request(keyring):
    doc = json.loads((keyring.key_dir / KEYRING_FILE).read_text())
    assert doc["keys"][0]["key_id"] == "k1"
    assert doc["keys"][0]["valid_until"] == "2027-02-14T08:00:00Z"
    request = json.loads((keyring.key_dir / REQUEST_FILE).read_text())
    assert request["subscriber_id"] == "charger-1.example.in" and request["type"] == "BPP"
    assert request["unique_key_id"] == "k1" and request["gps"] == "12.97,77.59"
    text = "".join(p.read_text() for p in keyring.key_dir.glob("*.json"))
    assert "PRIVATE" not in text


def test_load_round_trip(keyring):
    loaded = load_keyring(keyring.key_dir)
    assert loaded.subscriber_id == "charger-1.example.in"
    assert loaded.entries[0].signing_public_key == keyring.entries[0].signing_public_key


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o660, 0o644])
def test_load_refuses_group_or_world_readable_private_key(keyring, mode):
    path = keyring.key_dir / "k1.metering.pem"
    os.chmod(path, mode)
    with pytest.raises(KeyringError) as info:
        load_keyring(keyring.key_dir)
    assert "k1.metering.pem" in str(info.value) and "0600" in str(info.value)


def test_load_refuses_symlinked_private_key(keyring, tmp_path):
    path = keyring.key_dir / "k1.signing.pem"
    target = tmp_path / "elsewhere.pem"
    os.rename(path, target)
    os.symlink(target, path)
    with pytest.raises(KeyringError, match="regular file"):
        load_keyring(keyring.key_dir)


def test_load_refuses_mismatched_public_key(keyring):
    path = keyring.key_dir / KEYRING_FILE
    doc = json.loads(path.read_text())
    doc["keys"][0]["signing_public_key"] = "A" * 43 + "="
    path.write_text(json.dumps(doc))
    with pytest.raises(KeyringError, match="does not match"):
        load_keyring(keyring.key_dir)


def test_create_refuses_existing_keyring(keyring):
    with pytest.raises(KeyringError, match="--rotate"):
        create_keyring(keyring.key_dir, subscriber_id="x", valid_days=1, now_s=T0)


def test_missing_keyring_names_the_fix(tmp_path):
    with pytest.raises(KeyringError, match="urja keygen"):
        load_keyring(tmp_path)


def test_unreadable_keyring_file_is_a_keyring_error(tmp_path):
    (tmp_path / "keyring.json").mkdir()  # once escaped as IsADirectoryError
    with pytest.raises(KeyringError, match="cannot be read"):
        load_keyring(tmp_path)


def test_reprs_hold_no_key_material(keyring):
    entry = keyring.entries[0]
    pem = (keyring.key_dir / "k1.signing.pem").read_text().splitlines()[1]
    texts = [repr(keyring), repr(entry), repr(keyring.signer(T0)), str(keyring.signer(T0).__dict__.keys())]
    for text in texts:
        assert pem not in text and "PRIVATE" not in text
    assert "signing_key" not in repr(entry)


async def test_rotation_signs_with_newest_and_verifies_old_until_cutoff(keyring):
    old_signer = keyring.signer(T0)
    rotated = rotate_keyring(
        keyring.key_dir, valid_days=30, old_valid_until_s=T0 + 2 * DAY, now_s=T0 + DAY, new_key_id=ids("k2")
    )
    assert rotated.signer(T0 + DAY).key_id == "k2"
    assert rotated.signer(T0 + DAY - 1).key_id == "k1"
    reloaded = load_keyring(keyring.key_dir)
    assert [(e.key_id, e.valid_until_s) for e in reloaded.entries] == [("k1", T0 + 2 * DAY), ("k2", T0 + 31 * DAY)]
    body = b"{}"
    old_header = sign_body(body, old_signer, created_s=T0 + DAY, expires_s=T0 + DAY + 60)
    ok = Verifier(lookup=reloaded.lookup(), clock=lambda: T0 + DAY + 1)
    assert (await ok.verify(old_header, body)).key_id == "k1"
    late_header = sign_body(body, old_signer, created_s=T0 + 2 * DAY, expires_s=T0 + 2 * DAY + 60)
    late = Verifier(lookup=reloaded.lookup(), clock=lambda: T0 + 2 * DAY + 1)
    with pytest.raises(SignatureError) as info:
        await late.verify(late_header, body)
    assert info.value.reason == "key-not-valid"
    request = json.loads((keyring.key_dir / REQUEST_FILE).read_text())
    assert request["unique_key_id"] == "k2"


def test_no_valid_key_is_an_error_not_an_old_key(keyring):
    with pytest.raises(KeyringError, match="no key is valid"):
        keyring.signer(T0 + 31 * DAY)


def test_rotate_refuses_duplicate_key_id(keyring):
    with pytest.raises(KeyringError, match="already"):
        rotate_keyring(keyring.key_dir, valid_days=1, old_valid_until_s=T0, now_s=T0, new_key_id=ids("k1"))


@pytest.mark.parametrize("bad", ["", "a|b", 'a"b', "a b"])
def test_unusable_subscriber_id_refused(tmp_path, bad):
    with pytest.raises(KeyringError):
        create_keyring(tmp_path / "k", subscriber_id=bad, valid_days=1, now_s=T0)
