"""Beckn message signatures: the spec's worked example, independent verification, tampering."""
from __future__ import annotations

import asyncio
import base64

import nacl.exceptions
import nacl.signing
import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocols.errors import ProtocolError
from protocols.signing.beckn import (
    Verifier,
    body_digest,
    frame_message,
    parse_frame,
    parse_signature_header,
    sign_body,
    signing_string,
    www_authenticate,
)
from protocols.signing.errors import SignatureError
from protocols.signing.keys import Ed25519Signer, PublicKeyRecord, StaticKeyLookup

# The worked example of BECKN-006 (Step 1), copied byte for byte.
SPEC_BODY = (
    b'{"context":{"domain":"nic2004:60212","country":"IND","city":"Kochi","action":"search",'
    b'"core_version":"0.9.1","bap_id":"bap.stayhalo.in","bap_uri":"https://8f9f-49-207-209-131.ngrok.io/protocol/",'
    b'"transaction_id":"e6d9f908-1d26-4ff3-a6d1-3af3d3721054","message_id":"a2fe6d52-9fe4-4d1a-9d0b-dccb8b48522d",'
    b'"timestamp":"2022-01-04T09:17:55.971Z","ttl":"P1M"},"message":{"intent":{"fulfillment":{"start":{"location":'
    b'{"gps":"10.108768, 76.347517"}},"end":{"location":{"gps":"10.102997, 76.353480"}}}}}}'
)
SPEC_DIGEST = "b6lf6lRgOweajukcvcLsagQ2T60+85kRh/Rd2bdS+TG/5ALebOEgDJfyCrre/1+BMu5nA94o4DT3pTFXuUg7sw=="
SPEC_PUBLIC = "awGPjRK6i/Vg/lWr+0xObclVxlwZXvTjWYtlu6NeOHk="
SPEC_PRIVATE = "lP3sHA+9gileOkXYJXh4Jg8tK0gEEMbf9yCPnFpbldhrAY+NErqL9WD+Vav7TE5tyVXGXBle9ONZi2W7o144eQ=="
SPEC_SIGNATURE = "cjbhP0PFyrlSCNszJM1F/YmHDVAWsZqJUPzojnE/7TJU3fJ/rmIlgaUHEr5E0/2PIyf0tpSnWtT6cyNNlpmoAQ=="
SPEC_HEADER = (
    'Signature keyId="example-bap.com|ae3ea24b-cfec-495e-81f8-044aaef164ac|ed25519",algorithm="ed25519",'
    'created="1641287875",expires="1641291475",headers="(created) (expires) digest",'
    f'signature="{SPEC_SIGNATURE}"'
)
SPEC_SIGNING_STRING = (
    "(created): 1641287875\n(expires): 1641291475\n"
    "digest: BLAKE-512=b6lf6lRgOweajukcvcLsagQ2T60+85kRh/Rd2bdS+TG/5ALebOEgDJfyCrre/1+BMu5nA94o4DT3pTFXuUg7sw=="
)

NOW_S = 1_800_000_000


def spec_signer() -> Ed25519Signer:
    seed = base64.b64decode(SPEC_PRIVATE)[:32]
    return Ed25519Signer(
        subscriber_id="example-bap.com",
        key_id="ae3ea24b-cfec-495e-81f8-044aaef164ac",
        private_key=ed25519.Ed25519PrivateKey.from_private_bytes(seed),
    )


def make_signer(name="charger-1.example.in", key_id="k1", seed=b"\x01" * 32) -> Ed25519Signer:
    return Ed25519Signer(
        subscriber_id=name, key_id=key_id, private_key=ed25519.Ed25519PrivateKey.from_private_bytes(seed)
    )


def record_for(signer, valid_from_s=NOW_S - 86400, valid_until_s=NOW_S + 86400) -> PublicKeyRecord:
    return PublicKeyRecord(signer.subscriber_id, signer.key_id, signer.public_key_bytes, valid_from_s, valid_until_s)


