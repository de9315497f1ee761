"""A small Catalog Discovery Service: the reference for tests and the demo, not a production CDS.

Beckn 2.0 replaces a gateway's broadcast search with catalogs that providers publish to a
Catalog Discovery Service, which answers discovery from what it holds (``beckn.yaml``:
``/catalog/publish``, ``/catalog/on_publish``, ``/discover``, ``/on_discover``). This one keeps
catalogs in memory, in the index of ``cds_index.py``; it has no persistence, no subscriptions,
pull or master-catalog API, and answers only what an EV-charging node asks (an area, a
connector, words).

- ``POST /catalog/publish``: the publisher's BECKN-006 signature is verified with the injected
  key lookup (the DeDi registry on a network, a static table in tests); ``context.bppId`` must be
  the signer, and so must each catalog's ``bppId``. The answer is a counter-signed Ack at once;
  then ``/catalog/on_publish`` goes to the publisher's ``bppUri`` with one result per catalog,
  ``ACCEPTED`` with counts or ``REJECTED`` with the reason. A catalog with ``isActive: false``
  withdraws the one published before. A publisher that names no ``bppUri`` (a charger behind
  NAT) gets the results in the answer instead: 200 when every catalog was taken, else 409
  (``AckNoCallback``) with the refusals.
- ``POST /discover``: the caller's signature is verified and ``context.bapId`` must be the
  signer; the Ack comes at once and the catalogs follow in ``/on_discover`` to ``bapUri``
  (``beckn.yaml``: "actual catalogs arrive via on_discover").

Every request is refused the way a provider refuses: a bad signature is HTTP 401 with
``WWW-Authenticate`` and a NackUnauthorized; a message that does not fit is HTTP 400 with a
NackBadRequest naming the field; a replayed message id with another body is refused, the same
body gets the first answer again. Callbacks are signed with the service's own key, carry
``requestDigest`` and are retried a few times with backoff.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Callable

import aiohttp
from aiohttp import web

from agent.aio import cancel_and_wait
from protocols.beckn2 import cds_wire as w
from protocols.beckn2.cds_index import CatalogIndex, parse_discover
from protocols.http.serve import serve
from protocols.signing.beckn import Verifier, www_authenticate
from protocols.signing.errors import SignatureError
from protocols.signing.keys import KeyLookup
from protocols.signing.replay import ReplayGuard

log = logging.getLogger("urja.cds")

MAX_CATALOGS_PER_PUBLISH = 32
MAX_RESOURCES_PER_CATALOG = 64


@dataclass(frozen=True)
class Refusal:
    """One catalog left out of a publish, with the reason the publisher is told."""

    catalog_id: str
    error_code: str
    message: str


def check_catalog(catalog: object, index: int, bpp_id: str) -> str:
    """The catalog id, or ``WireError`` naming what does not fit (``beckn.yaml`` Catalog)."""
    where = f"message.catalogs[{index}]"
    if not isinstance(catalog, dict):
        raise w.WireError(where, "must be an object")
    for key in ("id", "descriptor", "provider"):
        if key not in catalog:
            raise w.WireError(f"{where}.{key}", "is required")
    if not isinstance(catalog["id"], str) or not catalog["id"]:
        raise w.WireError(f"{where}.id", "must be a non-empty string")
    if "resources" not in catalog and "offers" not in catalog:
        raise w.WireError(where, "needs resources or offers")
    if catalog.get("bppId", bpp_id) != bpp_id:
        raise w.WireError(f"{where}.bppId", f"{catalog.get('bppId')!r} is not the publisher ({bpp_id})",
                          error_code="NOT_OWNER")
    provider = catalog["provider"]
    if not isinstance(provider, dict) or not isinstance(provider.get("id"), str):
        raise w.WireError(f"{where}.provider.id", "is required")
    for key in ("resources", "offers"):
        items = catalog.get(key, [])
        if not isinstance(items, list) or len(items) > MAX_RESOURCES_PER_CATALOG:
            raise w.WireError(f"{where}.{key}", f"must be an array of at most {MAX_RESOURCES_PER_CATALOG}")
        for i, item in enumerate(items):
            if not isinstance(item, dict) or not isinstance(item.get("id"), str):
                raise w.WireError(f"{where}.{key}[{i}].id", "is required")
    return catalog["id"]


class CatalogDiscoveryService:
    """The reference CDS. ``signer`` is its own key (counter-signatures and callbacks),
    ``lookup`` finds publishers' and callers' keys, ``network_id`` (when set) must be every
    request's ``context.networkId``."""

    def __init__(self, *, signer, lookup: KeyLookup, clock: Callable[[], float], network_id: str | None = None,
                 subscriber_uri: str | None = None, session: aiohttp.ClientSession | None = None,
                 max_body_bytes: int = w.MAX_BODY_BYTES, max_results: int = 100, callback_attempts: int = 3,
                 retry_delay_s: float = 0.5, timeout_s: float = 5.0, max_messages: int = 10_000):
        self.signer = signer
        self.clock = clock
        self.network_id = network_id
        self.subscriber_uri = subscriber_uri
        self.verifier = Verifier(lookup=lookup, clock=clock, max_body_bytes=max_body_bytes)
        # each message id is remembered until its signature expires: a publisher that signs for
        # longer (a charger's retained publish, forwarded by bridges) holds its entries longer
        self.replay = ReplayGuard(clock=clock, max_entries=max_messages)
        self.index = CatalogIndex()
        self.max_body_bytes = max_body_bytes
        self.max_results = max_results
        self.callback_attempts = callback_attempts
        self.retry_delay_s = retry_delay_s
        self.timeout_s = timeout_s
        self.counters: dict[str, int] = {}
        self._session = session
        self._own_session = session is None
        self._tasks: set[asyncio.Task] = set()
        self._runner: web.AppRunner | None = None

    @property
    def subscriber_id(self) -> str:
        from protocols.signing.keys import signer_at

        return signer_at(self.signer)(self.clock()).subscriber_id

    def _count(self, name: str) -> None:
        self.counters[name] = self.counters.get(name, 0) + 1

    def app(self) -> web.Application:
        app = web.Application(client_max_size=self.max_body_bytes + 1024)
        app.router.add_post("/catalog/publish", self._publish)
        app.router.add_post("/discover", self._discover)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        self._runner, bound = await serve(self.app(), host, port)
        if self.subscriber_uri is None:
            self.subscriber_uri = f"http://{host}:{bound}"
        return bound

    async def close(self) -> None:
        await cancel_and_wait(list(self._tasks))
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    async def idle(self) -> None:
        """Wait until every callback under way has been delivered or given up."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    # ------------------------------------------------------------------ requests

    def _answer(self, body: bytes, message_id: str, *, status: int = 200, error: tuple[str, str] | None = None,
                headers: dict | None = None) -> web.Response:
        doc = w.ack(request_body=body, message_id=message_id, signer=self.signer, now_s=self.clock(),
                    error=error, nack=status >= 400 and status != 409)  # 409: AckNoCallback
        return web.Response(body=w.encode(doc), status=status, content_type="application/json", headers=headers)

    async def _admit(self, request: web.Request, actions: tuple[str, ...], sender_key: str):
        """Read, verify and check a request; returns (body, doc, message id, admission) or a
        refusal ``web.Response``."""
        body = await w.read_body(request.content, self.max_body_bytes)
        if len(body) > self.max_body_bytes:
            self._count("refused")
            return self._answer(body, "", status=400,
                                error=("PAYLOAD_TOO_LARGE", f"body larger than {self.max_body_bytes} bytes"))
        message_id = ""
        try:
            verified = await self.verifier.verify_message(body, request.headers.get("Authorization"))
            doc = w.decode(body)
            message_id = w.message_id_in(doc)
            message_id = w.check_context(doc["context"], actions=actions, network_id=self.network_id)
            if doc["context"].get(sender_key) != verified.sender.subscriber_id:
                raise w.WireError(f"context.{sender_key}", f"{doc['context'].get(sender_key)!r} is not the signer "
                                  f"({verified.sender.subscriber_id})", error_code="SENDER_MISMATCH")
            admission = self.replay.admit_verified(message_id, verified)
        except SignatureError as exc:
            self._count("refused")
            message_id = message_id or w.message_id_of(body)
            status = 400 if exc.reason in ("replay-conflict", "message-id-invalid") else 401
            headers = {"WWW-Authenticate": www_authenticate(self.subscriber_id)} if status == 401 else None
            return self._answer(body, message_id, status=status, error=(exc.reason.upper().replace("-", "_"),
                                                                         str(exc)), headers=headers)
        except w.WireError as exc:
            self._count("refused")
            message_id = message_id or w.message_id_of(body)
            return self._answer(body, message_id, status=exc.http_status, error=(exc.error_code, str(exc)))
        return body, doc, message_id, admission

    async def _publish(self, request: web.Request) -> web.Response:
        admitted = await self._admit(request, w.PUBLISH_ACTIONS, "bppId")
        if isinstance(admitted, web.Response):
            return admitted
        body, doc, message_id, admission = admitted
        if not admission.fresh:
            status, error = admission.answer or (200, None)
            return self._answer(body, message_id, status=status, error=error)
        ctx = doc["context"]
        try:
            callback = w.check_uri(ctx, "bppUri") if "bppUri" in ctx else None
            catalogs = doc["message"].get("catalogs")
            if not isinstance(catalogs, list) or not 1 <= len(catalogs) <= MAX_CATALOGS_PER_PUBLISH:
                raise w.WireError("message.catalogs", f"must be an array of 1 to {MAX_CATALOGS_PER_PUBLISH} catalogs")
        except w.WireError as exc:
            self.replay.forget(message_id)
            return self._answer(body, message_id, status=400, error=(exc.error_code, str(exc)))
        results = [self._take(catalog, i, ctx["bppId"]) for i, catalog in enumerate(catalogs)]
        self._count("published")
        if callback is None:  # a publisher behind NAT: the results in the answer, no callback
            refused = [f"{r['catalogId']}: {e['errorMessage']}" for r in results for e in r.get("errors", [])]
            answer = (409, ("CATALOG_REJECTED", "; ".join(refused))) if refused else (200, None)
            self.replay.settle(message_id, answer)
            return self._answer(body, message_id, status=answer[0], error=answer[1])
        self._spawn(self._callback(callback + "/catalog/on_publish", ctx, body, w.ON_PUBLISH_ACTION,
                                   {"results": results}))
        return self._answer(body, message_id)

    def _take(self, catalog: object, i: int, bpp_id: str) -> dict:
        """Index one catalog; its ``CatalogProcessingResult``."""
        catalog_id = catalog.get("id") if isinstance(catalog, dict) and isinstance(catalog.get("id"), str) else f"#{i}"
        try:
            check_catalog(catalog, i, bpp_id)
            self.index.put(bpp_id, catalog)
        except w.WireError as exc:
            log.info("catalog %s from %s refused: %s", catalog_id, bpp_id, exc)
            self._count("catalogs_rejected")
            return {"catalogId": catalog_id, "status": "REJECTED",
                    "errors": [{"errorCode": exc.error_code, "errorMessage": str(exc)}]}
        self._count("catalogs_accepted")
        return {"catalogId": catalog_id, "status": "ACCEPTED",
                "stats": {"itemCount": len(catalog.get("resources") or []), "providerCount": 1}}

    async def _discover(self, request: web.Request) -> web.Response:
        admitted = await self._admit(request, ("discover",), "bapId")
        if isinstance(admitted, web.Response):
            return admitted
        body, doc, message_id, admission = admitted
        if not admission.fresh:
            return self._answer(body, message_id)
        ctx = doc["context"]
        try:
            callback = w.check_uri(ctx, "bapUri")
            query = parse_discover(doc["message"])
        except w.WireError as exc:
            self.replay.forget(message_id)
            return self._answer(body, message_id, status=400, error=(exc.error_code, str(exc)))
        catalogs = self.index.query(query, limit=self.max_results)
        self._count("discovered")
        self._spawn(self._callback(callback + "/on_discover", ctx, body, "on_discover", {"catalogs": catalogs},
                                   bppId=self.subscriber_id, bppUri=self.subscriber_uri))
        return self._answer(body, message_id)

    # ------------------------------------------------------------------ callbacks

    def _spawn(self, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro, name="cds-callback")
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession()
        return self._session

    async def _callback(self, url: str, request_ctx: dict, request_body: bytes, action: str, message: dict,
                        **ids) -> bool:
        ctx = w.callback_context(request_ctx, request_body, action=action, now_s=self.clock(), **ids)
        body = w.encode({"context": ctx, "message": message})
        delay_s = self.retry_delay_s
        for attempt in range(1, self.callback_attempts + 1):
            headers = w.signed_headers(body, self.signer, self.clock())
            try:
                session = await self._client()
                async with session.post(url, data=body, headers=headers,
                                        timeout=aiohttp.ClientTimeout(total=self.timeout_s)) as resp:
                    await resp.read()
                    if resp.status == 200:
                        self._count(f"{action}_sent")
                        return True
                    outcome = f"HTTP {resp.status}"
                    if 400 <= resp.status < 500:
                        break
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                outcome = type(exc).__name__
            if attempt < self.callback_attempts:
                await asyncio.sleep(delay_s)
                delay_s *= 2
        log.warning("%s to %s not delivered: %s", action, url, outcome)
        self._count(f"{action}_failed")
        return False
