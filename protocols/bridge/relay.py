"""Callbacks from chargers to buyers on HTTP: the exact bytes with the charger's own signature.

A charger publishes every ``on_*`` to its buyer's inbox topic (``{root}/inbox/<bapId>``), as it
does for a buyer on MQTT. A callback whose ``bapUri`` is http(s) can only be delivered by a
bridge: the bridge that ``Directory.owner`` names POSTs it to ``<bapUri>/<action>`` with the
charger's ``Authorization`` header unchanged, so the buyer verifies the charger, not the
bridge. Nothing is re-signed, nothing re-serialised.

Only callbacks of chargers that name this bridge are relayed, and only when the signature's
``keyId`` names the charger of ``bppId``: a participant on the broker cannot use the bridge to
post in a charger's name (the buyer would refuse the signature anyway; this keeps the bridge
from carrying it). Delivery retries a few times with backoff; a QoS 1 repeat of a callback
already delivered is dropped.
"""
from __future__ import annotations

import asyncio
import logging
import random as _random
from collections import OrderedDict
from typing import Callable

import aiohttp

from protocols.bridge import envelope
from protocols.bridge.directory import Directory
from protocols.errors import ProtocolError
from protocols.mqtt import framing
from protocols.signing.beckn import AUTHORIZATION, GATEWAY_AUTHORIZATION, parse_signature_header

log = logging.getLogger("urja.bridge")
SEEN_LIMIT = 8192


class CallbackRelay:
    def __init__(self, *, directory: Directory, session: Callable[[], aiohttp.ClientSession],
                 attempts: int = 4, retry_initial_s: float = 0.5, timeout_s: float = 10.0,
                 rng: _random.Random | None = None, stats: dict | None = None):
        self.directory = directory
        self.session = session
        self.attempts = attempts
        self.retry_initial_s = retry_initial_s
        self.timeout_s = timeout_s
        self.rng = rng or _random.Random()
        self.stats = stats if stats is not None else {}
        self._seen: OrderedDict[tuple[str, str], None] = OrderedDict()
        self.tasks: set[asyncio.Task] = set()

    def _count(self, name: str) -> None:
        self.stats[name] = self.stats.get(name, 0) + 1

    def take(self, payload: bytes) -> None:
        """An inbox message: relay it if it is a callback this bridge owns, else ignore it."""
        try:
            frame = framing.unframe(payload)
            env = envelope.read(frame.body)
        except ProtocolError:
            return  # not ours to judge: the addressee refuses what it cannot read
        if not env.action.startswith(envelope.CALLBACK_PREFIX) or not envelope.is_http_uri(env.bap_uri):
            return
        charger_id = env.bpp_id
        if charger_id is None or not self.directory.fronts(charger_id):
            return
        try:
            signer = parse_signature_header(frame.authorization).subscriber_id
        except ProtocolError:
            signer = None
        if signer != charger_id:
            self._count("relay_refused")
            return
        if self.directory.owner(charger_id, env.transaction_id) != self.directory.bridge_id:
            self._count("relay_not_owner")
            return
        key = (env.message_id, frame.authorization)
        if key in self._seen:
            self._count("relay_duplicates")
            return
        self._seen[key] = None
        while len(self._seen) > SEEN_LIMIT:
            self._seen.popitem(last=False)
        headers = {AUTHORIZATION: frame.authorization, "Content-Type": "application/json"}
        if frame.gateway_authorization is not None:
            headers[GATEWAY_AUTHORIZATION] = frame.gateway_authorization
        url = env.bap_uri.rstrip("/") + "/" + env.action
        task = asyncio.create_task(self._deliver(url, frame.body, headers), name=f"bridge-relay:{env.message_id}")
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)

    async def _deliver(self, url: str, body: bytes, headers: dict) -> None:
        for attempt in range(self.attempts):
            try:
                async with self.session().post(url, data=body, headers=headers,
                                               timeout=aiohttp.ClientTimeout(total=self.timeout_s)) as resp:
                    await resp.read()
                    if resp.status < 500:
                        # a 4xx is the buyer's verdict on the charger's message: not ours to retry
                        self._count("relayed" if resp.status < 300 else "relay_refused_by_buyer")
                        return
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                log.debug("relay to %s failed: %s", url, exc)
            if attempt + 1 < self.attempts:
                await asyncio.sleep(self.retry_initial_s * (2 ** attempt) * (0.5 + 0.5 * self.rng.random()))
        self._count("relay_failed")
        log.warning("callback to %s not delivered after %d attempts", url, self.attempts)