def verifier_for(*signers, now_s=NOW_S, **kw) -> Verifier:
    return Verifier(lookup=StaticKeyLookup(record_for(s) for s in signers), clock=lambda: now_s, **kw)


BODY = b'{"context":{"action":"on_search","message_id":"m-1"},"message":{"catalog":{}}}'


# ------------------------------------------------------------------ the specification's example


def test_digest_matches_spec_blake2b_example():
    expected = "qK3Uvd39k+SHfSdG5igXsRY2Sh+nvBSNlQkLxzM7NnP4JAHPeqLkyx7NkCluPxTLVBP47Xe+cwRbE5FM3NapGA=="
    assert body_digest(b"The quick brown fox jumps over the lazy dog") == expected


def test_digest_of_spec_example_body():
    assert body_digest(SPEC_BODY) == SPEC_DIGEST


def test_signing_string_of_spec_example():
    assert signing_string(1641287875, 1641291475, SPEC_DIGEST) == SPEC_SIGNING_STRING


def test_spec_keys_reproduce_spec_signature_and_header():
    signer = spec_signer()
    assert base64.b64encode(signer.public_key_bytes).decode() == SPEC_PUBLIC
    header = sign_body(SPEC_BODY, signer, created_s=1641287875, expires_s=1641291475)
    assert header == SPEC_HEADER


async def test_spec_header_verifies_at_its_own_time():
    signer = spec_signer()
    lookup = StaticKeyLookup([record_for(signer, 1_600_000_000, 1_700_000_000)])
    verified = await Verifier(lookup=lookup, clock=lambda: 1641287900).verify(SPEC_HEADER, SPEC_BODY)
    assert (verified.subscriber_id, verified.digest) == ("example-bap.com", SPEC_DIGEST)


def test_www_authenticate_as_in_spec():
    assert www_authenticate("example-bg.com") == 'Signature realm="example-bg.com",headers="(created) (expires) digest"'


# ------------------------------------------------------------------ independent verification


def test_our_signature_verifies_with_pynacl():
    signer = make_signer()
    header = sign_body(BODY, signer, created_s=NOW_S, expires_s=NOW_S + 30)
    params = parse_signature_header(header)
    text = signing_string(NOW_S, NOW_S + 30, body_digest(BODY)).encode()
    nacl.signing.VerifyKey(signer.public_key_bytes).verify(text, params.signature)
    with pytest.raises(nacl.exceptions.BadSignatureError):
        nacl.signing.VerifyKey(signer.public_key_bytes).verify(text + b" ", params.signature)


async def test_pynacl_signature_verifies_with_ours():
    """A signature made by another Ed25519 implementation passes our verifier."""
    seed = b"\x07" * 32
    nacl_key = nacl.signing.SigningKey(seed)
    signer = make_signer(seed=seed)
    text = signing_string(NOW_S, NOW_S + 60, body_digest(BODY)).encode()
    sig = base64.b64encode(nacl_key.sign(text).signature).decode()
    header = (
        f'Signature keyId="{signer.subscriber_id}|{signer.key_id}|ed25519",algorithm="ed25519",'
        f'created="{NOW_S}",expires="{NOW_S + 60}",headers="(created) (expires) digest",signature="{sig}"'
    )
    assert (await verifier_for(signer).verify(header, BODY)).key_id == "k1"


async def test_round_trip_and_gateway_header():
    charger, gateway = make_signer(), make_signer("bg.example.in", "g1", b"\x02" * 32)
    auth = sign_body(BODY, charger, created_s=NOW_S, expires_s=NOW_S + 30)
    gw = sign_body(BODY, gateway, created_s=NOW_S, expires_s=NOW_S + 30)
    result = await verifier_for(charger, gateway).verify_message(BODY, auth, gw)
    assert result.sender.subscriber_id == "charger-1.example.in"
    assert result.gateway.subscriber_id == "bg.example.in"


