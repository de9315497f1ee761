"""``Bridge``: Beckn over HTTP in front, the chargers' MQTT inboxes behind.

One request, in order of what is checked (each refusal is what the charger would answer, so
a bridge refuses nothing a charger would take and carries nothing it can tell a charger would
refuse):

1. size: a body over ``max_body_bytes`` is refused (413) before it is read further;
2. context: action (the path's), transaction and message ids, ``bppId`` as one topic level,
   read in Beckn 2.0 camelCase or 1.1 snake_case (``envelope``);
3. the ``Authorization`` header (BECKN-006): well formed, signed by the context's ``bapId``,
   inside its window; with a registry configured, verified against the signer's key;
4. the charger: one this bridge fronts (its presence names the bridge), and ONLINE; an
   offline charger is answered at once with an error, never left to time out;
5. forward: the exact bytes with the buyer's headers, framed as on MQTT, QoS 1 to
   ``{root}/inbox/<bppId>``, expiring with the message's ``ttl``. Nothing else is written to.

A Beckn 1.1 ``search`` or a 2.0 ``discover`` without ``bppId`` (a node asking the chargers of an
area directly, as on MQTT) is published, byte-exact, to the geohash search topics of its
circle, exactly those a node on MQTT would use, so only chargers in the area get it; a 2.0
discover's sender certificate (``Urja-Agency-Certificate``) travels in the frame as on MQTT.
Discovery across a whole network goes through catalog discovery services instead, which the
bridge feeds.

The bridge's catalog duties go through ``sink`` (``CatalogSink``): called with a fronted
charger's retained, signed catalog whenever it changes, and told to withdraw it when the
charger goes offline or stops naming this bridge.
"""
from __future__ import annotations

import asyncio
import logging
import random as _random
from typing import Callable, Protocol

import aiohttp
from aiohttp import web

from agent.aio import cancel_and_wait
from protocols.beckn import errors as codes
from protocols.beckn.envelope import decode
from protocols.beckn.errors import BecknError
from protocols.beckn.readers import parse_request
from protocols.bridge import answers, envelope
from protocols.bridge.directory import ChargerEntry, Directory, bridge_presence
from protocols.bridge.relay import CallbackRelay
from protocols.bridge.settings import BridgeSettings
from protocols.errors import ProtocolError
from protocols.http.serve import serve
from protocols.mqtt.topics import Topics
from protocols.mqtt.transport import MqttTransport, TransportError
from protocols.signing.beckn import (
    AUTHORIZATION,
    CERTIFICATE_HEADER,
    GATEWAY_AUTHORIZATION,
    Verifier,
    frame_message,
    parse_signature_header,
)
from protocols.signing.keys import KeyLookup

log = logging.getLogger("urja.bridge")
ACTIONS = tuple(dict.fromkeys(envelope.V2_ACTIONS + envelope.V1_ACTIONS))


class CatalogSink(Protocol):
    """Where fronted chargers' catalogs go: the network's catalog discovery services.

    ``catalog`` is the charger's retained, signed catalog; ``request`` its own signed
    ``catalog/publish`` request (for the catalog, or for withdrawing it) where the charger
    retains one, else None. All are framed payloads, exactly as the charger signed them."""

    async def publish(self, charger_id: str, catalog: bytes | None, request: bytes | None) -> None: ...

    async def withdraw(self, charger_id: str, request: bytes | None) -> None: ...


class Refusal(Exception):
    """A request the bridge answers itself: HTTP status, Beckn error code, reason, JSON path."""

    def __init__(self, status: int, code: str, reason: str, path: str | None = None, *, ack: bool = False):
        super().__init__(reason)
        self.status, self.code, self.reason, self.path, self.ack = status, code, reason, path, ack


