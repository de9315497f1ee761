"""Agency certificates: charger -> agency verified offline with only the agency's public key."""
from __future__ import annotations

import json

import pytest

from protocols.signing.agency import (
    REVOCATIONS_FILE,
    CertificateLookup,
    certify,
    init_agency,
    load_agency,
    load_revocations,
    read_agency_public_key,
    revoke,
    verify_certificate,
)
from protocols.signing.beckn import Verifier, sign_body
from protocols.signing.detached import sign_object
from protocols.signing.errors import KeyringError, SignatureError
from protocols.signing.keys import Profile, create_keyring

T0 = 1_800_000_000
DAY = 86400


@pytest.fixture
def agency(tmp_path):
    return init_agency(tmp_path / "agency", agency_id="nodal.example.in", new_key_id=lambda: "a1")


@pytest.fixture
def keyring(tmp_path):
    return create_keyring(
        tmp_path / "keys", subscriber_id="charger-1.example.in", valid_days=365, now_s=T0,
        profile=Profile(city="std:080", gps="12.9716,77.5946"), new_key_id=lambda: "k1",
    )


@pytest.fixture
def cert(agency, keyring):
    return certify(keyring.subscription_request(), agency, valid_days=90, now_s=T0)


def test_certificate_verifies_with_only_the_agency_public_key(agency, cert, tmp_path):
    pub = read_agency_public_key(tmp_path / "agency" / "agency.pub")
    assert pub == read_agency_public_key(tmp_path / "agency" / "agency.json") == agency.public_key
    checked = verify_certificate(json.loads(json.dumps(cert)), pub, now_s=T0 + DAY)
    assert (checked.key.subscriber_id, checked.key.key_id) == ("charger-1.example.in", "k1")
    assert checked.key.valid_until_s == T0 + 90 * DAY
    assert checked.agency_key_id == ("nodal.example.in", "a1")
    assert cert["status"] == "SUBSCRIBED" and cert["type"] == "BPP" and cert["gps"] == "12.9716,77.5946"


def test_certificate_never_outlives_the_key(agency, keyring):
    cert = certify(keyring.subscription_request(), agency, valid_days=1000, now_s=T0)
    assert cert["valid_until"] == keyring.subscription_request()["valid_until"]


@pytest.mark.parametrize(
    "when, reason", [(T0 - 1, "not-yet-valid"), (T0 + 90 * DAY, "expired")]
)
def test_outside_validity_refused(agency, cert, when, reason):
    with pytest.raises(SignatureError) as info:
        verify_certificate(cert, agency.public_key, now_s=when)
    assert info.value.reason == reason


def test_forged_or_altered_certificate_refused(agency, cert, tmp_path):
    altered = dict(cert, gps="28.61,77.20")
    with pytest.raises(SignatureError) as info:
        verify_certificate(altered, agency.public_key, now_s=T0)
    assert info.value.reason == "signature-invalid"
    rogue = init_agency(tmp_path / "rogue", new_key_id=lambda: "a1")
    with pytest.raises(SignatureError):
        verify_certificate(cert, rogue.public_key, now_s=T0)


def test_wrong_type_refused(agency, keyring):
    request = dict(keyring.subscription_request(), type="BAP")
    with pytest.raises(SignatureError) as info:
        certify(request, agency, valid_days=1, now_s=T0)
    assert info.value.reason == "wrong-type"
    forged = sign_object(dict(certify(keyring.subscription_request(), agency, valid_days=1, now_s=T0), type="BG"),
                         agency.signer)
    with pytest.raises(SignatureError) as info:
        verify_certificate(forged, agency.public_key, now_s=T0)
    assert info.value.reason == "wrong-type"


@pytest.mark.parametrize(
    "field, value",
    [("gps", "north"), ("signing_public_key", "abc"), ("subscriber_id", ""), ("metering_public_key", "00ff"),
     ("encr_public_key", 5)],
)
def test_bad_requests_refused_with_field_named(agency, keyring, field, value):
    request = dict(keyring.subscription_request(), **{field: value})
    with pytest.raises(SignatureError) as info:
        certify(request, agency, valid_days=1, now_s=T0)
    assert field in str(info.value)