async def test_bad_gateway_header_is_refused_and_named():
    charger, gateway = make_signer(), make_signer("bg.example.in", "g1", b"\x02" * 32)
    auth = sign_body(BODY, charger, created_s=NOW_S, expires_s=NOW_S + 30)
    gw = sign_body(BODY + b" ", gateway, created_s=NOW_S, expires_s=NOW_S + 30)
    with pytest.raises(SignatureError) as info:
        await verifier_for(charger, gateway).verify_message(BODY, auth, gw)
    assert info.value.reason == "signature-invalid"
    assert info.value.details["header"] == "X-Gateway-Authorization"


def test_spaces_after_commas_accepted_as_in_gateway_example():
    header = sign_body(BODY, make_signer(), created_s=NOW_S, expires_s=NOW_S + 30).replace('",', '", ')
    assert parse_signature_header(header).key_id == "k1"


# ------------------------------------------------------------------ tampering (property tests)

_SIGNER = make_signer()
_HEADER = sign_body(BODY, _SIGNER, created_s=NOW_S, expires_s=NOW_S + 30)
_VERIFIER = verifier_for(_SIGNER)


def _verify_sync(header, body):
    return asyncio.run(_VERIFIER.verify(header, body))


def test_untampered_passes_sync_path():
    assert _verify_sync(_HEADER, BODY).subscriber_id == _SIGNER.subscriber_id


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(index=st.integers(0, len(BODY) - 1), delta=st.integers(1, 255))
def test_flipping_any_body_byte_fails(index, delta):
    body = bytearray(BODY)
    body[index] = (body[index] + delta) % 256
    with pytest.raises(SignatureError) as info:
        _verify_sync(_HEADER, bytes(body))
    assert info.value.reason == "signature-invalid"


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(index=st.integers(0, len(_HEADER) - 1), delta=st.integers(1, 127))
def test_flipping_any_header_byte_fails(index, delta):
    chars = list(_HEADER)
    chars[index] = chr((ord(chars[index]) + delta) % 128)
    tampered = "".join(chars)
    with pytest.raises(SignatureError):
        _verify_sync(tampered, BODY)


# ------------------------------------------------------------------ refusals with reasons

GOOD = _HEADER
SIG = parse_signature_header(GOOD).signature
SIG_B64 = base64.b64encode(SIG).decode()


@pytest.mark.parametrize(
    "header, reason",
    [
        (None, "header-missing"),
        ("Basic abc", "header-malformed"),
        (GOOD.replace("Signature ", "signature "), "header-malformed"),
        (GOOD + ',created="1"', "header-duplicate-param"),
        (GOOD + ',nonce="1"', "header-unknown-param"),
        (GOOD.replace(',headers="(created) (expires) digest"', ""), "header-missing-param"),
        (GOOD + ",", "header-malformed"),
        (GOOD.replace('algorithm="ed25519"', 'algorithm="rsa-sha256"'), "algorithm-mismatch"),
        (GOOD.replace("|ed25519", "|rsa-sha256").replace('algorithm="ed25519"', 'algorithm="rsa-sha256"'),
         "algorithm-unsupported"),
        (GOOD.replace("(created) (expires) digest", "(created) digest"), "headers-unsupported"),
        (GOOD.replace("charger-1.example.in|k1|", "charger-1.example.in|"), "header-malformed"),
        (GOOD.replace(f'created="{NOW_S}"', 'created="soon"'), "bad-time"),
        (GOOD.replace(SIG_B64, SIG_B64[:-4]), "bad-length"),
        (GOOD.replace(SIG_B64, SIG_B64[:-2] + "!="), "bad-base64"),
        (GOOD.replace(SIG_B64, base64.b64encode(SIG + b"\x00").decode()), "bad-length"),
        (GOOD.replace("charger-1.example.in", "stranger.example.in"), "key-unknown"),
        (GOOD + "x" * 1100, "header-malformed"),
        (GOOD.replace(SIG_B64, base64.b64encode(bytes(64)).decode()), "signature-invalid"),
    ],
)
async def test_malformed_headers_get_a_reason(header, reason):
    with pytest.raises(SignatureError) as info:
        await verifier_for(_SIGNER).verify(header, BODY)
    assert info.value.reason == reason
    assert isinstance(info.value, ProtocolError)


