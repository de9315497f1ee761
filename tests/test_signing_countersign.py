"""Counter-signatures on Beckn 2.0 Acks, checked by an independent Ed25519 (PyNaCl)."""
from __future__ import annotations

import base64
import hashlib
import json

import pytest

from protocols.signing.beckn import Verifier, parse_signature_header
from protocols.signing.countersign import COUNTER_SIGNED_HEADERS, counter_sign, verify_counter_signature
from protocols.signing.errors import SignatureError
from protocols.signing.keys import StaticKeyLookup
from tests.cds_support import NOW_S, Clock, ack_errors, record, signer

nacl_signing = pytest.importorskip("nacl.signing")

CDS = signer("cds.example.in", "c1", 7)
REQUEST = b'{"context":{"action":"catalog/publish","messageId":"m-1"},"message":{"catalogs":[]}}'


def b64_blake(data: bytes) -> str:
    return base64.b64encode(hashlib.blake2b(data, digest_size=64).digest()).decode()


def signed_ack() -> dict:
    return counter_sign({"status": "ACK"}, request_body=REQUEST, message_id="m-1", signer=CDS,
                        created_s=int(NOW_S), expires_s=int(NOW_S) + 60)


def test_the_counter_signature_verifies_under_pynacl_over_the_specs_signing_string():
    ack = signed_ack()
    assert ack_errors(ack) == []
    params = parse_signature_header(ack["signature"], headers=COUNTER_SIGNED_HEADERS)
    ack_body = b'{"status":"ACK"}'
    text = (f"(created): {int(NOW_S)}\n(expires): {int(NOW_S) + 60}\n"
            f"digest: BLAKE-512={b64_blake(ack_body)}\n"
            f"(request-digest): BLAKE-512={b64_blake(REQUEST)}\n(message-id): m-1")
    nacl_signing.VerifyKey(CDS.public_key_bytes).verify(text.encode(), params.signature)


async def test_the_counter_signature_is_checked_against_the_request_it_answers():
    verifier = Verifier(lookup=StaticKeyLookup([record(CDS)]), clock=Clock())
    ack = json.loads(json.dumps(signed_ack(), indent=3))  # spacing on the wire does not matter
    assert (await verify_counter_signature(ack, request_body=REQUEST, message_id="m-1",
                                           verifier=verifier)).subscriber_id == "cds.example.in"
    for kwargs in ({"request_body": REQUEST + b" ", "message_id": "m-1"},
                   {"request_body": REQUEST, "message_id": "m-2"}):
        with pytest.raises(SignatureError) as e:
            await verify_counter_signature(ack, verifier=verifier, **kwargs)
        assert e.value.reason == "signature-invalid"
    with pytest.raises(SignatureError) as e:
        await verify_counter_signature({**ack, "status": "NACK"}, request_body=REQUEST, message_id="m-1",
                                       verifier=verifier)
    assert e.value.reason == "signature-invalid"
    with pytest.raises(SignatureError) as e:
        await verify_counter_signature({"status": "ACK"}, request_body=REQUEST, message_id="m-1", verifier=verifier)
    assert e.value.reason == "header-missing"
