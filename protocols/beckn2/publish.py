"""The charger's catalog publisher: its signed catalog at every catalog discovery service it names.

On a Beckn 2.0 network a node finds chargers through a Catalog Discovery Service, so the
charger keeps its catalog there current: once at start, then again on every change of
availability or price. ``CatalogPublisher.run()`` is that task, for a binding to run; the
binding calls ``changed()`` when the state changes and mounts ``add_routes(app)`` on its HTTP
server so the services' ``/catalog/on_publish`` reaches it.

- **Debounced.** A change is published once the state has been quiet for ``debounce_s`` (a
  session start changes several things at once), at most ``max_delay_s`` after the first.
- **One state per service.** Each service is published to independently: one that is down
  does not hold back the others. A catalog the service already accepted is not sent again.
- **Acknowledged twice.** The Ack must carry the service's counter-signature over this
  request, then ``on_publish`` must arrive signed by the service, with this request's
  ``messageId`` and ``requestDigest``, and every catalog ``ACCEPTED``. A refusal, a failed
  Ack or no ``on_publish`` within ``result_timeout_s`` logs one line and is tried again with
  exponential backoff (``retry_initial_s`` doubling to ``retry_max_s``, with jitter).

A charger that cannot be called back (behind NAT, MQTT only) passes ``bpp_uri=None``: the
publish names no ``bppUri`` and the service's answer carries the results (200 taken, 409 with
the refusals).

A charger that cannot reach a service at all, or leaves that to the bridges that front it,
names ``RETAINED`` among its services and passes ``retain``: the same signed publish (NAT form),
and beside it a withdrawal of the same catalog (``isActive: false``) signed at the same moment,
are handed to ``retain`` to be kept on the broker, where every bridge that fronts the charger
reads them and forwards them byte-exact (``protocols.bridge.cds_sink``): the publish when the
charger is online, the withdrawal when it goes. A bridge forwards them long after they were
signed, so both are signed for ``retained_window_s`` and signed again halfway through it, and on
every change; the broker taking them is the acknowledgement (the services answer the bridge).

Configuration: ``[network] catalog_services = ["https://cds.example.net", ...]``
(``catalog_services(section)`` reads and checks it).
"""
from __future__ import annotations

import asyncio
import inspect
import logging
import random as _random
import uuid
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Awaitable, Callable

from protocols.beckn2 import cds_wire as w
from protocols.errors import ProtocolError
from protocols.signing.beckn import Verifier, body_digest, frame_message, sign_body
from protocols.signing.countersign import verify_counter_signature
from protocols.signing.errors import SignatureError
from protocols.signing.keys import KeyLookup, signer_at

if TYPE_CHECKING:  # aiohttp loads when a catalog is published, not when a [network] table is read
    import aiohttp
    from aiohttp import web

log = logging.getLogger("urja.publish")

MAX_SERVICES = 8
RETAINED = "mqtt:retained"  # the broker, for the bridges that front the charger to forward


def catalog_services(section) -> tuple[str, ...]:
    """``catalog_services`` of a ``[network]`` ``Section``: http(s) URLs, at most ``MAX_SERVICES``."""
    urls = section.list("catalog_services", [])
    if len(urls) > MAX_SERVICES or not all(isinstance(u, str) and w._URI_RE.match(u) for u in urls):
        raise section.error("catalog_services", f"must be a list of at most {MAX_SERVICES} http(s) URLs",
                            '["https://cds.example.net"]')
    if len(set(urls)) != len(urls):
        raise section.error("catalog_services", "names a service twice")
    return tuple(u.rstrip("/") for u in urls)


@dataclass
class ServiceState:
    """Where publishing to one service stands (``CatalogPublisher.services``)."""

    url: str
    state: str = "new"  # new, sending, awaiting-result, accepted, refused, failed
    dirty: bool = True  # the charger changed since the last catalog sent here
    accepted_digest: str | None = None
    pending_message_id: str | None = None
    pending_body: bytes | None = None
    pending_digest: str | None = None
    attempts: int = 0
    next_try_at: float = 0.0  # event-loop time
    result_deadline: float = 0.0
    last_error: str = ""
    accepted_count: int = 0


