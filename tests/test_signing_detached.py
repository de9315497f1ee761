"""Detached signatures over canonical JSON survive re-serialisation, not re-meaning."""
from __future__ import annotations

import json

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.signing.detached import canonical_bytes, load_json, sign_object, verify_object
from protocols.signing.errors import SignatureError
from protocols.signing.keys import Ed25519Signer

SIGNER = Ed25519Signer(
    subscriber_id="charger-1.example.in", key_id="k1",
    private_key=ed25519.Ed25519PrivateKey.from_private_bytes(b"\x03" * 32),
)
OFFER = {
    "kind": "urja.offer",
    "offer_id": "o-1",
    "tariff": {"id": "t-1", "energy_paise_per_kwh": 1800, "name": "Dinner \u0915 \"rate\""},
    "valid_until": "2027-01-15T09:00:00Z",
    "power_kw": 7.4,
    "connectors": [1, 2],
}


def test_sign_and_verify():
    signed = sign_object(OFFER, SIGNER)
    assert signed["signature"]["alg"] == "ed25519"
    assert signed["signature"]["key_id"] == "charger-1.example.in|k1"
    assert verify_object(signed, SIGNER.public_key_bytes) == ("charger-1.example.in", "k1")


@pytest.mark.parametrize(
    "reserialise",
    [
        lambda o: json.dumps(o, indent=4),
        lambda o: json.dumps(o, ensure_ascii=False, sort_keys=True),
        lambda o: json.dumps(dict(reversed(list(o.items()))), separators=(", ", " : ")),
        lambda o: json.dumps(o).replace('"o-1"', '"\\u006f-1"'),
    ],
)
def test_still_valid_after_an_app_re_serialises(reserialise):
    signed = sign_object(OFFER, SIGNER)
    again = load_json(reserialise(signed))
    assert verify_object(again, SIGNER.public_key_bytes)


@pytest.mark.parametrize(
    "change",
    [
        lambda o: o["tariff"].__setitem__("energy_paise_per_kwh", 1801),
        lambda o: o.__setitem__("extra", True),
        lambda o: o["connectors"].reverse(),
        lambda o: o["signature"].__setitem__("key_id", "charger-2.example.in|k1"),
        lambda o: o.pop("valid_until"),
    ],
)
def test_any_change_of_meaning_breaks_it(change):
    signed = json.loads(json.dumps(sign_object(OFFER, SIGNER)))
    change(signed)
    with pytest.raises(SignatureError) as info:
        verify_object(signed, SIGNER.public_key_bytes)
    assert info.value.reason == "signature-invalid"


@settings(max_examples=60, deadline=None)
@given(st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=6), inner, max_size=4),
    max_leaves=12,
))
def test_any_json_value_round_trips(value):
    signed = sign_object({"payload": value}, SIGNER)
    assert verify_object(load_json(json.dumps(signed, indent=1)), SIGNER.public_key_bytes)


@pytest.mark.parametrize(
    "text, reason",
    [
        ('{"a": 1, "a": 2}', "json-invalid"),
        ('{"a": NaN}', "json-invalid"),
        ('{"a": Infinity}', "json-invalid"),
        ("{not json", "json-invalid"),
        ("[" * 5000, "json-invalid"),
        ('{"a": "' + "x" * 70000 + '"}', "json-too-large"),
    ],
)
def test_bad_json_refused(text, reason):
    with pytest.raises(SignatureError) as info:
        load_json(text)
    assert info.value.reason == reason


def test_configurable_size_limit():
    with pytest.raises(SignatureError):
        load_json('{"a": 1}', max_bytes=4)


def test_values_without_a_canonical_form_refused():
    with pytest.raises(SignatureError) as info:
        canonical_bytes({"big": 2**60})
    assert info.value.reason == "json-noncanonical"
    with pytest.raises(SignatureError):
        sign_object({"x": float("nan")}, SIGNER)


@pytest.mark.parametrize(
    "sig, reason",
    [
        (None, "signature-missing"),
        ({"alg": "ed25519", "key_id": "a|b"}, "signature-malformed"),
        ({"alg": "rsa", "key_id": "a|b", "value": "x"}, "algorithm-unsupported"),
        ({"alg": "ed25519", "key_id": "ab", "value": "x"}, "signature-malformed"),
        ({"alg": "ed25519", "key_id": "charger-1.example.in|k1", "value": "AAAA"}, "bad-length"),
    ],
)
def test_malformed_signature_objects(sig, reason):
    doc = dict(OFFER, signature=sig) if sig is not None else dict(OFFER)
    with pytest.raises(SignatureError) as info:
        verify_object(doc, SIGNER.public_key_bytes)
    assert info.value.reason == reason


def test_expected_key_id_enforced():
    signed = sign_object(OFFER, SIGNER)
    with pytest.raises(SignatureError) as info:
        verify_object(signed, SIGNER.public_key_bytes, expected_key_id=("other", "k1"))
    assert info.value.reason == "key-mismatch"