async def test_created_in_future_beyond_skew_refused():
    header = sign_body(BODY, _SIGNER, created_s=NOW_S + 31, expires_s=NOW_S + 90)
    with pytest.raises(SignatureError) as info:
        await verifier_for(_SIGNER, clock_skew_s=30).verify(header, BODY)
    assert info.value.reason == "created-in-future"
    ok = sign_body(BODY, _SIGNER, created_s=NOW_S + 30, expires_s=NOW_S + 90)
    assert await verifier_for(_SIGNER, clock_skew_s=30).verify(ok, BODY)


async def test_expired_signature_refused():
    header = sign_body(BODY, _SIGNER, created_s=NOW_S - 60, expires_s=NOW_S - 1)
    with pytest.raises(SignatureError) as info:
        await verifier_for(_SIGNER).verify(header, BODY)
    assert info.value.reason == "expired"


async def test_key_outside_its_window_refused():
    lookup = StaticKeyLookup([record_for(_SIGNER, NOW_S - 100, NOW_S - 10)])
    with pytest.raises(SignatureError) as info:
        await Verifier(lookup=lookup, clock=lambda: NOW_S).verify(GOOD, BODY)
    assert info.value.reason == "key-not-valid"


async def test_oversized_body_refused_before_hashing():
    with pytest.raises(SignatureError) as info:
        await verifier_for(_SIGNER, max_body_bytes=64).verify(GOOD, BODY)
    assert info.value.reason == "body-too-large"


def test_non_canonical_base64_signature_refused():
    """The last character before '==' carries 4 unused bits; a second spelling must not pass."""
    last = SIG_B64[-3]
    alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/"
    twin = alphabet[alphabet.index(last) ^ 1]
    tampered = GOOD.replace(SIG_B64, SIG_B64[:-3] + twin + "==")
    assert base64.b64decode(SIG_B64[:-3] + twin + "==") == SIG
    with pytest.raises(SignatureError) as info:
        _verify_sync(tampered, BODY)
    assert info.value.reason == "bad-base64"


async def test_failing_lookup_becomes_a_signature_error():
    class Broken:
        async def lookup(self, subscriber_id, key_id):
            raise RuntimeError("database gone")

    with pytest.raises(SignatureError) as info:
        await Verifier(lookup=Broken(), clock=lambda: NOW_S).verify(GOOD, BODY)
    assert info.value.reason == "key-lookup-failed"


def test_expires_before_created_cannot_be_signed():
    with pytest.raises(SignatureError):
        sign_body(BODY, _SIGNER, created_s=NOW_S, expires_s=NOW_S)


# ------------------------------------------------------------------ MQTT framing


async def test_frame_round_trip_keeps_exact_body():
    body = b'{"a": 1,\r\n\r\n "b": "\xe0\xa4\x8a"}'
    frame = frame_message(body, GOOD.replace("X", "X"), None)
    parsed = parse_frame(frame)
    assert parsed.body == body and parsed.authorization == GOOD and parsed.gateway_authorization is None


async def test_framed_message_verifies_end_to_end():
    auth = sign_body(BODY, _SIGNER, created_s=NOW_S, expires_s=NOW_S + 30)
    parsed = parse_frame(frame_message(BODY, auth))
    assert (await verifier_for(_SIGNER).verify_message(parsed.body, parsed.authorization)).digest == body_digest(BODY)


@pytest.mark.parametrize(
    "payload",
    [
        b"no blank line at all",
        b"Authorization: x\nAuthorization: y\n\n{}",
        b"Content-Type: json\n\n{}",
        b"X-Gateway-Authorization: x\n\n{}",
        "Authorization: \u00e9\n\n{}".encode(),
    ],
)
def test_bad_frames_refused(payload):
    with pytest.raises(SignatureError):
        parse_frame(payload)
