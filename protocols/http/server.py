"""Beckn over HTTP: the provider's endpoints (``POST /search`` ... ``/support``) and callbacks.

The endpoints are the ``Bpp``'s profile's: Beckn 1.1 (``/search`` ... ``/rating``) or 2.0
(``/discover`` ... ``/rate``, each answered with a counter-signed Ack).

Thin on purpose: the request body and headers go to ``Bpp.receive`` untouched (the signature
covers the exact bytes), the ACK/NACK comes back with the status ``Bpp`` chose (401 with
``WWW-Authenticate`` for signature failures, as BECKN-006 prescribes), and the signed
``on_*`` callbacks are POSTed to ``<bap_uri>/<action>`` after the answer, by named tasks with
bounded retries. Unsolicited messages from ``Bpp`` (status changes, the final receipt) take the
same path, or, given a ``journal``, go through its durable outbox (topic ``http/...``): a buyer
whose server is down for an hour, or a charger that restarts meanwhile, still gets the receipt,
signed afresh when it is finally sent.

Public API::

    BecknHttpServer(*, bpp, session=None, max_attempts=3, retry_delay_s=0.5, timeout_s=10.0,
                    max_body_bytes=None, journal=None, clock=None, outbox_poll_s=1.0, retry_max_s=300.0,
                    rng=None)
      server.app() -> aiohttp.web.Application
      await server.start(host="127.0.0.1", port=0) -> int     the bound port
      await server.deliver(out: Outgoing) -> bool              also used as ``bpp.send``
      await server.close()                                     stops serving, cancels deliveries
"""
from __future__ import annotations

import asyncio
import json
import logging
import random as _random

import aiohttp
from aiohttp import web

from agent.aio import cancel_and_wait
from protocols.beckn import messages as m
from protocols.beckn.bpp import Bpp, Outgoing
from protocols.beckn.errors import INVALID_REQUEST
from protocols.http.serve import MAX_HEADER_BYTES, action_app, serve
from protocols.outbox import OutboxPump, Outcome

log = logging.getLogger("urja.http")
OUTBOX_PREFIX = "http/"  # this binding's topics in the journal's outbox
OUTBOX_BATCH = 20


