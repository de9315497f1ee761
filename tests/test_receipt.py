"""Signed receipts with OCMF meter data: the whole chain agency -> certificate -> receipt -> meter."""
from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec

from protocols.signing.agency import certify, init_agency, revoke
from protocols.signing.beckn import body_digest
from protocols.signing.detached import sign_object
from protocols.signing.errors import SignatureError
from protocols.signing.keys import Profile, create_keyring
from protocols.signing.ocmf import (
    OcmfReading,
    build_ocmf,
    format_tm,
    parse_tm,
    transaction_span,
    verify_ocmf,
)
from protocols.signing.receipt import CostBreakdown, MeterIdentity, build_receipt, verify_receipt

T0 = 1_800_000_000
DAY = 86400
METER = MeterIdentity(vendor="Eastron", model="SDM120CT-M", serial="SN0042")


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    base = tmp_path_factory.mktemp("world")
    agency = init_agency(base / "agency", agency_id="nodal.example.in", new_key_id=lambda: "a1")
    keyring = create_keyring(base / "keys", subscriber_id="charger-1.example.in", valid_days=365, now_s=T0,
                             profile=Profile(gps="12.97,77.59", city="std:080"), new_key_id=lambda: "k1")
    cert = certify(keyring.subscription_request(), agency, valid_days=365, now_s=T0)
    return agency, keyring, cert


def make_ocmf(keyring, start_wh=1_234_000, stop_wh=1_241_500, start_s=T0 + 3600, stop_s=T0 + 7200):
    return build_ocmf(
        metering_key=keyring.current(T0).metering_key,
        gateway_id="Urja charger", gateway_serial="CHG-0001", gateway_version="0.1.0", pagination=7,
        meter_vendor=METER.vendor, meter_model=METER.model, meter_serial=METER.serial,
        identification="order-77",
        readings=[OcmfReading(start_s, "B", start_wh), OcmfReading(stop_s, "E", stop_wh)],
    )


def make_receipt(world, **over):
    _, keyring, cert = world
    args = dict(
        signer=keyring.signer(T0), certificate=cert, receipt_id="r-1", order_id="order-77",
        acceptance_digest="BLAKE-512=" + body_digest(b'{"confirm":true}'), meter=METER,
        start_wh=1_234_000, start_s=T0 + 3600, stop_wh=1_241_500, stop_s=T0 + 7200,
        tariff_id="t-evening", tariff_digest="BLAKE-512=" + body_digest(b"tariff"),
        costs=CostBreakdown(energy_paise=13500, time_paise=0, parking_paise=500, flat_paise=1000, tax_paise=2700),
        paid_paise=20000, issued_s=T0 + 7210, ocmf=make_ocmf(keyring),
    )
    args.update(over)
    return build_receipt(**args)


def test_receipt_round_trip(world):
    agency, _, _ = world
    receipt = json.loads(json.dumps(make_receipt(world), indent=2))
    check = verify_receipt(receipt, agency_public_key=agency.public_key, require_ocmf=True)
    assert check.energy_wh == 7500 and check.total_paise == 17700 and check.refund_due_paise == 2300
    assert check.ocmf_verified and check.subscriber_id == "charger-1.example.in"
    assert receipt["balance_due_paise"] == 0 and receipt["cost_paise"]["total"] == 17700


def test_receipt_checked_after_certificate_expiry(world):
    """A receipt stays verifiable after the certificate it was issued under has expired."""
    agency, keyring, _ = world
    short = certify(keyring.subscription_request(), agency, valid_days=1, now_s=T0)
    receipt = make_receipt(world, certificate=short, issued_s=T0 + 100)
    assert verify_receipt(receipt, agency_public_key=agency.public_key)
    late = make_receipt(world, certificate=short, issued_s=T0 + 2 * DAY)
    with pytest.raises(SignatureError) as info:
        verify_receipt(late, agency_public_key=agency.public_key)
    assert info.value.reason == "expired"


@pytest.mark.parametrize(
    "path, value",
    [
        (("paid_paise",), 1),
        (("energy_wh",), 7501),
        (("stop", "meter_wh"), 1_241_501),
        (("cost_paise", "tax_paise"), 0),
        (("meter", "serial"), "SN0043"),
        (("charger", "certificate", "gps"), "28.6,77.2"),
    ],
)
def test_any_tampering_detected(world, path, value):
    agency, _, _ = world
    receipt = json.loads(json.dumps(make_receipt(world)))
    target = receipt
    for name in path[:-1]:
        target = target[name]
    target[path[-1]] = value
    with pytest.raises(SignatureError):
        verify_receipt(receipt, agency_public_key=agency.public_key)


