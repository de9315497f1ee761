"""A ``KeyLookup`` that asks a Beckn registry's ``/lookup`` and remembers the answers briefly.

Request and response follow the registry API: the request is a ``Subscription`` object
(``subscriber_id``, ``key_id``), the response an array of ``Subscription`` records. Only
records with status ``SUBSCRIBED`` and a matching subscriber and key id are used.

The aiohttp session is injected (the charger runtime owns it and closes it). Answers, found or
not, are cached for ``cache_ttl_s`` in a small bounded table, so a burst of messages from the
same node costs one registry round trip. When the registry cannot be reached the lookup
raises ``SignatureError("registry-unavailable")``: the message is refused, never accepted
unverified.
"""
from __future__ import annotations

import asyncio
import json
from collections import OrderedDict
from typing import Callable

import aiohttp

from protocols.signing._codec import b64decode, parse_time
from protocols.signing.beckn import sign_body
from protocols.signing.errors import SignatureError
from protocols.signing.keys import Ed25519Signer, PublicKeyRecord
from protocols.streams import read_body

MAX_RESPONSE_BYTES = 256 * 1024
MISS = object()  # ``AnswerCache.get``: nothing held (a held ``None`` is a registry's "not found")


class AnswerCache:
    """A registry's answers by (subscriber id, key id), found or not, each until its own
    deadline; bounded, least recently used first. Both registry clients (Beckn 1.1 ``/lookup``
    and DeDi) keep their answers in one, so a burst of messages costs one round trip."""

    def __init__(self, *, clock: Callable[[], float], max_entries: int):
        self.clock = clock
        self.max_entries = max_entries
        self._entries: OrderedDict[tuple[str, str], tuple[float, object]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self):
        return iter(self._entries)

    def get(self, key: tuple[str, str]) -> object:
        """The answer held for ``key`` while it is fresh, else ``MISS``."""
        hit = self._entries.get(key)
        if hit is None or hit[0] <= self.clock():
            return MISS
        self._entries.move_to_end(key)
        return hit[1]

    def put(self, key: tuple[str, str], answer: object, ttl_s: float) -> None:
        self._entries[key] = (self.clock() + ttl_s, answer)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)

    def forget(self, key: tuple[str, str]) -> None:
        self._entries.pop(key, None)


class RegistryClient:
    def __init__(
        self,
        *,
        session: aiohttp.ClientSession,
        base_url: str,
        clock: Callable[[], float],
        cache_ttl_s: float = 300.0,
        negative_ttl_s: float = 30.0,
        max_entries: int = 256,
        timeout_s: float = 5.0,
        signer_factory: Callable[[float], Ed25519Signer] | None = None,
        request_ttl_s: int = 30,
    ):
        self.session = session
        self.lookup_url = base_url.rstrip("/") + "/lookup"
        self.clock = clock
        self.cache_ttl_s = cache_ttl_s
        self.negative_ttl_s = negative_ttl_s
        self.max_entries = max_entries
        self.timeout_s = timeout_s
        self.signer_factory = signer_factory
        self.request_ttl_s = request_ttl_s
        self.requests_sent = 0
        self._cache = AnswerCache(clock=clock, max_entries=max_entries)

    async def lookup(self, subscriber_id: str, key_id: str) -> PublicKeyRecord | None:
        now_s = self.clock()
        cache_key = (subscriber_id, key_id)
        hit = self._cache.get(cache_key)
        if hit is not MISS:
            return hit
        record = await self._fetch(subscriber_id, key_id)
        ttl_s = self.cache_ttl_s if record is not None else self.negative_ttl_s
        if record is not None:
            ttl_s = min(ttl_s, max(0.0, record.valid_until_s - now_s))
        self._cache.put(cache_key, record, ttl_s)
        return record

    def forget(self, subscriber_id: str, key_id: str) -> None:
        self._cache.forget((subscriber_id, key_id))

    async def _fetch(self, subscriber_id: str, key_id: str) -> PublicKeyRecord | None:
        body = json.dumps({"subscriber_id": subscriber_id, "key_id": key_id}, separators=(",", ":")).encode()
        headers = {"Content-Type": "application/json"}
        if self.signer_factory is not None:
            now_s = int(self.clock())
            headers["Authorization"] = sign_body(
                body, self.signer_factory(now_s), created_s=now_s, expires_s=now_s + self.request_ttl_s
            )
        self.requests_sent += 1
        try:
            raw = await asyncio.wait_for(self._post(body, headers), self.timeout_s)
        except asyncio.TimeoutError:
            raise SignatureError("registry-unavailable", f"registry did not answer within {self.timeout_s} s") from None
        except aiohttp.ClientError as exc:
            raise SignatureError("registry-unavailable", f"registry request failed: {type(exc).__name__}") from None
        try:
            records = json.loads(raw)
        except (ValueError, RecursionError):  # nested past the parser's depth is not JSON either
            raise SignatureError("registry-malformed", "registry answer is not JSON") from None
        if not isinstance(records, list):
            raise SignatureError("registry-malformed", "registry answer must be an array of subscriptions")
        for item in records:
            if not isinstance(item, dict):
                continue
            if (item.get("subscriber_id"), item.get("key_id") or item.get("unique_key_id")) != (subscriber_id, key_id):
                continue
            if item.get("status") != "SUBSCRIBED":
                continue
            try:
                return PublicKeyRecord(
                    subscriber_id, key_id,
                    b64decode(item.get("signing_public_key"), field="signing_public_key", length=32),
                    parse_time(item.get("valid_from"), field="valid_from"),
                    parse_time(item.get("valid_until"), field="valid_until"),
                )
            except SignatureError as exc:
                raise SignatureError("registry-malformed", f"registry record for {subscriber_id!r}: {exc}") from None
        return None

    async def _post(self, body: bytes, headers: dict) -> bytes:
        async with self.session.post(self.lookup_url, data=body, headers=headers) as resp:
            if resp.status != 200:
                raise SignatureError("registry-unavailable", f"registry answered HTTP {resp.status}")
            raw = await read_body(resp.content, MAX_RESPONSE_BYTES)
            if len(raw) > MAX_RESPONSE_BYTES:
                raise SignatureError("registry-malformed", f"registry answer larger than {MAX_RESPONSE_BYTES} bytes")
            return raw
