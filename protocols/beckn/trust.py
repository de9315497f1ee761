"""Which buyer keys the charger believes, and which buyers the network's agency vouches for.

A buyer (BAP) may carry its agency certificate inside the message (``TAG_CERTIFICATE`` in
``order.tags`` or ``intent.tags``); the charger then checks charger-independent facts offline:
agency signature, type, status, validity window and the agency's revocation list, and uses the
certified key to verify the message signature. Without a certificate the charger's configured
key lookup (registry, static keys) decides, and the buyer counts as not certified: it may buy
prepaid, never on credit (``payment = "postpaid_certified"``).

Buyer certificates share the charger's record format without place or metering key;
``protocols.signing.agency.verify_certificate`` checks both kinds (``types=``).
"""
from __future__ import annotations

from collections import OrderedDict
from typing import Any

from protocols.signing.agency import verify_certificate
from protocols.signing.keys import KeyLookup, PublicKeyRecord


BUYER_TYPES = ("BAP", "BPP")


def verify_sender_certificate(cert: Any, agency_public_key: bytes, revocations: Any = None, *,
                              now_s: float) -> PublicKeyRecord:
    """The signing key an agency certificate vouches for; ``SignatureError`` if it does not."""
    return verify_certificate(cert, agency_public_key, revocations, now_s=now_s, types=BUYER_TYPES).key


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