def test_inconsistent_sums_refused_even_when_signed(world):
    agency, keyring, _ = world
    receipt = make_receipt(world)
    receipt["cost_paise"]["total"] = 1
    resigned = sign_object(receipt, keyring.signer(T0))
    with pytest.raises(SignatureError) as info:
        verify_receipt(resigned, agency_public_key=agency.public_key)
    assert info.value.reason == "receipt-inconsistent"


def test_ocmf_must_match_receipt_readings(world):
    agency, keyring, _ = world
    receipt = make_receipt(world, ocmf=make_ocmf(keyring, stop_wh=1_241_600))
    with pytest.raises(SignatureError) as info:
        verify_receipt(receipt, agency_public_key=agency.public_key)
    assert info.value.reason == "receipt-inconsistent"


def test_ocmf_signed_by_another_meter_key_refused(world, tmp_path):
    agency, _, _ = world
    other = create_keyring(tmp_path / "o", subscriber_id="c2", valid_days=1, now_s=T0, new_key_id=lambda: "z")
    receipt = make_receipt(world, ocmf=make_ocmf(other))
    with pytest.raises(SignatureError) as info:
        verify_receipt(receipt, agency_public_key=agency.public_key)
    assert info.value.reason == "signature-invalid"


def test_revoked_charger_receipt_refused(world, tmp_path):
    agency, _, _ = world
    other_agency = init_agency(tmp_path / "ag2", new_key_id=lambda: "a2")
    doc, _ = revoke(other_agency, "k1", now_s=T0)
    with pytest.raises(SignatureError):  # a list signed by a different agency is not accepted
        verify_receipt(make_receipt(world), agency_public_key=agency.public_key, revocations=doc)


def test_receipt_builder_refuses_bad_numbers(world):
    with pytest.raises(SignatureError):
        make_receipt(world, stop_wh=1)
    with pytest.raises(SignatureError):
        make_receipt(world, paid_paise=-1)
    with pytest.raises(SignatureError):
        make_receipt(world, costs=CostBreakdown(energy_paise=1.5))


def test_underpaid_receipt_shows_balance(world):
    agency, _, _ = world
    receipt = make_receipt(world, paid_paise=10000)
    assert receipt["balance_due_paise"] == 7700 and receipt["refund_due_paise"] == 0
    assert verify_receipt(receipt, agency_public_key=agency.public_key)


# ------------------------------------------------------------------ OCMF


def test_ocmf_document_shape(world):
    _, keyring, _ = world
    text = make_ocmf(keyring)
    header, payload_text, sig_text = text.split("|")
    assert header == "OCMF"
    payload, sig = json.loads(payload_text), json.loads(sig_text)
    for name in ("FV", "GI", "GS", "GV", "PG", "MV", "MM", "MS", "IS", "IT", "ID", "RD"):
        assert name in payload
    assert payload["PG"] == "T7" and payload["MS"] == "SN0042" and payload["IS"] is True
    first, second = payload["RD"]
    assert first == {"TM": "2027-01-15T14:30:00,000+0530 S", "TX": "B", "RV": 1234000, "RI": "1-b:1.8.0",
                     "RU": "Wh", "RT": "AC", "EF": "", "ST": "G"}
    assert second == {"TM": "2027-01-15T15:30:00,000+0530 S", "TX": "E", "RV": 1241500, "ST": "G"}
    assert sig["SA"] == "ECDSA-secp256r1-SHA256"
    # Independent check: the SD is a DER ECDSA signature over the exact payload bytes.
    public = keyring.current(T0).metering_key.public_key()
    public.verify(bytes.fromhex(sig["SD"]), payload_text.encode(), ec.ECDSA(hashes.SHA256()))


def test_ocmf_verify_and_span(world):
    _, keyring, _ = world
    doc = verify_ocmf(make_ocmf(keyring), keyring.current(T0).metering_public_key_hex)
    begin, end = transaction_span(doc)
    assert (begin.value_wh, end.value_wh, end.obis) == (1_234_000, 1_241_500, "1-b:1.8.0")


def test_ocmf_with_whitespace_change_fails(world):
    _, keyring, _ = world
    text = make_ocmf(keyring).replace('"PG":"T7"', '"PG": "T7"')
    with pytest.raises(SignatureError) as info:
        verify_ocmf(text, keyring.current(T0).metering_public_key_hex)
    assert info.value.reason == "signature-invalid"


def _sign_payload(keyring, payload: str, sa="ECDSA-secp256r1-SHA256") -> str:
    der = keyring.current(T0).metering_key.sign(payload.encode(), ec.ECDSA(hashes.SHA256()))
    return f'OCMF|{payload}|{{"SA":"{sa}","SD":"{der.hex()}"}}'


