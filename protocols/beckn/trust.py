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

import json
from collections import OrderedDict
from typing import Any

from protocols.signing.agency import verify_certificate, verify_revocations
from protocols.signing.errors import SignatureError
from protocols.signing.keys import KeyLookup, PublicKeyRecord

BUYER_TYPES = ("BAP", "BPP")


def registry_url(sec) -> str | None:
    """A binding table's ``registry_url``, checked (None when the network runs no registry)."""
    url = sec.str("registry_url", None)
    if url is not None and not url.startswith(("http://", "https://")):
        raise sec.error("registry_url", f"not an http(s) URL: {url!r}", "https://registry.example/")
    return url


def dedi_url(sec) -> str | None:
    """A table's ``dedi_url``: the DeDi host's lookup API the network's ``network_id`` names a
    namespace and registry on (None when keys are not looked up the DeDi way). A table names one
    registry: ``registry_url`` (a Beckn 1.1 registry) or ``dedi_url``, not both."""
    url = sec.str("dedi_url", None)
    if url is not None and not url.startswith(("http://", "https://")):
        raise sec.error("dedi_url", f"not an http(s) URL: {url!r}", "https://dedi.example/dedi")
    if url is not None and sec.str("registry_url", None) is not None:
        raise sec.error("dedi_url", "names a second registry beside registry_url", "one of registry_url, dedi_url")
    return url


def buyer_lookup(rt, url: str | None, *, dedi: str | None = None, network_id: str | None = None) -> tuple[Any, Any]:
    """How a binding looks up participants that carry no agency certificate: ``(lookup, session)``.

    With a registry ``url`` the network's Beckn registry is asked (``/lookup``, answers
    cached); with ``dedi`` the DeDi host's lookup API, a participant counting only as a member
    of ``network_id`` (``protocols.beckn2.dedi``); ``session`` is the HTTP session the binding
    must close. Without either no such participant is known and only certificate-carrying
    buyers can transact.
    """
    from protocols.signing.keys import StaticKeyLookup

    if url is None and dedi is None:
        return StaticKeyLookup(), None
    import aiohttp

    session = aiohttp.ClientSession()
    if dedi is not None:
        from protocols.beckn2.dedi import DediRegistryClient

        return DediRegistryClient(session=session, base_url=dedi, clock=rt.now_s, network=network_id), session
    from protocols.signing.keys import signer_at
    from protocols.signing.registry import RegistryClient

    return RegistryClient(session=session, base_url=url, clock=rt.now_s, signer_factory=signer_at(rt.identity)), session


def verify_sender_certificate(cert: Any, agency_public_key: bytes, revocations: Any = None, *,
                              now_s: float) -> PublicKeyRecord:
    """The signing key an agency certificate vouches for; ``SignatureError`` if it does not."""
    return verify_certificate(cert, agency_public_key, revocations, now_s=now_s, types=BUYER_TYPES).key


def _exact_text(doc: Any) -> str | None:
    """One spelling per JSON value (keys sorted), so two certificates share a cache entry only
    when every field, the signature included, is the same; None for what is not plain JSON."""
    try:
        return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError, RecursionError):
        return None


def revocations_marker(revocations: Any) -> tuple | None:
    """What identifies the revocation list in force: the object itself (lists are replaced,
    never edited), its sequence and its signature (a list re-signed in place is a new list)."""
    if revocations is None:
        return None
    if not isinstance(revocations, dict):
        return (id(revocations),)
    sig = revocations.get("signature")
    value = sig.get("value") if isinstance(sig, dict) else None
    return (id(revocations), str(revocations.get("sequence")), str(value))


class CertificateCache:
    """Buyer certificates already verified, so a buyer that carries its certificate in every
    message costs one agency-signature check, not one per message.

    Why it weakens nothing: an entry is keyed by the exact certificate (every field and the
    agency's signature), the agency key and the revocation list in force; it answers only
    inside the certificate's own validity window (outside it the full check runs and refuses
    with its reason); a new revocation list empties the cache, so the next message with a
    revoked certificate is checked against the new list. Refusals are never cached: a
    certificate that fails is checked in full every time. Bounded, least recently used first.
    """

    def __init__(self, *, max_entries: int = 256):
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple, PublicKeyRecord] = OrderedDict()
        self._revocations: Any = None
        self._revocations_marker: tuple | None = None
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._entries)

    def clear(self) -> None:
        self._entries.clear()

    def _follow_revocations(self, revocations: Any) -> None:
        marker = revocations_marker(revocations)
        if marker != self._revocations_marker or revocations is not self._revocations:
            self._entries.clear()
            # the reference keeps the list alive, so its id in the marker cannot be reused
            self._revocations, self._revocations_marker = revocations, marker

    def cached(self, text: str, agency_public_key: bytes, revocations: Any = None, *,
               now_s: float) -> PublicKeyRecord | None:
        """The key a certificate carried as exactly ``text`` vouches for, if that very text was
        verified before under this agency key and revocation list and ``now_s`` lies in its window."""
        self._follow_revocations(revocations)
        return self._hit(("text", bytes(agency_public_key), text), now_s)

    def verify(self, cert: Any, agency_public_key: bytes, revocations: Any = None, *,
               now_s: float, text: str | None = None) -> PublicKeyRecord:
        """Like ``verify_sender_certificate``, answering repeats from the cache. ``text`` is the
        certificate exactly as carried (the cache key then, so a repeat needs no parsing)."""
        self._follow_revocations(revocations)
        if text is not None:
            key = ("text", bytes(agency_public_key), text)
        else:
            exact = _exact_text(cert) if isinstance(cert, dict) else None
            key = None if exact is None else ("json", bytes(agency_public_key), exact)
        if key is not None:
            record = self._hit(key, now_s)
            if record is not None:
                return record
        self.misses += 1
        record = verify_sender_certificate(cert, agency_public_key, revocations, now_s=now_s)
        if key is not None:
            self._entries[key] = record
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)
        return record

    def _hit(self, key: tuple, now_s: float) -> PublicKeyRecord | None:
        record = self._entries.get(key)
        if record is None:
            return None
        if not record.covers(now_s):
            del self._entries[key]  # outside its window: the full check runs and says why
            return None
        self._entries.move_to_end(key)
        self.hits += 1
        return record


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

    def clear(self) -> None:
        self._records.clear()

    def apply_revocations(self, revocations: Any, agency_public_key: bytes) -> None:
        """Forget keys whose subscriber or key id a new revocation list names; a list that does
        not verify leaves nothing certified (a buyer shows its certificate again)."""
        if revocations is None:
            return
        try:
            revoked = verify_revocations(revocations, agency_public_key)
        except SignatureError:
            self._records.clear()
            return
        for key in [k for k in self._records if k[0] in revoked or k[1] in revoked]:
            del self._records[key]

    def certified(self, subscriber_id: str, key_id: str, now_s: float) -> bool:
        record = self._records.get((subscriber_id, key_id))
        return record is not None and record.covers(now_s)

    async def lookup(self, subscriber_id: str, key_id: str) -> PublicKeyRecord | None:
        record = self._records.get((subscriber_id, key_id))
        if record is not None:
            return record
        return await self.fallback.lookup(subscriber_id, key_id)