def test_revocation_list(agency, cert):
    doc, changed = revoke(agency, "k1", now_s=T0 + 10)
    assert changed and doc["sequence"] == 1 and doc["issued_at"] == "2027-01-15T08:00:10Z"
    again, changed = revoke(agency, "k1", now_s=T0 + 20)
    assert not changed and again["sequence"] == 1
    doc, _ = revoke(agency, "someone-else", now_s=T0 + 30)
    assert doc["sequence"] == 2 and [e["id"] for e in doc["revoked"]] == ["k1", "someone-else"]
    on_disk = load_revocations(agency.agency_dir)
    with pytest.raises(SignatureError) as info:
        verify_certificate(cert, agency.public_key, on_disk, now_s=T0 + DAY)
    assert info.value.reason == "revoked"


def test_tampered_revocation_list_refused(agency, cert):
    doc, _ = revoke(agency, "k1", now_s=T0)
    doc = dict(doc, revoked=[])
    with pytest.raises(SignatureError):
        verify_certificate(cert, agency.public_key, doc, now_s=T0)


def test_revoke_refuses_to_extend_a_tampered_list(agency):
    revoke(agency, "a", now_s=T0)
    path = agency.agency_dir / REVOCATIONS_FILE
    doc = json.loads(path.read_text())
    doc["revoked"] = []
    path.write_text(json.dumps(doc))
    with pytest.raises(SignatureError):
        revoke(agency, "b", now_s=T0)


async def test_certificate_lookup_drives_message_verification(agency, keyring, cert):
    clock = lambda: T0 + DAY  # noqa: E731
    lookup = CertificateLookup(agency_public_key=agency.public_key, clock=clock)
    lookup.add(cert)
    body = b'{"message":{}}'
    header = sign_body(body, keyring.signer(T0 + DAY), created_s=T0 + DAY, expires_s=T0 + DAY + 30)
    verifier = Verifier(lookup=lookup, clock=clock)
    assert (await verifier.verify(header, body)).subscriber_id == "charger-1.example.in"
    first, _ = revoke(agency, "charger-1.example.in", now_s=T0)
    lookup.set_revocations(first)
    with pytest.raises(SignatureError) as info:
        await verifier.verify(header, body)
    assert info.value.reason == "key-unknown"
    with pytest.raises(SignatureError) as info:
        lookup.set_revocations(first)
    assert info.value.reason == "revocation-stale"


def test_agency_key_file_mode_checked(agency):
    (agency.agency_dir / "agency.signing.pem").chmod(0o644)
    with pytest.raises(KeyringError, match="0600"):
        load_agency(agency.agency_dir)


def test_init_refuses_to_replace_agency(agency):
    with pytest.raises(KeyringError, match="refusing"):
        init_agency(agency.agency_dir)


def test_unreadable_agency_key_named(tmp_path):
    (tmp_path / "pub").write_text("not base64!")
    with pytest.raises(SignatureError) as info:
        read_agency_public_key(tmp_path / "pub")
    assert info.value.reason == "agency-key-unreadable" and "pub" in str(info.value)


# --------------------------------------------------------------------------- apps (BAP)


@pytest.fixture
def app_keyring(tmp_path):
    return create_keyring(
        tmp_path / "app-keys", subscriber_id="app.example.in", valid_days=365, now_s=T0,
        profile=Profile(type="BAP"), new_key_id=lambda: "app-k1",
    )


def test_app_certificate_is_what_a_charger_accepts_from_a_buyer(agency, app_keyring):
    from protocols.beckn.trust import verify_sender_certificate

    cert = certify(app_keyring.subscription_request(), agency, valid_days=30, now_s=T0, kind="BAP")
    assert cert["type"] == "BAP" and cert["status"] == "SUBSCRIBED"
    assert "metering_public_key" not in cert and "gps" not in cert  # an app has no meter and no place
    key = verify_sender_certificate(json.loads(json.dumps(cert)), agency.public_key, now_s=T0 + DAY)
    assert (key.subscriber_id, key.key_id, key.valid_until_s) == ("app.example.in", "app-k1", T0 + 30 * DAY)
    # a node looking for chargers must not mistake an app for one
    with pytest.raises(SignatureError) as info:
        verify_certificate(cert, agency.public_key, now_s=T0 + DAY)
    assert info.value.reason == "wrong-type"


def test_certify_kind_must_match_the_request(agency, app_keyring, keyring):
    with pytest.raises(SignatureError) as info:
        certify(app_keyring.subscription_request(), agency, valid_days=1, now_s=T0)
    assert info.value.reason == "wrong-type" and "'BAP'" in str(info.value)
    with pytest.raises(SignatureError) as info:
        certify(keyring.subscription_request(), agency, valid_days=1, now_s=T0, kind="BAP")
    assert info.value.reason == "wrong-type"
    with pytest.raises(SignatureError) as info:
        certify(app_keyring.subscription_request(), agency, valid_days=1, now_s=T0, kind="BG")
    assert info.value.reason == "wrong-type" and "BPP, BAP" in str(info.value)