class BecknHttpServer:
    def __init__(self, *, bpp: Bpp, session: aiohttp.ClientSession | None = None, max_attempts: int = 3,
                 retry_delay_s: float = 0.5, timeout_s: float = 10.0, max_body_bytes: int | None = None,
                 journal=None, clock=None, outbox_poll_s: float = 1.0, retry_max_s: float = 300.0,
                 rng: _random.Random | None = None):
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.bpp = bpp
        self._session = session
        self._own_session = session is None
        self.max_attempts = max_attempts
        self.retry_delay_s = retry_delay_s
        self.timeout_s = timeout_s
        self.max_body_bytes = max_body_bytes or bpp.max_body_bytes
        self._tasks: set[asyncio.Task] = set()
        self._runner: web.AppRunner | None = None
        self.counters: dict[str, int] = {}
        self.journal = journal
        self.clock = clock or bpp.clock
        self.outbox_poll_s = outbox_poll_s
        self.retry_max_s = retry_max_s
        self._rng = rng
        self._pump: OutboxPump | None = None
        bpp.send = self._queue if journal is not None else self.deliver
        self.extra_routes: list = []  # callables adding routes of other parts (``/catalog/on_publish``)

    def _count(self, name: str) -> None:
        self.counters[name] = self.counters.get(name, 0) + 1

    def app(self) -> web.Application:
        app = action_app(self.bpp.profile.actions, self._handle, max_body_bytes=self.max_body_bytes,
                         refuse_headers=self._refuse_headers)
        for add in self.extra_routes:
            add(app)
        return app

    def _refuse_headers(self, request: web.Request, size: int) -> web.Response:
        """The binding's own NACK, as for any other request it will not read."""
        self._count("headers_too_large")
        body = m.nack(INVALID_REQUEST, f"headers are {size} bytes, limit {MAX_HEADER_BYTES}")
        return web.json_response(body, status=400)

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        self._runner, bound = await serve(self.app(), host, port)
        if self.journal is not None and self._pump is None:
            self._pump = OutboxPump(name="beckn-http-outbox", outbox=self.journal, topic_prefix=OUTBOX_PREFIX,
                                    deliver=self._deliver_queued, clock=lambda: self.clock(), rng=self._rng,
                                    batch=OUTBOX_BATCH, poll_s=self.outbox_poll_s,
                                    retry_initial_s=self.retry_delay_s, retry_max_s=self.retry_max_s, logger=log)
            self._pump.start()
        return bound

    async def close(self) -> None:
        tasks, self._tasks = list(self._tasks), set()
        if self._pump is not None:
            await self._pump.close()
            self._pump = None
        await cancel_and_wait(tasks)
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    async def _handle(self, request: web.Request) -> web.Response:
        action = request.path.rsplit("/", 1)[-1]
        if request.content_length is not None and request.content_length > self.max_body_bytes:
            body = b"x" * (self.max_body_bytes + 1)  # let Bpp word and count the refusal
        else:
            try:
                body = await request.read()
            except web.HTTPRequestEntityTooLarge:
                body = b"x" * (self.max_body_bytes + 1)
        reply = await self.bpp.receive(action, body, dict(request.headers))
        for out in reply.callbacks:
            task = asyncio.create_task(self.deliver(out), name=f"beckn-http-callback:{out.action}")
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        # 1.1: the ACK/NACK as made; 2.0: the Ack with the charger's counter-signature, and the
        # beckn-onix Signature header over the exact bytes sent
        profile = self.bpp.profile
        ack_bytes = m.encode(self.bpp.wire_ack(reply, body))
        headers = {**reply.headers, **profile.wire_headers(self.bpp, ack_bytes, dict(request.headers))}
        return web.Response(body=ack_bytes, status=profile.wire_status(reply), headers=headers,
                            content_type="application/json")

    async def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout_s))
        return self._session

    # --- the durable outbox (unsolicited messages) --------------------------------------------

    async def _queue(self, out: Outgoing) -> None:
        """``bpp.send`` with a journal: keep the message durably; the pump delivers it."""
        if not out.receiver_uri or not out.receiver_uri.startswith(("http://", "https://")):
            self._count("undeliverable")
            return
        payload = json.dumps({"action": out.action, "body": out.body.decode("utf-8"), "uri": out.receiver_uri,
                              "receiver_id": out.receiver_id}, separators=(",", ":"))
        self.journal.enqueue(f"{OUTBOX_PREFIX}{out.receiver_id or '-'}", payload)
        self._count("queued")
        if self._pump is not None:
            self._pump.kick()

    async def _deliver_queued(self, entry) -> Outcome:
        """Send one queued message, signed afresh: the signature it had when queued may have
        expired while the buyer was away."""
        try:
            item = json.loads(entry.payload)
            body = item["body"].encode("utf-8")
            out = Outgoing(item["action"], body, self.bpp.sign_headers(body), item.get("receiver_id"), item["uri"])
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            return Outcome.drop(f"beckn: queued HTTP message is unreadable: {exc}")
        outcome = await self._post(out)
        if outcome == "retry":
            return Outcome.retry()  # _post logged why
        if outcome == "refused":  # retrying cannot change a 4xx
            return Outcome.drop(f"beckn: {out.action} refused by {out.receiver_uri}")
        return Outcome.delivered()

    async def deliver(self, out: Outgoing) -> bool:
        """POST a signed message to its receiver, retrying a few times; True once it was ACKed."""
        uri = out.receiver_uri
        if not uri or not uri.startswith(("http://", "https://")):
            self._count("undeliverable")
            return False
        for attempt in range(self.max_attempts):
            outcome = await self._post(out)
            if outcome != "retry":
                return outcome == "delivered"
            if attempt + 1 < self.max_attempts:
                await asyncio.sleep(self.retry_delay_s * (2 ** attempt))  # back-off, not synchronisation
        self._count("failed")
        return False

    async def _post(self, out: Outgoing) -> str:
        """One POST: "delivered", "refused" (a 4xx other than 429: final) or "retry"."""
        url = out.receiver_uri.rstrip("/") + "/" + out.action
        session = await self._client()
        try:
            async with session.post(url, data=out.body, headers=out.headers) as resp:
                text = await resp.read()
                if resp.status == 200:
                    self._count("delivered")
                    return "delivered"
                if 400 <= resp.status < 500 and resp.status != 429:
                    self._count("rejected")  # the receiver said no: retrying will not change that
                    log.warning("beckn: %s refused %s (%s): %s", url, out.action, resp.status, text[:200])
                    return "refused"
                log.info("beckn: %s to %s answered HTTP %s", out.action, url, resp.status)
        except asyncio.CancelledError:
            raise
        except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
            log.info("beckn: %s to %s failed: %s", out.action, url, exc)
        return "retry"