class CatalogPublisher:
    def __init__(self, *, catalog: Callable[[], dict | Awaitable[dict]], signer, clock: Callable[[], float],
                 services: tuple[str, ...] | list[str], bpp_id: str, bpp_uri: str | None, lookup: KeyLookup,
                 network_id: str | None = None, domain: str | None = None,
                 session: aiohttp.ClientSession | None = None, debounce_s: float = 2.0, max_delay_s: float = 10.0,
                 retry_initial_s: float = 5.0, retry_max_s: float = 300.0, result_timeout_s: float = 30.0,
                 timeout_s: float = 10.0, rng: _random.Random | None = None,
                 retain: Callable[[bytes, bytes], Awaitable[None]] | None = None, retained_window_s: float = 480.0):
        if RETAINED in services and retain is None:
            raise ValueError(f"{RETAINED} needs retain: where the signed requests are kept")
        self.catalog = catalog
        self.retain = retain
        self.retained_window_s = retained_window_s
        self.signer = signer
        self.clock = clock
        self.bpp_id = bpp_id
        self.bpp_uri = bpp_uri.rstrip("/") if bpp_uri else None
        self.network_id = network_id
        self.domain = domain
        self.verifier = Verifier(lookup=lookup, clock=clock)
        self.debounce_s = debounce_s
        self.max_delay_s = max_delay_s
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        self.result_timeout_s = result_timeout_s
        self.timeout_s = timeout_s
        self.rng = rng or _random.Random()
        self.services = {url.rstrip("/"): ServiceState(url.rstrip("/")) for url in services}
        self._session = session
        self._own_session = session is None
        self._wake = asyncio.Event()
        self._progress = asyncio.Condition()
        self._first_change_at: float | None = None
        self._last_change_at: float | None = None
        self._changed_once = False

    # ------------------------------------------------------------------ the binding's side

    def changed(self) -> None:
        """Availability or price changed: publish again once it has settled."""
        now = asyncio.get_running_loop().time()
        self._first_change_at = self._first_change_at if self._first_change_at is not None else now
        self._last_change_at = now
        self._wake.set()

    def add_routes(self, app: web.Application) -> None:
        app.router.add_post("/catalog/on_publish", self.handle_on_publish)

    async def wait_for(self, predicate: Callable[[dict[str, ServiceState]], bool], timeout_s: float) -> None:
        """Wait until ``predicate(services)`` holds (``asyncio.TimeoutError`` after ``timeout_s``)."""
        async def wait():
            async with self._progress:
                await self._progress.wait_for(lambda: predicate(self.services))
        await asyncio.wait_for(wait(), timeout_s)

    async def run(self) -> None:
        """Publish now, then on every change and every retry that falls due, until cancelled."""
        loop = asyncio.get_running_loop()
        self._first_change_at = self._last_change_at = loop.time() - self.debounce_s
        try:
            while True:
                now = loop.time()
                if self._settled(now):
                    self._first_change_at = self._last_change_at = None
                    await self._publish_changed(now)
                await self._publish_due(loop.time())
                self._wake.clear()
                delay = self._next_wake(loop.time())
                try:
                    await asyncio.wait_for(self._wake.wait(), delay)
                except asyncio.TimeoutError:
                    pass
        finally:
            if self._own_session and self._session is not None:
                await self._session.close()
                self._session = None

    # ------------------------------------------------------------------ scheduling

    def _settled(self, now: float) -> bool:
        if self._last_change_at is None:
            return False
        return (now - self._last_change_at >= self.debounce_s
                or now - self._first_change_at >= self.max_delay_s)

    def _next_wake(self, now: float) -> float:
        times = []
        if self._last_change_at is not None:
            times.append(min(self._last_change_at + self.debounce_s, self._first_change_at + self.max_delay_s))
        for s in self.services.values():
            if s.state == "awaiting-result":
                times.append(s.result_deadline)
            elif s.state != "sending" and (s.dirty or s.state in ("refused", "failed")):
                times.append(s.next_try_at)
        return max(0.0, min(times) - now) if times else 3600.0

    async def _publish_changed(self, now: float) -> None:
        for s in self.services.values():
            s.dirty, s.attempts, s.next_try_at = True, 0, now

    @staticmethod
    def _due(s: ServiceState, now: float) -> bool:
        if s.state in ("sending", "awaiting-result") or now < s.next_try_at:
            return False
        return s.dirty or s.state in ("refused", "failed")

    async def _publish_due(self, now: float) -> None:
        due = []
        for s in self.services.values():
            if s.state == "awaiting-result" and now >= s.result_deadline:
                await self._retry_later(s, f"no on_publish within {self.result_timeout_s:g} s")
            if self._due(s, now):
                due.append(s)
        if not due:
            return
        try:
            catalog = self.catalog()
            if inspect.isawaitable(catalog):
                catalog = await catalog
        except Exception as exc:  # the catalog is the binding's; its failure must not end publishing
            for s in due:
                await self._retry_later(s, f"catalog could not be built: {type(exc).__name__}: {exc}")
            return
        await asyncio.gather(*(self._send(s, catalog) for s in due))

    async def _retry_later(self, s: ServiceState, reason: str, *, state: str = "failed") -> None:
        delay = min(self.retry_max_s, self.retry_initial_s * (2 ** min(s.attempts, 20)))
        delay *= 0.75 + 0.5 * self.rng.random()
        s.attempts += 1
        s.state = state
        s.last_error = reason
        s.next_try_at = asyncio.get_running_loop().time() + delay
        s.pending_message_id = s.pending_body = s.pending_digest = None
        log.warning("catalog publish to %s: %s; retrying in %.0f s", s.url, reason, delay)
        await self._notify()

    async def _notify(self) -> None:
        async with self._progress:
            self._progress.notify_all()

    # ------------------------------------------------------------------ sending

    def _body(self, catalog: dict, *, now_s: float | None = None, ttl_s: int = w.SIGNATURE_TTL_S,
              bpp_uri: str | None = None) -> tuple[bytes, str]:
        message_id = str(uuid.uuid4())
        ctx = w.context(action="catalog/publish", message_id=message_id, transaction_id=str(uuid.uuid4()),
                        now_s=self.clock() if now_s is None else now_s, network_id=self.network_id, ttl_s=ttl_s,
                        domain=self.domain, bppId=self.bpp_id, bppUri=bpp_uri)
        return w.encode({"context": ctx, "message": {"catalogs": [catalog]}}), message_id

    async def _send(self, s: ServiceState, catalog: Any) -> None:
        import aiohttp

        digest = body_digest(w.encode(catalog))
        s.dirty = False
        if s.url == RETAINED:
            await self._retain(s, catalog)
            return
        if digest == s.accepted_digest:
            s.state = "accepted"
            await self._notify()
            return
        body, message_id = self._body(catalog, bpp_uri=self.bpp_uri)
        s.state = "sending"
        s.pending_message_id, s.pending_body, s.pending_digest = message_id, body, digest
        try:
            status, raw = await self._post(s.url + "/catalog/publish", body)
            ack = w.decode_object(raw)
            await verify_counter_signature(ack, request_body=body, message_id=message_id, verifier=self.verifier)
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            await self._retry_later(s, f"not reachable: {type(exc).__name__}")
            return
        except (w.WireError, SignatureError) as exc:
            await self._retry_later(s, f"answered without a valid Ack: {exc}")
            return
        if status != 200 or ack.get("status") != "ACK":
            error = ack.get("error") if isinstance(ack.get("error"), dict) else {}
            await self._retry_later(s, f"refused the publish (HTTP {status}): {error.get('errorMessage', '')}",
                                    state="refused")
            return
        if self.bpp_uri is None:  # no callback can reach us: the Ack was the result
            await self._take_results(s, [{"catalogId": catalog.get("id"), "status": "ACCEPTED"}])
            return
        if s.pending_message_id == message_id:  # on_publish may already have come
            s.state = "awaiting-result"
            s.result_deadline = asyncio.get_running_loop().time() + self.result_timeout_s
            await self._notify()

    def _signed_request(self, catalog: dict, now_s: float) -> bytes:
        """A publish of ``catalog`` in the NAT form (no ``bppUri``: the service answers whoever
        forwards it), framed with its signature for the retained window."""
        window_s = int(self.retained_window_s)
        body, _ = self._body(catalog, now_s=now_s, ttl_s=window_s)
        header = sign_body(body, signer_at(self.signer)(now_s), created_s=int(now_s), expires_s=int(now_s) + window_s)
        return frame_message(body, header)

    async def _retain(self, s: ServiceState, catalog: dict) -> None:
        s.state = "sending"
        now_s = self.clock()
        try:
            publish = self._signed_request(catalog, now_s)
            withdraw = self._signed_request({**catalog, "isActive": False}, now_s)
            await self.retain(publish, withdraw)
        except (ProtocolError, OSError, asyncio.TimeoutError) as exc:
            await self._retry_later(s, f"the broker did not keep the requests: {exc}")
            return
        s.state, s.attempts, s.last_error = "accepted", 0, ""
        s.accepted_count += 1
        s.dirty = True  # signed again halfway through the window, so a bridge never holds an expired one
        s.next_try_at = asyncio.get_running_loop().time() + self.retained_window_s / 2
        log.info("catalog publish and withdrawal retained for the bridges")
        await self._notify()

    async def _post(self, url: str, body: bytes) -> tuple[int, bytes]:
        import aiohttp

        if self._session is None:
            self._session = aiohttp.ClientSession()
        headers = w.signed_headers(body, self.signer, self.clock())
        async with self._session.post(url, data=body, headers=headers,
                                      timeout=aiohttp.ClientTimeout(total=self.timeout_s)) as resp:
            return resp.status, await w.read_body(resp.content, w.MAX_BODY_BYTES)

    # ------------------------------------------------------------------ on_publish

    async def receive_on_publish(self, body: bytes, authorization: str | None) -> tuple[int, dict]:
        """Take a service's ``catalog/on_publish``; the HTTP status and counter-signed Ack."""
        message_id = ""
        try:
            await self.verifier.verify_message(body, authorization)
            doc = w.decode(body)
            message_id = w.message_id_in(doc)
            ctx = doc["context"]
            if ctx.get("action") not in ("catalog/on_publish", "on_catalog_publish"):
                raise w.WireError("context.action", f"{ctx.get('action')!r} is not catalog/on_publish")
            s = next((s for s in self.services.values() if s.pending_message_id == message_id), None)
            if s is None:
                raise w.WireError("context.messageId", f"{message_id!r} answers no publish under way")
            if ctx.get("requestDigest") != w.request_digest(s.pending_body):
                raise w.WireError("context.requestDigest", "does not match the publish sent")
            results = doc["message"].get("results")
            if not isinstance(results, list) or not results or not all(isinstance(r, dict) for r in results):
                raise w.WireError("message.results", "must be a non-empty array of results")
        except SignatureError as exc:
            return 401, self._ack(body, message_id or w.message_id_of(body), ("UNAUTHORIZED", str(exc)))
        except w.WireError as exc:
            return 400, self._ack(body, message_id or w.message_id_of(body), (exc.error_code, str(exc)))
        await self._take_results(s, results)
        return 200, self._ack(body, message_id, None)

    async def _take_results(self, s: ServiceState, results: list[dict]) -> None:
        refused = [r for r in results if r.get("status") != "ACCEPTED"]
        if not refused:
            s.state, s.accepted_digest, s.attempts, s.last_error = "accepted", s.pending_digest, 0, ""
            s.accepted_count += 1
            s.pending_message_id = s.pending_body = s.pending_digest = None
            log.info("catalog accepted by %s", s.url)
            await self._notify()
            if s.dirty:
                self._wake.set()
            return
        reasons = "; ".join(
            f"{r.get('catalogId')}: {r.get('status')} "
            + ", ".join(f"{e.get('errorCode')} {e.get('errorMessage')}" for e in r.get("errors") or []
                        if isinstance(e, dict))
            for r in refused)
        await self._retry_later(s, f"refused the catalog: {reasons}", state="refused")
        self._wake.set()

    def _ack(self, body: bytes, message_id: str, error) -> dict:
        return w.ack(request_body=body, message_id=message_id, signer=self.signer, now_s=self.clock(), error=error,
                     nack=error is not None)

    async def handle_on_publish(self, request: web.Request) -> web.Response:
        from aiohttp import web

        body = await w.read_body(request.content, w.MAX_BODY_BYTES)
        status, ack = await self.receive_on_publish(body, request.headers.get("Authorization"))
        return web.Response(body=w.encode(ack), status=status, content_type="application/json")
