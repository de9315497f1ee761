"""Replay protection: duplicates get the same answer, conflicting reuse is refused, memory bounded."""
from __future__ import annotations

import pytest

from protocols.signing.errors import SignatureError
from protocols.signing.replay import ReplayGuard


class Clock:
    def __init__(self, t=1000.0):
        self.t = t

    def __call__(self):
        return self.t


def test_duplicate_with_same_digest_gets_cached_answer():
    guard = ReplayGuard(clock=Clock())
    assert guard.admit("m1", "d1", until_s=1060).fresh
    assert guard.admit("m1", "d1", until_s=1060).answer is None  # first copy still in progress
    guard.settle("m1", {"ack": "ACK"})
    again = guard.admit("m1", "d1", until_s=1060)
    assert not again.fresh and again.answer == {"ack": "ACK"}


def test_reuse_with_different_body_refused_and_original_kept():
    guard = ReplayGuard(clock=Clock())
    guard.admit("m1", "d1", until_s=1060)
    guard.settle("m1", "first")
    with pytest.raises(SignatureError) as info:
        guard.admit("m1", "d2", until_s=1060)
    assert info.value.reason == "replay-conflict"
    assert guard.admit("m1", "d1", until_s=1060).answer == "first"


def test_id_forgotten_after_its_window():
    clock = Clock()
    guard = ReplayGuard(clock=clock)
    guard.admit("m1", "d1", until_s=1060)
    clock.t = 1060
    assert guard.admit("m1", "d2", until_s=1120).fresh


def test_window_capped():
    clock = Clock()
    guard = ReplayGuard(clock=clock, max_window_s=10)
    guard.admit("m1", "d1", until_s=10**9)
    clock.t = 1011
    assert guard.admit("m1", "d2", until_s=2000).fresh


def test_bounded_memory_refuses_rather_than_forgets_live_ids():
    clock = Clock()
    guard = ReplayGuard(clock=clock, max_entries=3)
    for i in range(3):
        guard.admit(f"m{i}", "d", until_s=1100)
    with pytest.raises(SignatureError) as info:
        guard.admit("m3", "d", until_s=1100)
    assert info.value.reason == "replay-cache-full"
    assert len(guard) == 3
    with pytest.raises(SignatureError):
        guard.admit("m0", "other", until_s=1100)  # still remembered
    clock.t = 1100
    assert guard.admit("m3", "d", until_s=1200).fresh
    assert len(guard) == 1


def test_forget_allows_retry_after_failed_processing():
    guard = ReplayGuard(clock=Clock())
    guard.admit("m1", "d1", until_s=1060)
    guard.forget("m1")
    assert guard.admit("m1", "d2", until_s=1060).fresh


@pytest.mark.parametrize("bad", ["", None, "x" * 257])
def test_bad_message_id_refused(bad):
    with pytest.raises(SignatureError) as info:
        ReplayGuard(clock=Clock()).admit(bad, "d", until_s=2000)
    assert info.value.reason == "message-id-invalid"


async def test_verify_then_admit_stores_nothing_for_bad_messages():
    from cryptography.hazmat.primitives.asymmetric import ed25519

    from protocols.signing.beckn import Verifier, sign_body
    from protocols.signing.keys import Ed25519Signer, PublicKeyRecord, StaticKeyLookup

    signer = Ed25519Signer(subscriber_id="bap.example.in", key_id="b1",
                           private_key=ed25519.Ed25519PrivateKey.from_private_bytes(b"\x09" * 32))
    clock = Clock(1000.0)
    verifier = Verifier(lookup=StaticKeyLookup([PublicKeyRecord("bap.example.in", "b1", signer.public_key_bytes, 0, 10**6)]),
                        clock=clock)
    guard = ReplayGuard(clock=clock)
    body = b'{"context":{"message_id":"m1"}}'
    header = sign_body(body, signer, created_s=1000, expires_s=1030)
    for bad_header, bad_body in ((header, body + b" "), (header[:-10], body), ("Signature x", body)):
        with pytest.raises(SignatureError):
            guard.admit_verified("m1", await verifier.verify_message(bad_body, bad_header))
    assert len(guard) == 0
    verified = await verifier.verify_message(body, header)
    assert guard.admit_verified("m1", verified).fresh
    guard.settle("m1", "ACK")
    assert guard.admit_verified("m1", await verifier.verify_message(body, header)).answer == "ACK"
    clock.t = 1030
    assert guard.admit_verified("m1", verified).fresh
