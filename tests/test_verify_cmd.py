"""``urja keygen`` / ``urja agency`` / ``urja verify`` end to end, in process."""
from __future__ import annotations

import argparse
import json

import pytest

from protocols.signing.beckn import frame_message, sign_body
from protocols.signing.detached import sign_object
from protocols.signing.keys import load_keyring
from protocols.signing.ocmf import OcmfReading, build_ocmf
from protocols.signing.receipt import CostBreakdown, MeterIdentity, build_receipt
from tools import agency_cmd, keygen_cmd, verify_cmd

T0 = 1_800_000_000


def run(argv, clock=lambda: T0) -> int:
    parser = argparse.ArgumentParser(prog="urja")
    sub = parser.add_subparsers(dest="command")
    for module in (keygen_cmd, agency_cmd, verify_cmd):
        module.register(sub)
    args = parser.parse_args([str(a) for a in argv])
    return args.func(args, clock=clock)


@pytest.fixture
def net(tmp_path, capsys):
    keys, agency = tmp_path / "keys", tmp_path / "agency"
    assert run(["keygen", "--key-dir", keys, "--subscriber-id", "charger-1.example.in", "--gps", "12.97,77.59",
                "--city", "std:080"]) == 0
    assert run(["agency", "init", "--dir", agency]) == 0
    assert run(["agency", "certify", keys / "subscription-request.json", "--dir", agency,
                "-o", tmp_path / "cert.json"]) == 0
    capsys.readouterr()
    return tmp_path


def receipt_for(net):
    keyring = load_keyring(net / "keys")
    cert = json.loads((net / "cert.json").read_text())
    meter = MeterIdentity("Eastron", "SDM120", "SN1")
    ocmf = build_ocmf(metering_key=keyring.current(T0).metering_key, gateway_id="Urja", gateway_serial="C1",
                      gateway_version="0.1", pagination=1, meter_vendor="Eastron", meter_model="SDM120",
                      meter_serial="SN1", readings=[OcmfReading(T0 + 60, "B", 1000), OcmfReading(T0 + 660, "E", 3000)])
    return build_receipt(
        signer=keyring.signer(T0), certificate=cert, receipt_id="r-9", order_id="o-9",
        acceptance_digest="BLAKE-512=x", meter=meter, start_wh=1000, start_s=T0 + 60, stop_wh=3000, stop_s=T0 + 660,
        tariff_id="t", tariff_digest="d", costs=CostBreakdown(energy_paise=3600, tax_paise=648), paid_paise=5000,
        issued_s=T0 + 700, ocmf=ocmf,
    )


def test_receipt_verifies_and_tampered_one_fails(net, capsys):
    path = net / "receipt.json"
    path.write_text(json.dumps(receipt_for(net), indent=2))
    assert run(["verify", path, "--agency-key", net / "agency" / "agency.pub"]) == 0
    out = capsys.readouterr().out
    assert "VALID" in out and "2000 Wh" in out and "refund due 752 paise" in out and "OCMF verified" in out
    path.write_text(path.read_text().replace('"paid_paise": 5000', '"paid_paise": 9000'))
    assert run(["verify", path, "--agency-key", net / "agency" / "agency.pub"]) == 1
    assert "INVALID" in capsys.readouterr().err


def test_receipt_needs_the_agency_key(net, capsys):
    path = net / "receipt.json"
    path.write_text(json.dumps(receipt_for(net)))
    assert run(["verify", path]) == 1
    assert "agency public key" in capsys.readouterr().err


def test_signed_message_file(net, capsys):
    keyring = load_keyring(net / "keys")
    body = b'{"context":{"action":"on_status"},"message":{}}'
    auth = sign_body(body, keyring.signer(T0), created_s=T0, expires_s=T0 + 30)
    path = net / "msg.txt"
    path.write_bytes(frame_message(body, auth))
    args = ["verify", path, "--cert", net / "cert.json", "--agency-key", net / "agency" / "agency.json"]
    assert run(args) == 0
    assert "signed message from charger-1.example.in" in capsys.readouterr().out
    assert run(args, clock=lambda: T0 + 31) == 1
    assert "expired" in capsys.readouterr().err
    assert run(args + ["--at", "2027-01-15T08:00:10Z"], clock=lambda: T0 + 999) == 0
    path.write_bytes(frame_message(body.replace(b"on_status", b"on_cancel"), auth))
    assert run(args) == 1
    assert "signature-invalid" in capsys.readouterr().err


