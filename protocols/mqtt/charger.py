"""The charger's side of the MQTT binding: listen where searches for its place arrive, hand
every message to the transport-agnostic provider, and publish its answers.

Why the binding stays thin: the provider (``protocols.beckn``) verifies signatures, parses and
decides; it is the same object behind the HTTP binding. What only MQTT needs lives here:

* which topics to listen on (the charger's geohash cells at every search precision, its inbox);
* dropping, before the provider sees them, payloads that are oversized, unframed, past their
  ``ttl`` (counted in ``stats["expired"]``), or exact repeats of a message already answered
  (QoS 1 redelivery; counted in ``stats["duplicates"]``);
* keeping messages of one transaction in arrival order while transactions run concurrently;
* the retained, signed catalog and presence with a last will that says offline;
* the durable outbox: unsolicited messages (status changes, receipts) are written to the
  journal first and delivered, with retries, whenever a broker is reachable.

The provider contract this binding programs against (``protocols.beckn`` provides it)::

    await provider.receive(action, body: bytes, headers: dict) -> Reply
        Reply.ack: the ACK/NACK document (Reply.acked: bool); Reply.callbacks: [Outgoing];
        Reply.refusal: the signed error callback of a NACK to tell its (verified) sender, or None
        Outgoing(action, body: bytes, headers: {"Authorization": ...}, receiver_id, receiver_uri, ttl_s=None)
    provider.catalog() -> Outgoing      # a signed on_search-shaped catalog for the retained topic
"""
from __future__ import annotations

import asyncio
import inspect
import logging
import random as _random
from collections import OrderedDict
from typing import Any, Callable

from agent.aio import cancel_and_wait
from protocols.beckn import messages
from protocols.errors import ProtocolError
from protocols.mqtt import framing
from protocols.mqtt.topics import Topics, check_subscriber_id
from protocols.mqtt.transport import MqttTransport, TransportError
from protocols.outbox import OutboxPump, Outcome
from protocols.signing.beckn import frame_message

DEFAULT_TTL_S = messages.DEFAULT_TTL_S
SEEN_LIMIT = 4096
OUTBOX_TTL_S = 7 * 86400
_STATS = ("received", "answered", "published", "expired", "duplicates", "malformed", "oversized", "nacked",
          "unanswered", "provider_errors", "publish_failures", "outbox_sent", "outbox_retries", "retained_ignored")


def _field(obj: Any, name: str, default=None):
    if isinstance(obj, dict):
        return obj.get(name, default)
    return getattr(obj, name, default)


def _acked(reply) -> bool:
    """``Reply.acked`` of ``protocols.beckn.bpp`` (its ``ack`` is the ACK/NACK document)."""
    acked = getattr(reply, "acked", None)
    if isinstance(acked, bool):
        return acked
    ack = _field(reply, "ack", False)
    if isinstance(ack, dict):
        return ack.get("message", {}).get("ack", {}).get("status") == "ACK"
    return bool(ack)


log = logging.getLogger("urja.mqtt")