def test_kwh_readings_convert_exactly(world):
    _, keyring, _ = world
    payload = ('{"FV":"1.0","PG":"T1","MS":"S","IS":false,"IT":"NONE","RD":[{"TM":"2018-07-24T13:22:04,000+0200 S",'
               '"TX":"B","RV":2935.6,"RI":"1-b:1.8.0","RU":"kWh","ST":"G"},{"TM":"2018-07-24T13:26:04,000+0200 S",'
               '"TX":"E","RV":2965.1,"ST":"G"}]}')
    doc = verify_ocmf(_sign_payload(keyring, payload), keyring.current(T0).metering_public_key_hex)
    begin, end = transaction_span(doc)
    assert (str(begin.value_wh), str(end.value_wh)) == ("2935600.0", "2965100.0")


@pytest.mark.parametrize(
    "text, reason",
    [
        ("OCMF|{}", "ocmf-malformed"),
        ("XCMF|{}|{}", "ocmf-malformed"),
        ('OCMF|{}|{"SA":"ECDSA-secp384r1-SHA256","SD":"00"}', "algorithm-unsupported"),
        ('OCMF|{}|{"SD":"zz"}', "ocmf-malformed"),
        ('OCMF|{}|{"SD":"3006020101020101","SE":"base64"}', "ocmf-malformed"),
        ('OCMF|{}|{"SD":"3006020101020101"}', "signature-invalid"),
        ("OCMF|{}|[1]", "ocmf-malformed"),
        ('OCMF|{}|{"SD":' + "[" * 5000, "ocmf-malformed"),  # nesting deeper than the parser goes
        ('OCMF|{}|{"SD":NaN}', "ocmf-malformed"),
    ],
)
def test_bad_ocmf_refused(world, text, reason):
    _, keyring, _ = world
    with pytest.raises(SignatureError) as info:
        verify_ocmf(text, keyring.current(T0).metering_public_key_hex)
    assert info.value.reason == reason


@pytest.mark.parametrize(
    "payload, reason",
    [
        ('{"PG":"T1","MS":"S","IS":true,"IT":"NONE","RD":[]}', "ocmf-malformed"),
        ('{"PG":"Q1","MS":"S","IS":true,"IT":"NONE","RD":[{"TM":"2018-07-24T13:22:04,000+0200 S","RV":1,"RU":"Wh","ST":"G"}]}',
         "ocmf-malformed"),
        ('{"PG":"T1","MS":"S","IS":true,"IT":"NONE","RD":[{"TM":"yesterday","RV":1,"RU":"Wh","ST":"G"}]}',
         "ocmf-malformed"),
        ('{"PG":"T1","MS":"S","IS":true,"IT":"NONE","PG":"T2","RD":[]}', "ocmf-malformed"),
    ],
)
def test_signed_but_malformed_payload_refused(world, payload, reason):
    _, keyring, _ = world
    with pytest.raises(SignatureError) as info:
        verify_ocmf(_sign_payload(keyring, payload), keyring.current(T0).metering_public_key_hex)
    assert info.value.reason == reason


def test_span_refuses_meter_faults(world):
    _, keyring, _ = world
    text = build_ocmf(
        metering_key=keyring.current(T0).metering_key, gateway_id="g", gateway_serial="s", gateway_version="v",
        pagination=1, meter_vendor="v", meter_model="m", meter_serial="s",
        readings=[OcmfReading(T0, "B", 1), OcmfReading(T0 + 5, "E", 2, status="T")],
    )
    with pytest.raises(SignatureError) as info:
        transaction_span(verify_ocmf(text, keyring.current(T0).metering_public_key_hex))
    assert info.value.reason == "ocmf-meter-fault"


def test_tm_round_trip_in_ist():
    text = format_tm(T0 + 0.25, utc_offset_min=330)
    assert text == "2027-01-15T13:30:00,250+0530 S"
    assert parse_tm(text) == (T0 + 0.25, "S")


def test_receipt_of_revoked_key_refused(world):
    agency, _, _ = world
    doc = sign_object({"kind": "urja.revocations", "agency_id": "nodal.example.in", "sequence": 1,
                       "issued_at": "2027-01-15T08:00:00Z", "revoked": [{"id": "k1", "revoked_at": "x"}]},
                      agency.signer)
    with pytest.raises(SignatureError) as info:
        verify_receipt(make_receipt(world), agency_public_key=agency.public_key, revocations=doc)
    assert info.value.reason == "revoked"
