"""Fronted chargers' catalogs to the network's catalog discovery services, signed by the chargers.

A catalog discovery service takes a ``catalog/publish`` only from the provider whose catalog it
is (the signer must be the request's and the catalog's ``bppId``), so a bridge cannot publish
in a charger's name, and must not: a buyer trusts the charger, not the bridge. Instead a
charger on MQTT keeps its own signed ``catalog/publish`` requests retained on the broker (one
for its current catalog, one withdrawing it; ``directory``), and the bridge POSTs them,
byte-exact with the charger's ``Authorization``, to every service in ``[bridge]
catalog_services``: when the charger comes online or its request changes, and the withdrawal
when it goes offline. The request names no ``bppUri``, so each service answers with its results
in the synchronous reply (no callback can reach a charger behind NAT); several bridges sending
the same request is harmless, a service answers a repeated ``messageId`` with the same body as
it did the first time.

A charger that retains no such request (Beckn 1.1, or a charger not yet publishing this way)
is counted (``stats["catalog_unsigned"]``) and left out: a bridge never signs a catalog.
"""
from __future__ import annotations

import asyncio
import logging
import random as _random
from typing import Callable

import aiohttp

from protocols.errors import ProtocolError
from protocols.mqtt import framing
from protocols.signing.beckn import AUTHORIZATION

log = logging.getLogger("urja.bridge")


class CatalogServiceSink:
    def __init__(self, *, services: tuple[str, ...] | list[str], session: Callable[[], aiohttp.ClientSession],
                 attempts: int = 3, retry_initial_s: float = 1.0, timeout_s: float = 10.0,
                 rng: _random.Random | None = None):
        self.services = tuple(s.rstrip("/") for s in services)
        self.session = session
        self.attempts = attempts
        self.retry_initial_s = retry_initial_s
        self.timeout_s = timeout_s
        self.rng = rng or _random.Random()
        self.stats: dict[str, int] = {}
        self.last: dict[tuple[str, str], int | None] = {}  # (service, charger) -> HTTP status of the last try

    def _count(self, name: str) -> None:
        self.stats[name] = self.stats.get(name, 0) + 1

    async def publish(self, charger_id: str, catalog: bytes | None, request: bytes | None) -> None:
        await self._send(charger_id, request, "published")

    async def withdraw(self, charger_id: str, request: bytes | None) -> None:
        await self._send(charger_id, request, "withdrawn")

    async def _send(self, charger_id: str, request: bytes | None, what: str) -> None:
        if request is None:
            self._count("catalog_unsigned")
            return
        try:
            frame = framing.unframe(request)
        except ProtocolError:
            self._count("catalog_unreadable")
            return
        headers = {AUTHORIZATION: frame.authorization, "Content-Type": "application/json"}
        await asyncio.gather(*(self._post(url, charger_id, frame.body, headers, what) for url in self.services))

    async def _post(self, url: str, charger_id: str, body: bytes, headers: dict, what: str) -> None:
        status = None
        for attempt in range(self.attempts):
            try:
                async with self.session().post(f"{url}/catalog/publish", data=body, headers=headers,
                                               timeout=aiohttp.ClientTimeout(total=self.timeout_s)) as resp:
                    status = resp.status
                    await resp.read()
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                log.debug("catalog of %s to %s: %s", charger_id, url, exc)
                status = None
            if status is not None and status < 500:
                break
            if attempt + 1 < self.attempts:
                await asyncio.sleep(self.retry_initial_s * (2 ** attempt) * (0.5 + 0.5 * self.rng.random()))
        self.last[(url, charger_id)] = status
        if status == 200:
            self._count(f"catalog_{what}")
        else:
            # 409 carries the service's refusals (AckNoCallback); the charger's own publisher reads them
            self._count("catalog_refused" if status is not None else "catalog_unreachable")
            log.warning("catalog of %s %s at %s: %s", charger_id, what, url,
                        f"HTTP {status}" if status is not None else "not reachable")