class ChargerLink:
    """One charger on the network: transport + topics + provider + (optionally) the journal's outbox.

    ``signer_for(now_s)`` gives the charger's current signing key (for presence and for
    re-signing outbox messages whose signature window has passed); ``clock()`` is wall time.
    """

    def __init__(self, *, transport: MqttTransport, provider, subscriber_id: str, lat: float, lon: float,
                 signer_for: framing.SignerFor, clock: Callable[[], float], topics: Topics | None = None,
                 journal=None, rng: _random.Random | None = None, catalog_refresh_s: float = 240.0,
                 outbox_batch: int = 20, outbox_retry_initial_s: float = 1.0, outbox_retry_max_s: float = 60.0,
                 outbox_poll_s: float = 1.0, default_ttl_s: int = DEFAULT_TTL_S, bridges: tuple[str, ...] = (),
                 clock_status: Callable[[], dict | None] | None = None):
        self.transport = transport
        self.provider = provider
        self.subscriber_id = check_subscriber_id(subscriber_id)
        self.lat, self.lon = lat, lon
        self.signer_for = signer_for
        self.clock = clock
        self.topics = topics or Topics()
        self.journal = journal
        self._rng = rng or _random.Random()
        self.catalog_refresh_s = catalog_refresh_s
        self.outbox_batch = outbox_batch
        self.outbox_retry_initial_s = outbox_retry_initial_s
        self.outbox_retry_max_s = outbox_retry_max_s
        self.outbox_poll_s = outbox_poll_s
        self.default_ttl_s = default_ttl_s
        self.bridges = tuple(bridges)  # HTTP bridges that may front this charger, said in its presence
        self.clock_status = clock_status  # the clock's trust, said in its presence
        self.stats = {name: 0 for name in _STATS}
        self._seen: OrderedDict[tuple[str, str], float] = OrderedDict()
        self._chains: dict[str, asyncio.Task] = {}
        self._work: set[asyncio.Task] = set()
        self._tasks: list[asyncio.Task] = []
        self._announce = asyncio.Event()
        self.inbox_topic = self.topics.inbox(self.subscriber_id)
        self.uri = f"mqtt://network/{self.inbox_topic}"
        self.catalog_topic = self.topics.catalog(lat, lon, self.subscriber_id)
        self.presence_topic = self.topics.presence(lat, lon, self.subscriber_id)
        self.search_topics = self.topics.charger_search_filters(lat, lon)
        transport.on_message = self._on_message
        transport.on_connect = self._on_connect
        self._closing = False
        self._pump = None
        if journal is not None:
            self._pump = OutboxPump(name=f"mqtt-outbox:{self.subscriber_id}", outbox=journal,
                                    topic_prefix=self.topics.root + "/", deliver=self._deliver_queued, clock=clock,
                                    rng=self._rng, batch=outbox_batch, poll_s=outbox_poll_s,
                                    retry_initial_s=outbox_retry_initial_s, retry_max_s=outbox_retry_max_s,
                                    before_round=self._await_broker, logger=log)

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        now = self.clock()
        # The will is signed now and stays valid for a long window: it is published by the broker
        # whenever this connection dies, possibly days later.
        will = self._presence_payload(online=False, now_s=now, window_s=30 * 86400)
        self.transport.set_will(self.presence_topic, will, qos=1, retain=True)
        self.transport.subscribe(self.inbox_topic, 1)
        for topic in self.search_topics:
            self.transport.subscribe(topic, 1)
        name = self.subscriber_id
        self._tasks.append(asyncio.create_task(self._announcer(), name=f"mqtt-announce:{name}"))
        if self._pump is not None:
            self._pump.start()
        if not self.transport._tasks:
            await self.transport.start()

    async def close(self, *, announce_offline: bool = True) -> None:
        """Say offline (retained) while still connected, then stop every task and the transport."""
        self._closing = True
        if announce_offline and self.transport.connected.is_set():
            try:
                payload = self._presence_payload(online=False, now_s=self.clock(), window_s=30 * 86400)
                await self.transport.publish(self.presence_topic, payload, qos=1, retain=True, timeout_s=2)
            except TransportError:
                pass  # the will covers us
        if self._pump is not None:
            await self._pump.close()
        await cancel_and_wait(self._tasks + list(self._work))
        self._tasks, self._work, self._chains = [], set(), {}
        await self.transport.close()

    async def __aenter__(self):
        await self.start()
        return self

    async def __aexit__(self, *exc):
        await self.close()

    # ------------------------------------------------------------------ unsolicited messages

    async def send(self, outgoing) -> None:
        """The provider's ``send``: durable through the journal when there is one, else direct."""
        action = _field(outgoing, "action")
        body = _field(outgoing, "body")
        headers = _field(outgoing, "headers") or {}
        receiver = _field(outgoing, "receiver_id")
        if receiver is None:
            # an unaddressed on_search is the provider's fresh catalog: it replaces the retained one
            if action in ("on_search", "on_discover"):
                self._announce.set()
            return
        topic = self.topics.inbox(receiver)
        payload = frame_message(body, headers["Authorization"], headers.get("X-Gateway-Authorization"))
        if self.journal is None:
            await self.transport.publish(topic, payload, qos=1, expiry_s=OUTBOX_TTL_S)
            self.stats["published"] += 1
            return
        try:
            key = f"{action}:{framing.peek_routing(body).message_id}"
        except framing.FrameError:
            key = None
        self.journal.enqueue(topic, payload, key=key)
        if self._pump is not None:
            self._pump.kick()

    def refresh_catalog(self) -> None:
        """Republish the retained catalog and presence soon (connectors or prices changed)."""
        self._announce.set()

    # ------------------------------------------------------------------ receiving

    def _on_connect(self) -> None:
        self._announce.set()
        if self._pump is not None:
            self._pump.kick()

    def _on_message(self, topic: str, payload: bytes, retained: bool) -> None:
        kind = self.topics.kind(topic)
        if kind not in ("search", "inbox"):
            return
        if retained:
            self.stats["retained_ignored"] += 1  # a stale request left on a topic is never acted on
            return
        self.stats["received"] += 1
        try:
            frame = framing.unframe(payload)
            routing = framing.peek_routing(frame.body)
        except framing.FrameError as exc:
            self.stats["oversized" if exc.code == "payload-too-large" else "malformed"] += 1
            return
        if routing.expired(self.clock(), self.default_ttl_s):
            self.stats["expired"] += 1
            return
        key = (routing.message_id, frame.authorization)
        if key in self._seen:
            self.stats["duplicates"] += 1
            return
        self._remember(key, routing)
        previous = self._chains.get(routing.transaction_id)
        task = asyncio.create_task(self._handle(previous, frame, routing, key),
                                   name=f"mqtt-handle:{self.subscriber_id}:{routing.message_id}")
        self._chains[routing.transaction_id] = task
        self._work.add(task)
        task.add_done_callback(lambda t, txn=routing.transaction_id: self._done(t, txn))

    def _remember(self, key, routing) -> None:
        ttl = routing.ttl_s if routing.ttl_s is not None else self.default_ttl_s
        self._seen[key] = routing.timestamp_s + ttl
        if len(self._seen) > SEEN_LIMIT:
            now = self.clock()
            for k in [k for k, until in self._seen.items() if until < now]:
                del self._seen[k]
            while len(self._seen) > SEEN_LIMIT:
                self._seen.popitem(last=False)

    def _done(self, task: asyncio.Task, txn: str) -> None:
        self._work.discard(task)
        if self._chains.get(txn) is task:
            del self._chains[txn]
        if not task.cancelled() and task.exception() is not None:
            self.stats["provider_errors"] += 1

    async def _handle(self, previous, frame, routing, key) -> None:
        if previous is not None:
            # keep a transaction's messages in arrival order; the previous one's fate is its own
            await asyncio.gather(previous, return_exceptions=True)
        headers = framing.headers_of(frame)
        try:
            reply = self.provider.receive(routing.action, frame.body, headers)
            if inspect.isawaitable(reply):
                reply = await reply
        except ProtocolError:
            self.stats["provider_errors"] += 1
            self._seen.pop(key, None)
            return
        if not _acked(reply):
            self.stats["nacked"] += 1
            # a message that failed verification must not shadow a genuine copy with the same id
            self._seen.pop(key, None)
            # Over MQTT there is no synchronous answer: a refusal travels as the provider's signed
            # ``on_<action>`` with ``error`` to the sender's inbox, so the buyer learns why. The
            # provider makes one only for a verified sender that is the bap_id it names; anything
            # else (a forged request, a search that does not match) is counted and dropped.
            refusal = _field(reply, "refusal")
            if refusal is None:
                self.stats["unanswered"] += 1
                return
            await self._publish_outgoing(refusal)
            return
        self.stats["answered"] += 1
        for outgoing in _field(reply, "callbacks", ()) or ():
            await self._publish_outgoing(outgoing)

    async def _publish_outgoing(self, outgoing) -> None:
        headers = _field(outgoing, "headers") or {}
        body = _field(outgoing, "body")
        try:
            topic = self.topics.inbox(_field(outgoing, "receiver_id"))
            payload = frame_message(body, headers["Authorization"], headers.get("X-Gateway-Authorization"))
            ttl = _field(outgoing, "ttl_s") or framing.peek_routing(body).ttl_s or self.default_ttl_s
            await self.transport.publish(topic, payload, qos=1, expiry_s=ttl, timeout_s=ttl)
            self.stats["published"] += 1
        except (ProtocolError, KeyError):
            self.stats["publish_failures"] += 1

    # ------------------------------------------------------------------ retained catalog and presence

    def _presence_payload(self, *, online: bool, now_s: float, window_s: int) -> bytes:
        body = framing.presence_body(subscriber_id=self.subscriber_id, online=online, now_s=now_s, lat=self.lat,
                                     lon=self.lon, catalog_topic=self.catalog_topic, bridges=self.bridges,
                                     clock=self.clock_status() if self.clock_status is not None else None)
        return framing.sign_and_frame(body, self.signer_for(now_s), now_s=now_s, window_s=window_s)

    async def announce(self) -> None:
        """Publish the retained catalog, then presence ONLINE (a node seeing online finds a catalog)."""
        catalog = self.provider.catalog()
        now = self.clock()
        # Retained means read long after publication: sign for two refresh periods, not for the
        # provider's short callback window (the offer inside carries its own validity).
        payload = framing.sign_and_frame(_field(catalog, "body"), self.signer_for(now), now_s=now,
                                         window_s=int(2 * self.catalog_refresh_s))
        await self.transport.publish(self.catalog_topic, payload, qos=1, retain=True)
        await self.transport.publish(self.presence_topic,
                                     self._presence_payload(online=True, now_s=now,
                                                            window_s=int(2 * self.catalog_refresh_s)),
                                     qos=1, retain=True)

    async def _announcer(self) -> None:
        while True:
            try:
                await asyncio.wait_for(self._announce.wait(), self.catalog_refresh_s)
            except asyncio.TimeoutError:
                pass
            self._announce.clear()
            if not self.transport.connected.is_set():
                continue
            try:
                await self.announce()
            except Exception as exc:  # any failure: count, retry later; the catalog must keep refreshing
                self.stats["publish_failures"] += 1
                if not isinstance(exc, ProtocolError):
                    log.exception("announcing the catalog failed")
                await asyncio.sleep(self.outbox_retry_initial_s)
                self._announce.set()

    # ------------------------------------------------------------------ outbox

    async def _await_broker(self) -> None:
        if not self.transport.connected.is_set():
            await self.transport.connected.wait()

    async def _deliver_queued(self, entry) -> Outcome:
        """Publish one queued message; a failed publish means the broker is gone, so the rest
        of the batch waits for the next connection rather than failing one by one."""
        payload = self._fresh(entry.payload)
        try:
            await self.transport.publish(entry.topic, payload, qos=1, expiry_s=OUTBOX_TTL_S, timeout_s=10)
        except TransportError:
            self.stats["outbox_retries"] += 1
            return Outcome.stop()
        self.stats["outbox_sent"] += 1
        return Outcome.delivered()

    def _fresh(self, payload: bytes) -> bytes:
        """Re-sign a queued message whose signature window passed while the broker was away."""
        try:
            frame = framing.unframe(payload)
            now = self.clock()
            if framing.signature_expires_s(frame) > now + 5:
                return payload
            return framing.sign_and_frame(frame.body, self.signer_for(now), now_s=now, window_s=OUTBOX_TTL_S)
        except ProtocolError:
            return payload
