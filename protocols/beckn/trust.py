"""Which buyer keys the charger believes, and which buyers the network's agency vouches for.

A buyer (BAP) may carry its agency certificate inside the message (``TAG_CERTIFICATE`` in
``order.tags`` or ``intent.tags``); the charger then checks charger-independent facts offline:
agency signature, type, status, validity window and the agency's revocation list, and uses the
certified key to verify the message signature. Without a certificate the charger's configured
key lookup (registry, static keys) decides, and the buyer counts as not certified: it may buy
prepaid, never on credit (``payment = "postpaid_certified"``).

``protocols.signing.agency.verify_certificate`` accepts only charger (BPP) certificates; buyer
certificates share the record format, so they are checked here with the same primitives
(``verify_object`` for the agency signature, ``verify_revocations`` for the list).
"""
from __future__ import annotations

import base64
import binascii
from collections import OrderedDict
from typing import Any

from protocols.signing.agency import verify_certificate, verify_revocations
from protocols.signing.detached import verify_object
from protocols.signing.errors import SignatureError
from protocols.signing.keys import KeyLookup, PublicKeyRecord

from protocols.beckn.messages import parse_timestamp
from protocols.beckn.errors import BecknError

BUYER_TYPES = ("BAP", "BPP")


def _time(cert: dict, name: str) -> int:
    try:
        return int(parse_timestamp(cert.get(name), name))
    except BecknError as exc:
        raise SignatureError("certificate-malformed", str(exc)) from None


def verify_sender_certificate(cert: Any, agency_public_key: bytes, revocations: Any = None, *,
                              now_s: float) -> PublicKeyRecord:
    """The signing key an agency certificate vouches for; ``SignatureError`` if it does not."""
    if not isinstance(cert, dict):
        raise SignatureError("certificate-malformed", "certificate must be a JSON object")
    if cert.get("type") == "BPP":
        return verify_certificate(cert, agency_public_key, revocations, now_s=now_s).key
    verify_object(cert, agency_public_key)
    if cert.get("type") not in BUYER_TYPES:
        raise SignatureError("wrong-type", f"certificate type {cert.get('type')!r} (allowed: BAP, BPP)")
    for name in ("subscriber_id", "unique_key_id", "signing_public_key"):
        if not isinstance(cert.get(name), str) or not cert[name]:
            raise SignatureError("certificate-malformed", f"field {name!r} must be a non-empty string")
    if cert.get("status") != "SUBSCRIBED":
        raise SignatureError("certificate-status", f"status {cert.get('status')!r}, expected 'SUBSCRIBED'")
    valid_from_s, valid_until_s = _time(cert, "valid_from"), _time(cert, "valid_until")
    if now_s < valid_from_s:
        raise SignatureError("not-yet-valid", f"certificate valid from {cert['valid_from']}")
    if now_s >= valid_until_s:
        raise SignatureError("expired", f"certificate expired at {cert['valid_until']}")
    if revocations is not None:
        hit = {cert["subscriber_id"], cert["unique_key_id"]} & verify_revocations(revocations, agency_public_key)
        if hit:
            raise SignatureError("revoked", f"{sorted(hit)[0]!r} is on the agency's revocation list")
    try:
        key = base64.b64decode(cert["signing_public_key"], validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError("certificate-malformed", "signing_public_key is not base64") from None
    if len(key) != 32:
        raise SignatureError("certificate-malformed", "signing_public_key must be 32 bytes")
    return PublicKeyRecord(cert["subscriber_id"], cert["unique_key_id"], key, valid_from_s, valid_until_s)


class CertifiedKeys:
    """A ``KeyLookup`` that answers from keys seen in verified certificates, else the fallback.

    A buyer shows its certificate once (typically with ``select``) and is then known by it for
    the rest of its transactions; the table is bounded (least recently used goes first) and a
    key is never used outside its certificate's window.
    """

    def __init__(self, fallback: KeyLookup, *, max_entries: int = 256):
        self.fallback = fallback
        self.max_entries = max_entries
        self._records: OrderedDict[tuple[str, str], PublicKeyRecord] = OrderedDict()

    def add(self, record: PublicKeyRecord) -> None:
        key = (record.subscriber_id, record.key_id)
        self._records[key] = record
        self._records.move_to_end(key)
        while len(self._records) > self.max_entries:
            self._records.popitem(last=False)

    def known(self, subscriber_id: str, key_id: str) -> bool:
        return (subscriber_id, key_id) in self._records

    def discard(self, subscriber_id: str, key_id: str) -> None:
        self._records.pop((subscriber_id, key_id), None)

    def certified(self, subscriber_id: str, key_id: str, now_s: float) -> bool:
        record = self._records.get((subscriber_id, key_id))
        return record is not None and record.covers(now_s)

    async def lookup(self, subscriber_id: str, key_id: str) -> PublicKeyRecord | None:
        record = self._records.get((subscriber_id, key_id))
        if record is not None:
            return record
        return await self.fallback.lookup(subscriber_id, key_id)