def test_offer_verified_with_key_dir_or_cert(net, capsys):
    keyring = load_keyring(net / "keys")
    offer = sign_object({"kind": "urja.offer", "offer_id": "o1", "price_paise_per_kwh": 1800}, keyring.signer(T0))
    path = net / "offer.json"
    path.write_text(json.dumps(offer))
    assert run(["verify", path, "--key-dir", net / "keys"]) == 0
    assert run(["verify", path, "--cert", net / "cert.json", "--agency-key", net / "agency" / "agency.pub"]) == 0
    assert run(["verify", path]) == 1
    assert "vouches" in capsys.readouterr().err


def test_config_file_supplies_trust(net, capsys):
    (net / "urja.toml").write_text('[identity]\nagency_key = "agency/agency.pub"\ncertificates = ["cert.json"]\n')
    (net / "receipt.json").write_text(json.dumps(receipt_for(net)))
    assert run(["verify", net / "receipt.json", "--config", net / "urja.toml"]) == 0
    (net / "urja.toml").write_text('[identity]\nagency_kee = "agency/agency.pub"\n')
    from drivers.configfile import ConfigError

    with pytest.raises(ConfigError, match="identity.agency_kee"):
        run(["verify", net / "receipt.json", "--config", net / "urja.toml"])


def test_ocmf_file(net, capsys):
    receipt = receipt_for(net)
    (net / "meter.ocmf").write_text(receipt["ocmf"])
    assert run(["verify", net / "meter.ocmf", "--key-dir", net / "keys"]) == 0
    assert "B 1000 Wh, E 3000 Wh" in capsys.readouterr().out


def test_certificate_and_revocation(net, capsys):
    pub = net / "agency" / "agency.pub"
    assert run(["verify", net / "cert.json", "--agency-key", pub]) == 0
    assert run(["agency", "revoke", "charger-1.example.in", "--dir", net / "agency"]) == 0
    rev = net / "agency" / "revocations.json"
    assert run(["verify", rev, "--agency-key", pub]) == 0
    assert run(["verify", net / "cert.json", "--agency-key", pub, "--revocations", rev]) == 1
    assert "revoked" in capsys.readouterr().err


@pytest.mark.parametrize("content", [b"", b"[]", b"{not json", b'{"a":1,"a":2}', b"x" * 70000])
def test_garbage_files_refused_cleanly(net, capsys, content):
    path = net / "junk"
    path.write_bytes(content)
    assert run(["verify", path, "--key-dir", net / "keys"]) == 1
    assert "INVALID" in capsys.readouterr().err


def test_missing_file(net, capsys):
    assert run(["verify", net / "absent.json"]) == 1
    assert "No such file" in capsys.readouterr().err


def test_keygen_rotate_cli(net, capsys):
    keys = net / "keys"
    assert run(["keygen", "--key-dir", keys, "--rotate", "--old-valid-until", "2027-01-20T00:00:00Z"],
               clock=lambda: T0 + 100) == 0
    out = capsys.readouterr().out
    assert out.count("  key ") == 2 and "2027-01-20T00:00:00Z" in out
    assert run(["keygen", "--key-dir", keys, "--rotate"]) == 2
    assert run(["keygen", "--key-dir", keys, "--subscriber-id", "x"]) == 1
    assert "--rotate" in capsys.readouterr().err


def test_certify_fills_in_place(net, tmp_path, capsys):
    keys = tmp_path / "k2"
    assert run(["keygen", "--key-dir", keys, "--subscriber-id", "charger-2.example.in"]) == 0
    assert run(["agency", "certify", keys / "subscription-request.json", "--dir", net / "agency"]) == 1
    assert "--city" in capsys.readouterr().err
    assert run(["agency", "certify", keys / "subscription-request.json", "--dir", net / "agency",
                "--city", "std:080", "--gps", "12.9,77.6"]) == 0
    assert json.loads(capsys.readouterr().out)["gps"] == "12.9,77.6"


def test_agency_certify_bad_request(net, capsys):
    (net / "req.json").write_text('{"subscriber_id": "x"}')
    assert run(["agency", "certify", net / "req.json", "--dir", net / "agency"]) == 1
    assert "req.json" in capsys.readouterr().err
