"""A buyer on HTTP only: the reference node's messages over a bridge instead of a broker.

``HttpBuyerLink`` stands where ``NetworkNode`` expects its MQTT transport: a request the node
would publish to a charger's inbox (or a search to its cells) is POSTed, byte-exact with the
node's own signature, to ``<bridge>/<action>``; the callbacks the bridge relays to this link's
HTTP address are handed to the node as if they had arrived in its inbox, so the node verifies
each charger's signature, catalog and receipt exactly as it does on MQTT. A bridge's refusal
(an offline or unknown charger, a bad signature) raises at once with the bridge's reason.

Several bridge URLs may be given: requests go to them in turn (the way a load balancer would
spread them), and a bridge that cannot be reached is skipped for the next.
"""
from __future__ import annotations

import asyncio
import json
from typing import Callable

import aiohttp
from aiohttp import web

from agent.aio import cancel_and_wait
from protocols.bridge import envelope
from protocols.bridge.errors import BridgeError
from protocols.errors import ProtocolError
from protocols.http.serve import serve
from protocols.mqtt import framing
from protocols.signing.beckn import AUTHORIZATION, GATEWAY_AUTHORIZATION, frame_message

CALLBACKS = tuple(dict.fromkeys("on_" + a for a in envelope.V2_ACTIONS + envelope.V1_ACTIONS))


class BridgeRefused(BridgeError):
    code = "bridge-refused"


class HttpBuyerLink:
    def __init__(self, *, bridges: list[str] | tuple[str, ...], inbox_topic: str, host: str = "127.0.0.1",
                 port: int = 0, timeout_s: float = 10.0, max_body_bytes: int = 64 * 1024):
        if not bridges:
            raise BridgeError("a buyer on HTTP needs at least one bridge URL")
        self.bridges = [b.rstrip("/") for b in bridges]
        self.inbox_topic = inbox_topic
        self.host, self.port = host, port
        self.timeout_s = timeout_s
        self.max_body_bytes = max_body_bytes
        self.on_message: Callable[[str, bytes, bool], None] | None = None
        self.on_connect = None
        self.connected = asyncio.Event()
        self.answers: list[tuple[str, int, dict, str]] = []  # (action, HTTP status, answer, bridge URL)
        self._tasks: list[asyncio.Task] = []
        self._sent: dict[str, None] = {}
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._next = 0

    @property
    def uri(self) -> str:
        return f"http://{self.host}:{self.port}"

    async def listen(self) -> str:
        """Open the callback endpoint; returns the ``bapUri`` to put in every context."""
        if self._runner is None:
            app = web.Application(client_max_size=self.max_body_bytes + 1024)
            for action in CALLBACKS:
                app.router.add_post(f"/{action}", self._callback)
            self._runner, self.port = await serve(app, self.host, self.port)
            self._session = aiohttp.ClientSession()
            self.connected.set()
        return self.uri

    # The transport interface ``NetworkNode`` uses.
    async def start(self) -> None:
        await self.listen()

    async def wait_connected(self, timeout_s: float) -> None:
        await self.listen()

    def subscribe(self, topic_filter: str, qos: int = 1) -> None:
        """Nothing to subscribe to: callbacks come to the HTTP endpoint."""

    def unsubscribe(self, topic_filter: str) -> None:
        """See ``subscribe``."""

    async def close(self) -> None:
        await cancel_and_wait(self._tasks)
        self._tasks = []
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._session is not None:
            await self._session.close()
            self._session = None
        self.connected.clear()

    def publish_nowait(self, topic: str, payload: bytes, *, qos: int = 0, retain: bool = False,
                       expiry_s: int | None = None) -> int:
        """A search goes to several cells on MQTT; over a bridge it is sent once."""
        task = asyncio.create_task(self._send_quietly(payload), name="http-buyer-send")
        self._tasks = [t for t in self._tasks if not t.done()] + [task]
        return 0

    async def _send_quietly(self, payload: bytes) -> None:
        try:
            await self.send(payload)
        except ProtocolError:
            pass  # a refused search finds nothing; its answer is in ``answers``

    async def publish(self, topic: str, payload: bytes, *, qos: int = 1, retain: bool = False,
                      expiry_s: int | None = None, timeout_s: float = 10.0) -> None:
        await self.send(payload)

    async def send(self, payload: bytes) -> dict | None:
        """POST one framed message to a bridge; raise ``BridgeRefused`` with its reason."""
        frame = framing.unframe(payload)
        env = envelope.read(frame.body)
        if env.message_id in self._sent:
            return None
        self._sent[env.message_id] = None
        if len(self._sent) > 4096:
            self._sent.pop(next(iter(self._sent)))
        headers = framing.headers_of(frame) | {"Content-Type": "application/json"}
        last_error = None
        for _ in range(len(self.bridges)):
            url = f"{self.bridges[self._next % len(self.bridges)]}/{env.action}"
            try:
                async with self._session.post(url, data=frame.body, headers=headers,
                                              timeout=aiohttp.ClientTimeout(total=self.timeout_s)) as resp:
                    status, text = resp.status, await resp.text()
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
                last_error = f"{url}: {exc}"
                self._next += 1
                continue
            try:
                doc = json.loads(text)
            except ValueError:
                doc = {}
            self.answers.append((env.action, status, doc, url))
            self._next += 1  # the next request to the next bridge, as a load balancer would spread them
            if status != 200:
                error = doc.get("error") or {}
                code = error.get("errorCode") or error.get("code")
                reason = error.get("errorMessage") or error.get("message") or text[:200]
                raise BridgeRefused(f"{env.action} refused by the bridge ({status}, {code}): {reason}",
                                    status=status, error_code=code)
            return doc
        raise BridgeRefused(f"no bridge reachable ({last_error})", status=None, error_code=None)

    async def _callback(self, request: web.Request) -> web.Response:
        body = await request.read()
        auth = request.headers.get(AUTHORIZATION)
        if auth is None or len(body) > self.max_body_bytes:
            return web.json_response({"message": {"ack": {"status": "NACK"}}}, status=400)
        payload = frame_message(body, auth, request.headers.get(GATEWAY_AUTHORIZATION))
        if self.on_message is not None:
            self.on_message(self.inbox_topic, payload, False)
        return web.json_response({"message": {"ack": {"status": "ACK"}}})
