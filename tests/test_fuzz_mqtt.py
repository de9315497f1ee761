"""Fuzz the MQTT entry point: whatever bytes arrive on a charger's topics, only a classified
``FrameError`` leaves the parsing stage (the link counts it and drops the payload), and a
mutated valid frame never parses into different routing than it names.

The provider stage behind it (``Bpp.receive``) is fuzzed in ``test_fuzz_beckn.py``.
"""
from __future__ import annotations

import json

from cryptography.hazmat.primitives.asymmetric import ed25519
from hypothesis import given, settings
from hypothesis import strategies as st

from protocols.mqtt import framing
from protocols.signing.keys import Ed25519Signer

SIGNER = Ed25519Signer(subscriber_id="app.fuzz", key_id="k1", private_key=ed25519.Ed25519PrivateKey.generate())
BODY = json.dumps({"context": {"domain": "dent:ev-charging:0.1.0", "action": "search", "version": "1.1.0",
                               "bap_id": "app.fuzz", "bap_uri": "mqtt://urja/v1/inbox/app.fuzz",
                               "transaction_id": "t-1", "message_id": "m-1",
                               "timestamp": "2026-11-24T10:00:00.000Z", "ttl": "PT30S"},
                   "message": {"intent": {}}}).encode()
VALID = framing.sign_and_frame(BODY, SIGNER, now_s=1_795_000_000, window_s=60)


def _parse(payload: bytes):
    frame = framing.unframe(payload)
    framing.headers_of(frame)
    return frame, framing.peek_routing(frame.body)


@settings(max_examples=400)
@given(st.binary(max_size=2048))
def test_random_payloads_raise_only_frame_errors(payload):
    try:
        _parse(payload)
    except framing.FrameError as exc:
        assert exc.code in ("frame-invalid", "payload-too-large", "body-malformed"), exc.code


@settings(max_examples=400)
@given(st.data())
def test_mutated_frames_raise_only_frame_errors_or_keep_their_routing(data):
    payload = bytearray(VALID)
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        i = data.draw(st.integers(0, max(0, len(payload) - 1)))
        if op == "flip" and payload:
            payload[i] ^= data.draw(st.integers(1, 255))
        elif op == "cut":
            del payload[i:i + data.draw(st.integers(1, 16))]
        else:
            payload[i:i] = data.draw(st.binary(min_size=1, max_size=8))
    try:
        frame, routing = _parse(bytes(payload))
    except framing.FrameError:
        return
    # Whatever still parses names its own action and ids; the signature check downstream decides.
    assert isinstance(routing.action, str) and isinstance(routing.message_id, str)


def test_oversized_payload_is_classified():
    big = VALID + b" " * (framing.MAX_PAYLOAD_BYTES + 1)
    try:
        framing.unframe(big)
    except framing.FrameError as exc:
        assert exc.code == "payload-too-large"
    else:
        raise AssertionError("oversized payload accepted")


def test_deeply_nested_body_is_classified():
    """Nesting past the JSON parser's depth once escaped as RecursionError into the transport."""
    for body in (b"[" * 5000, b'{"context":' + b"[" * 5000):
        try:
            _parse(framing.sign_and_frame(body, SIGNER, now_s=1_795_000_000, window_s=60))
        except framing.FrameError as exc:
            assert exc.code == "body-malformed"
        else:
            raise AssertionError("deeply nested body accepted")