class Bridge:
    def __init__(self, *, settings: BridgeSettings, signer_for: Callable[[float], object],
                 clock: Callable[[], float], sink: CatalogSink | None = None, buyer_keys: KeyLookup | None = None,
                 session: aiohttp.ClientSession | None = None, rng: _random.Random | None = None,
                 transport: MqttTransport | None = None):
        self.settings = settings
        self.bridge_id = settings.bridge_id
        self.signer_for = signer_for
        self.clock = clock
        self.sink = sink
        self.rng = rng or _random.Random()
        net = settings.network
        self.topics = Topics(net.topic_root)
        self.transport = transport or MqttTransport(
            net.mqtt_settings(client_id=f"{self.bridge_id}-{self.rng.getrandbits(32):08x}",
                              backoff_initial_s=0.2, backoff_max_s=5.0), rng=self.rng)
        self.transport.on_message = self._on_message
        self.transport.on_connect = self._on_connect
        self.verifier = Verifier(lookup=buyer_keys, clock=clock, clock_skew_s=settings.clock_skew_s,
                                 max_body_bytes=settings.max_body_bytes) if buyer_keys is not None else None
        self.directory = Directory(bridge_id=self.bridge_id, topics=self.topics, on_change=self._changed)
        self.stats: dict[str, int] = {}
        self._session = session
        self._own_session = session is None
        self.relay = CallbackRelay(directory=self.directory, session=self.http_session, attempts=settings.relay_attempts,
                                   rng=self.rng, stats=self.stats)
        self._runner: web.AppRunner | None = None
        self._sink_queue: asyncio.Queue | None = None
        self._tasks: list[asyncio.Task] = []
        self.port: int | None = None
        self.presence_topic = f"{self.topics.root}/bridges/{self.bridge_id}"
        self._learned = asyncio.Event()

    # ------------------------------------------------------------------ lifecycle

    def http_session(self) -> aiohttp.ClientSession:
        """The one HTTP client session of this bridge (relays, catalog services)."""
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    async def start(self, *, connect_timeout_s: float | None = None) -> int:
        """Join the brokers, then open the HTTP endpoint; returns the bound port."""
        now = self.clock()
        self.transport.set_will(self.presence_topic, bridge_presence(
            bridge_id=self.bridge_id, online=False, url=self.settings.public_url, now_s=now), qos=1, retain=True)
        for topic_filter in self.directory.filters() + [f"{self.topics.root}/inbox/+"]:
            self.transport.subscribe(topic_filter, 1)
        self._sink_queue = asyncio.Queue()
        self._tasks.append(asyncio.create_task(self._sink_worker(), name=f"bridge-sink:{self.bridge_id}"))
        await self.transport.start()
        if connect_timeout_s is not None:
            await self.transport.wait_connected(connect_timeout_s)
        self._runner, self.port = await serve(self.app(), self.settings.listen_host, self.settings.listen_port)
        return self.port

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self.transport.connected.is_set():
            try:
                await self.transport.publish(self.presence_topic, bridge_presence(
                    bridge_id=self.bridge_id, online=False, url=self.settings.public_url, now_s=self.clock()),
                    qos=1, retain=True, timeout_s=2)
            except TransportError:
                pass  # the last will says it
        await cancel_and_wait(self._tasks + list(self.relay.tasks))
        self._tasks = []
        await self.transport.close()
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self):
        await self.start()
        return self

    async def __aexit__(self, *exc):
        await self.close()

    def _count(self, name: str) -> None:
        self.stats[name] = self.stats.get(name, 0) + 1

    async def until(self, predicate: Callable[[Directory], bool], timeout_s: float) -> None:
        """Wait until the directory satisfies ``predicate`` (woken by each retained message)."""
        deadline = asyncio.get_running_loop().time() + timeout_s
        while not predicate(self.directory):
            left = deadline - asyncio.get_running_loop().time()
            if left <= 0:
                raise TimeoutError(f"bridge {self.bridge_id}: directory not as expected within {timeout_s} s")
            self._learned.clear()
            try:
                await asyncio.wait_for(self._learned.wait(), left)
            except asyncio.TimeoutError:
                pass

    # ------------------------------------------------------------------ MQTT side

    def _on_connect(self) -> None:
        payload = bridge_presence(bridge_id=self.bridge_id, online=True, url=self.settings.public_url,
                                  now_s=self.clock())
        try:
            self.transport.publish_nowait(self.presence_topic, payload, qos=1, retain=True)
        except TransportError:
            pass  # reconnecting: said again on the next connection

    def _on_message(self, topic: str, payload: bytes, retained: bool) -> None:
        if self.directory.handle(topic, payload):
            self._learned.set()
            return
        if not retained and self.topics.kind(topic) == "inbox":
            self.relay.take(payload)

    def _changed(self, entry: ChargerEntry, what: str) -> None:
        if self.sink is not None and self._sink_queue is not None:
            self._sink_queue.put_nowait((entry.charger_id, what, entry.catalog, entry.publish_request,
                                         entry.withdraw_request))

    async def _sink_worker(self) -> None:
        """Catalog changes in the order they happened, one at a time: a withdraw never
        overtakes the publish before it."""
        while True:
            charger_id, what, catalog, publish_request, withdraw_request = await self._sink_queue.get()
            try:
                if what == "offline":
                    await self.sink.withdraw(charger_id, withdraw_request)
                elif catalog is not None or publish_request is not None:
                    await self.sink.publish(charger_id, catalog, publish_request)
                self._count(f"catalog_{'withdrawn' if what == 'offline' else 'published'}")
            except Exception:  # a sink's failure must not stop the next change from being passed on
                self._count("catalog_sink_errors")
                log.exception("catalog sink failed for %s", charger_id)

    # ------------------------------------------------------------------ HTTP side

    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.settings.max_body_bytes + 1024)
        for action in ACTIONS:
            app.router.add_post(f"/{action}", self._handle)
        return app

    async def _handle(self, request: web.Request) -> web.Response:
        action = request.path.rsplit("/", 1)[-1]
        body = b""
        env = None
        try:
            if (request.content_length or 0) > self.settings.max_body_bytes:
                raise Refusal(413, codes.INVALID_REQUEST, f"body over {self.settings.max_body_bytes} bytes")
            body = await request.read()
            if len(body) > self.settings.max_body_bytes:
                raise Refusal(413, codes.INVALID_REQUEST, f"body over {self.settings.max_body_bytes} bytes")
            env = self._envelope(body, action)
            await self._check_signature(request, body, env)
            await self._forward(env, body, request.headers)
        except Refusal as refusal:
            self._count(f"refused_{refusal.status}")
            return self._answer(env, body, refusal)
        self._count("forwarded")
        return self._answer(env, body, None)

    def _envelope(self, body: bytes, action: str) -> envelope.Envelope:
        try:
            env = envelope.read(body)
        except envelope.EnvelopeError as exc:
            raise Refusal(400, codes.INVALID_REQUEST, str(exc), exc.path) from None
        if env.action != action:
            raise Refusal(400, codes.INVALID_REQUEST, f"action {env.action!r} posted to /{action}", "context.action")
        if action not in (envelope.V2_ACTIONS if env.version == "2" else envelope.V1_ACTIONS):
            raise Refusal(400, codes.ACTION_NOT_APPLICABLE, f"/{action} is not a Beckn {env.version} action",
                          "context.action")
        if env.bap_id is None or not envelope.is_http_uri(env.bap_uri):
            raise Refusal(400, codes.INVALID_REQUEST, "a buyer reached over HTTP names its bapId and an http(s) "
                          "bapUri for the callbacks", env.key("bap_uri"))
        return env

    async def _check_signature(self, request: web.Request, body: bytes, env: envelope.Envelope) -> None:
        header = request.headers.get(AUTHORIZATION)
        try:
            params = parse_signature_header(header)
        except ProtocolError as exc:
            raise Refusal(401, codes.INVALID_REQUEST, f"Authorization: {exc}") from None
        if params.subscriber_id != env.bap_id:
            raise Refusal(401, codes.INVALID_REQUEST, f"signed by {params.subscriber_id!r}, not the bapId "
                          f"{env.bap_id!r}", env.key("bap_id"))
        now = self.clock()
        if params.created_s > now + self.settings.clock_skew_s or params.expires_s < now:
            raise Refusal(401, codes.INVALID_REQUEST, "Authorization is outside its created..expires window")
        if self.verifier is not None:
            try:
                await self.verifier.verify(header, body)
            except ProtocolError as exc:
                raise Refusal(401, codes.INVALID_REQUEST, f"Authorization: {exc}") from None

    async def _forward(self, env: envelope.Envelope, body: bytes, headers) -> None:
        try:
            certificate = envelope.certificate_header(headers.get(CERTIFICATE_HEADER))
        except envelope.EnvelopeError as exc:
            raise Refusal(400, codes.INVALID_REQUEST, str(exc)) from None
        payload = frame_message(body, headers[AUTHORIZATION], headers.get(GATEWAY_AUTHORIZATION),
                                certificate=certificate)
        if env.bpp_id is None and env.action == "search":
            topics = self._search_topics(body)
        elif env.bpp_id is None and env.action == "discover":
            topics = self._discover_topics(body)
        elif env.bpp_id is None:
            raise Refusal(400, codes.INVALID_REQUEST, f"{env.action} names no charger", env.key("bpp_id"))
        else:
            topics = [self.topics.inbox(self._charger(env))]
        try:
            for topic in topics:
                await self.transport.publish(topic, payload, qos=1, expiry_s=env.ttl_s, timeout_s=5)
        except TransportError as exc:
            raise Refusal(500, codes.BUSINESS_ERROR, f"the bridge cannot reach its brokers: {exc}") from None

    def _charger(self, env: envelope.Envelope) -> str:
        try:
            charger_id = envelope.charger_id(env)
        except envelope.EnvelopeError as exc:
            raise Refusal(400, codes.INVALID_REQUEST, str(exc), exc.path) from None
        if not self.directory.fronts(charger_id):
            raise Refusal(400, codes.PROVIDER_NOT_FOUND, f"{charger_id} is not a charger this bridge fronts",
                          env.key("bpp_id"))
        if not self.directory.online(charger_id):
            raise Refusal(409, codes.PROVIDER_NOT_FOUND, f"{charger_id} is offline; no callback will follow",
                          env.key("bpp_id"), ack=True)
        return charger_id

    def _search_topics(self, body: bytes) -> list[str]:
        """A 1.1 search's circle, read as the charger reads it, to the topics of its cover."""
        try:
            intent = parse_request(decode(body), action="search", domain=None).body
            if intent.gps is None or intent.radius_m is None:
                raise Refusal(400, codes.INVALID_REQUEST, "a search through a bridge names a circle",
                              "message.intent.fulfillment.stops")
            return self.topics.search_cover(intent.gps[0], intent.gps[1], intent.radius_m / 1000)
        except BecknError as exc:
            raise Refusal(400, exc.code, exc.reason, exc.path) from None
        except ProtocolError as exc:
            raise Refusal(400, codes.INVALID_REQUEST, str(exc), "message.intent") from None

    def _discover_topics(self, body: bytes) -> list[str]:
        """A 2.0 discover that asks the chargers of an area directly, as a node on MQTT does:
        the same search topics, so the same chargers and no others get it."""
        try:
            lat, lon, radius_km = envelope.discover_circle(body)
            return self.topics.search_cover(lat, lon, radius_km)
        except envelope.EnvelopeError as exc:
            raise Refusal(400, codes.INVALID_REQUEST, str(exc), exc.path) from None
        except ProtocolError as exc:
            raise Refusal(400, codes.INVALID_REQUEST, str(exc), "message.intent.spatial") from None

    def _answer(self, env: envelope.Envelope | None, body: bytes, refusal: Refusal | None) -> web.Response:
        error = None if refusal is None else (refusal.code, refusal.reason)
        status = 200 if refusal is None else refusal.status
        if env is not None and env.version == "1":
            return web.json_response(answers.v1_answer(error=error, path=refusal.path if refusal else None),
                                     status=status)
        ack_status = "ACK" if refusal is None or refusal.ack else "NACK"
        doc = answers.v2_answer(status=ack_status, request_body=body, message_id=env.message_id if env else "",
                                signer=self.signer_for(self.clock()), now_s=self.clock(), error=error)
        return web.json_response(doc, status=status)

