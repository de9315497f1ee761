"""Asking a catalog discovery service: the node's side of ``/discover`` and ``/on_discover``.

``CdsDiscovery`` signs a discover for an area (a circle, or a geohash cell) and a connector
type, checks the service's counter-signed Ack, and waits for the ``on_discover`` that answers
it on its own small HTTP receiver: signed by the service (the key lookup decides whom to
trust), bound to the request by ``requestDigest`` and ``messageId``. Used by the tests, the
benchmark and the demo; a node's own discovery can take it as it is.
"""
from __future__ import annotations

import asyncio
import uuid
from typing import Callable

import aiohttp
from aiohttp import web

from protocols.beckn2 import cds_wire as w
from protocols.beckn2.cds_index import geohash_polygon
from protocols.errors import ProtocolError
from protocols.http.serve import serve
from protocols.signing.beckn import Verifier
from protocols.signing.countersign import verify_counter_signature
from protocols.signing.errors import SignatureError
from protocols.signing.keys import KeyLookup, signer_at


class DiscoveryError(ProtocolError):
    code = "discovery-failed"


def discover_intent(*, lat: float | None = None, lon: float | None = None, radius_km: float | None = None,
                    cell: str | None = None, connector: str | None = None, text: str | None = None) -> dict:
    """A 2.0 ``Intent``: a circle (``lat``, ``lon``, ``radius_km``) or a geohash ``cell``, a
    connector type, words."""
    intent: dict = {}
    if cell is not None:
        intent["spatial"] = [{"op": "S_WITHIN", "targets": "$['availableAt'][*]['geo']",
                              "geometry": geohash_polygon(cell)}]
    elif lat is not None and lon is not None and radius_km is not None:
        intent["spatial"] = [{"op": "S_DWITHIN", "targets": "$['availableAt'][*]['geo']",
                              "geometry": {"type": "Point", "coordinates": [lon, lat]},
                              "distanceMeters": round(radius_km * 1000.0, 3)}]
    if connector is not None:
        if "'" in connector or "\\" in connector:
            raise DiscoveryError(f"connector type {connector!r} cannot be asked for")
        intent["filters"] = {"type": "jsonpath",
                             "expression": f"$[?(@.resourceAttributes.connectorType == '{connector}')]"}
    if text:
        intent["textSearch"] = text
    return intent


class CdsDiscovery:
    """A node asking one catalog service; ``start()`` opens the callback receiver."""

    def __init__(self, *, cds_url: str, signer, lookup: KeyLookup, clock: Callable[[], float],
                 network_id: str | None = None, session: aiohttp.ClientSession | None = None,
                 host: str = "127.0.0.1", public_uri: str | None = None, domain: str | None = None):
        self.cds_url = cds_url.rstrip("/")
        self.signer = signer
        self.clock = clock
        self.network_id = network_id
        self.domain = domain
        self.verifier = Verifier(lookup=lookup, clock=clock, max_body_bytes=4 * w.MAX_BODY_BYTES)
        self.host = host
        self.public_uri = public_uri
        self._session = session
        self._own_session = session is None
        self._waiting: dict[str, tuple[bytes, asyncio.Future]] = {}
        self._runner: web.AppRunner | None = None

    async def start(self, port: int = 0) -> int:
        app = web.Application(client_max_size=4 * w.MAX_BODY_BYTES + 1024)
        app.router.add_post("/on_discover", self._on_discover)
        self._runner, bound = await serve(app, self.host, port)
        self.public_uri = self.public_uri or f"http://{self.host}:{bound}"
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return bound

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    async def __aenter__(self) -> "CdsDiscovery":
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    def request(self, intent: dict) -> tuple[bytes, str]:
        """The signed-to-be body of a discover for ``intent`` and its message id."""
        message_id = str(uuid.uuid4())
        me = signer_at(self.signer)(self.clock())
        ctx = w.context(action="discover", message_id=message_id, transaction_id=str(uuid.uuid4()),
                        now_s=self.clock(), network_id=self.network_id, domain=self.domain,
                        bapId=me.subscriber_id, bapUri=self.public_uri)
        return w.encode({"context": ctx, "message": {"intent": intent}}), message_id

    async def discover(self, intent: dict, *, timeout_s: float = 5.0) -> list[dict]:
        """The catalogs the service answers with; ``DiscoveryError`` when it refuses or does
        not answer in time."""
        if self._runner is None:
            raise DiscoveryError("call start() before discover()")
        body, message_id = self.request(intent)
        future = asyncio.get_running_loop().create_future()
        self._waiting[message_id] = (body, future)
        try:
            await self._post(body, message_id)
            return await asyncio.wait_for(future, timeout_s)
        except asyncio.TimeoutError:
            raise DiscoveryError(f"no on_discover from {self.cds_url} within {timeout_s:g} s") from None
        finally:
            self._waiting.pop(message_id, None)

    async def _post(self, body: bytes, message_id: str) -> None:
        headers = w.signed_headers(body, self.signer, self.clock())
        try:
            async with self._session.post(self.cds_url + "/discover", data=body, headers=headers) as resp:
                raw = await resp.read()
                status = resp.status
        except aiohttp.ClientError as exc:
            raise DiscoveryError(f"{self.cds_url}/discover: {type(exc).__name__}") from None
        try:
            ack = w.decode_object(raw)
            await verify_counter_signature(ack, request_body=body, message_id=message_id, verifier=self.verifier)
        except (w.WireError, SignatureError) as exc:
            raise DiscoveryError(f"{self.cds_url}/discover answered HTTP {status} without a valid Ack: {exc}") from None
        if status != 200 or ack.get("status") != "ACK":
            error = ack.get("error") if isinstance(ack.get("error"), dict) else {}
            raise DiscoveryError(f"{self.cds_url} refused the discover: {error.get('errorMessage', status)}")

    async def _on_discover(self, request: web.Request) -> web.Response:
        body = await w.read_body(request.content, 4 * w.MAX_BODY_BYTES)
        message_id = ""
        try:
            await self.verifier.verify_message(body, request.headers.get("Authorization"))
            doc = w.decode(body)
            message_id = w.message_id_in(doc)
            ctx = doc["context"]
            waiting = self._waiting.get(message_id)
            if ctx.get("action") != "on_discover" or waiting is None:
                raise w.WireError("context.messageId", f"{message_id!r} answers no discover under way")
            if ctx.get("requestDigest") != w.request_digest(waiting[0]):
                raise w.WireError("context.requestDigest", "does not match the discover sent")
            catalogs = doc["message"].get("catalogs")
            if not isinstance(catalogs, list):
                raise w.WireError("message.catalogs", "must be an array")
        except SignatureError as exc:
            return self._answer(body, message_id or w.message_id_of(body), 401, ("UNAUTHORIZED", str(exc)))
        except w.WireError as exc:
            return self._answer(body, message_id or w.message_id_of(body), 400, (exc.error_code, str(exc)))
        if not waiting[1].done():
            waiting[1].set_result(catalogs)
        return self._answer(body, message_id, 200, None)

    def _answer(self, body: bytes, message_id: str, status: int, error) -> web.Response:
        doc = w.ack(request_body=body, message_id=message_id, signer=self.signer, now_s=self.clock(), error=error,
                    nack=status != 200)
        return web.Response(body=w.encode(doc), status=status, content_type="application/json")