@pytest.mark.parametrize("field, value", [("signing_public_key", "abc"), ("subscriber_id", "a b"),
                                          ("gps", "north"), ("domain", 7)])
def test_bad_app_requests_refused_with_field_named(agency, app_keyring, field, value):
    request = dict(app_keyring.subscription_request(), **{field: value})
    with pytest.raises(SignatureError) as info:
        certify(request, agency, valid_days=1, now_s=T0, kind="BAP")
    assert field in str(info.value)


def _cli(argv, clock=lambda: T0) -> int:
    import argparse

    from tools import agency_cmd, keygen_cmd

    parser = argparse.ArgumentParser(prog="urja")
    sub = parser.add_subparsers(dest="command")
    for module in (keygen_cmd, agency_cmd):
        module.register(sub)
    args = parser.parse_args([str(a) for a in argv])
    return args.func(args, clock=clock)


def test_agency_certify_cli_type_bap(tmp_path, capsys):
    from protocols.beckn.trust import verify_sender_certificate

    keys, agency_dir = tmp_path / "app-keys", tmp_path / "agency"
    assert _cli(["keygen", "--key-dir", keys, "--subscriber-id", "app.example.in"]) == 0
    assert _cli(["agency", "init", "--dir", agency_dir]) == 0
    request = keys / "subscription-request.json"
    # keygen writes a charger's request (no place): as a charger it is refused, naming the field
    assert _cli(["agency", "certify", request, "--dir", agency_dir]) == 1
    assert "city" in capsys.readouterr().err
    assert _cli(["agency", "certify", request, "--dir", agency_dir, "--type", "BAP", "-o", tmp_path / "app.json"]) == 0
    assert "(BAP)" in capsys.readouterr().out
    cert = json.loads((tmp_path / "app.json").read_text())
    assert cert["type"] == "BAP" and "metering_public_key" not in cert
    key = verify_sender_certificate(cert, read_agency_public_key(agency_dir / "agency.pub"), now_s=T0 + 60)
    assert key.subscriber_id == "app.example.in"
    # a request that says BAP is not silently certified as a charger
    (tmp_path / "bap-request.json").write_text(json.dumps(dict(json.loads(request.read_text()), type="BAP",
                                                                city="std:080", gps="12.9,77.6")))
    assert _cli(["agency", "certify", tmp_path / "bap-request.json", "--dir", agency_dir]) == 1
    assert "--type BAP" in capsys.readouterr().err


def test_an_unreadable_revocation_list_is_an_error_that_names_the_file(agency):
    revoke(agency, "a", now_s=T0)
    path = agency.agency_dir / REVOCATIONS_FILE
    path.write_text("{not json")
    with pytest.raises(SignatureError) as info:
        load_revocations(agency.agency_dir)
    assert str(path) in str(info.value) and info.value.reason == "json-invalid"
    # Revoking again must not start a fresh list over the broken one (that would un-revoke "a").
    with pytest.raises(SignatureError):
        revoke(agency, "b", now_s=T0 + 1)
    assert path.read_text() == "{not json"


def test_a_site_loads_its_revocation_list_checked_and_names_a_bad_one(agency, tmp_path):
    from types import SimpleNamespace

    from agent.identity import load_revocations
    from drivers.configfile import ConfigError

    doc, _ = revoke(agency, "bad.app", now_s=T0)
    path = tmp_path / "revocations.json"
    path.write_text(json.dumps(doc))

    def site(revocations, agency_key=agency.public_key):
        return (SimpleNamespace(revocations=revocations, path="/etc/urja/urja.toml"),
                SimpleNamespace(agency_public_key=agency_key))

    assert load_revocations(*site(None)) is None
    assert load_revocations(*site(str(path)))["revoked"][0]["id"] == "bad.app"
    forged = dict(doc, revoked=[])  # the agency's signature no longer covers it
    path.write_text(json.dumps(forged))
    missing = tmp_path / "missing.json"
    for rt, named in ((site(str(path)), path), (site(str(missing)), missing), (site(str(path), agency_key=None), path)):
        with pytest.raises(ConfigError) as info:
            load_revocations(*rt)
        assert info.value.key == "identity.revocations" and str(named) in str(info.value)
