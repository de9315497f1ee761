"""``urja provision``: a maker's batch file becomes one folder per controller that the agent accepts."""
from __future__ import annotations

import json
import random
import stat

import pytest

from agent.config import load_config
from agent.owner_access import verify
from tools.cli import main

BATCH = """site_id,name,lat,lon,city,upi_vpa
in.blr.maker.0001,Unit 1,12.9352,77.6245,Bengaluru,owner1@okaxis
in.blr.maker.0002,Unit 2,12.9716,77.5946,,owner2@okaxis
"""


@pytest.fixture
def agency(tmp_path):
    from tools.provision import ensure_agency

    folder = tmp_path / "agency"
    ensure_agency(folder)
    return folder


def provision(tmp_path, agency, *extra, batch=BATCH):
    (tmp_path / "units.csv").write_text(batch)
    return main(["provision", "--out", str(tmp_path / "out"), "--batch", str(tmp_path / "units.csv"),
                 "--agency-dir", str(agency), "--auth", "free_vend", "--city", "Bengaluru", *extra])


def test_each_unit_of_a_batch_gets_keys_a_certificate_a_valid_config_and_a_label(tmp_path, agency, capsys):
    assert provision(tmp_path, agency) == 0
    for n, vpa in (("0001", "owner1@okaxis"), ("0002", "owner2@okaxis")):
        folder = tmp_path / "out" / f"in.blr.maker.{n}"
        config = load_config(folder / "urja.toml")
        assert config.site_id == f"in.blr.maker.{n}" and config.upi_vpa == vpa and config.auth_mode == "free_vend"
        request = json.loads((folder / "keys" / "certificate-request.json").read_text())
        cert = json.loads((folder / "keys" / "certificate.json").read_text())
        assert request["subscriber_id"] == config.site_id and request["metering_public_key"]
        assert json.dumps(cert).count(request["metering_public_key"]) == 1
        private = [p for p in (folder / "keys").iterdir() if p.suffix == ".pem"]
        assert private and all(stat.S_IMODE(p.stat().st_mode) == 0o600 for p in private)
        labels = tmp_path / "out" / "labels"
        assert f"ID: in.blr.maker.{n}" in (labels / f"in.blr.maker.{n}.txt").read_text()
        assert (labels / f"in.blr.maker.{n}.svg").read_text().startswith("<?xml") and \
            (labels / f"in.blr.maker.{n}.png").read_bytes()[:4] == b"\x89PNG"
        assert not [p for p in folder.rglob("*") if p.suffix in (".svg", ".png") or "label" in p.name]


def test_the_setup_code_on_the_label_opens_the_owner_access_file_and_only_its_hash_is_kept(tmp_path, agency):
    assert provision(tmp_path, agency) == 0
    folder = tmp_path / "out" / "in.blr.maker.0001"
    code = (tmp_path / "out" / "labels" / "in.blr.maker.0001.txt").read_text().split("Setup code: ")[1].split()[0].replace("-", "")
    access = folder / "owner-access.json"
    assert stat.S_IMODE(access.stat().st_mode) == 0o600 and code not in access.read_text()
    assert verify(access, role="owner", password_or_code=code)
    assert not verify(access, role="owner", password_or_code="WRONGCODE0")


def test_the_qr_code_carries_the_chargers_id_and_setup_code(tmp_path):
    import segno

    from tools.unit_provision import setup_payload, write_label

    write_label(tmp_path, "in.blr.maker.0009", "Unit 9", "ABCDEFGHJK")
    payload = setup_payload("in.blr.maker.0009", "ABCDEFGHJK")
    assert payload == "URJA-SETUP:in.blr.maker.0009:ABCDEFGHJK"
    expected = segno.make(payload, error="m")
    expected.save(str(tmp_path / "expected.svg"), scale=4, border=2)
    assert (tmp_path / "in.blr.maker.0009.svg").read_text() == (tmp_path / "expected.svg").read_text()


def test_running_a_batch_again_keeps_the_units_already_done(tmp_path, agency, capsys):
    assert provision(tmp_path, agency) == 0
    key = (tmp_path / "out" / "in.blr.maker.0001" / "keys" / "keyring.json").read_text()
    access = (tmp_path / "out" / "in.blr.maker.0001" / "owner-access.json").read_text()
    assert provision(tmp_path, agency) == 0
    assert "already provisioned" in capsys.readouterr().out
    assert (tmp_path / "out" / "in.blr.maker.0001" / "keys" / "keyring.json").read_text() == key
    assert (tmp_path / "out" / "in.blr.maker.0001" / "owner-access.json").read_text() == access


@pytest.mark.parametrize("batch, named", [
    ("site_id,name,lat,lon\nin.a.1,A,12.9,77.6\nin.a.2,B,95,77.6\n", "lat: row 3: 95.0 out of range"),
    ("site_id,name,lat,lon\nin.a.1,,12.9,77.6\n", "name: row 2: missing"),
    ("site_id,name,lat,lon,colour\nin.a.1,A,12.9,77.6,red\n", "colour: row 2: unknown column"),
    ("site_id,name,lat,lon\nin.a.1,A,12.9,77.6\nin.a.1,B,12.9,77.6\n", "row 3: in.a.1 already in row 2"),
    ('site_id,name,lat,lon\nin.a.1,"A"" = 1",12.9,77.6\n', "name: row 2: quotes"),
])
def test_a_bad_row_is_named_in_one_line_and_no_unit_is_written(tmp_path, agency, capsys, batch, named):
    assert provision(tmp_path, agency, batch=batch) == 2
    err = capsys.readouterr().err
    assert named in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "out").exists()


def test_a_template_placeholder_without_a_value_is_named(tmp_path, agency, capsys):
    template = tmp_path / "t.toml.in"
    template.write_text('[site]\nid = "$site_id"\nname = "$serial_number"\n')
    assert provision(tmp_path, agency, "--template", str(template)) == 2
    assert "serial_number" in capsys.readouterr().err


def test_a_single_unit_from_flags_with_the_networks_agency_key_gets_a_request_and_no_certificate(tmp_path, agency):
    assert main(["provision", "--out", str(tmp_path / "out"), "--site-id", "in.one.1", "--name", "One", "--lat", "12.9",
                 "--lon", "77.6", "--city", "Pune", "--agency-key", str(agency / "agency.pub")]) == 0
    folder = tmp_path / "out" / "in.one.1"
    assert (folder / "keys" / "certificate-request.json").exists() and not (folder / "keys" / "certificate.json").exists()
    assert (folder / "agency.pub").read_bytes() == (agency / "agency.pub").read_bytes()
    assert load_config(folder / "urja.toml").auth_mode == "network"


def test_the_setup_code_comes_from_the_given_randomness(tmp_path):
    from agent.owner_access import create_setup_code

    a = create_setup_code(tmp_path / "a.json", rng=random.Random(7))
    b = create_setup_code(tmp_path / "b.json", rng=random.Random(7))
    assert a == b and len(a) >= 10  # at least 10 characters of the code alphabet
