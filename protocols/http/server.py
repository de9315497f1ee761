"""Beckn over HTTP: the provider's endpoints (``POST /search`` ... ``/support``) and callbacks.

Thin on purpose: the request body and headers go to ``Bpp.receive`` untouched (the signature
covers the exact bytes), the ACK/NACK comes back with the status ``Bpp`` chose (401 with
``WWW-Authenticate`` for signature failures, as BECKN-006 prescribes), and the signed
``on_*`` callbacks are POSTed to ``<bap_uri>/<action>`` after the answer, by named tasks with
bounded retries. Unsolicited messages from ``Bpp`` take the same delivery path.

Public API::

    BecknHttpServer(*, bpp, session=None, max_attempts=3, retry_delay_s=0.5, timeout_s=10.0,
                    max_body_bytes=None)
      server.app() -> aiohttp.web.Application
      await server.start(host="127.0.0.1", port=0) -> int     the bound port
      await server.deliver(out: Outgoing) -> bool              also used as ``bpp.send``
      await server.close()                                     stops serving, cancels deliveries
"""
from __future__ import annotations

import asyncio
import logging

import aiohttp
from aiohttp import web
from agent.aio import cancel_and_wait
from protocols.http.serve import action_app, serve

from protocols.beckn import messages as m
from protocols.beckn.bpp import Bpp, Outgoing

log = logging.getLogger("urja.http")


class BecknHttpServer:
    def __init__(self, *, bpp: Bpp, session: aiohttp.ClientSession | None = None, max_attempts: int = 3,
                 retry_delay_s: float = 0.5, timeout_s: float = 10.0, max_body_bytes: int | None = None):
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
        bpp.send = self.deliver

    def _count(self, name: str) -> None:
        self.counters[name] = self.counters.get(name, 0) + 1

    def app(self) -> web.Application:
        return action_app(m.REQUEST_ACTIONS, self._handle, max_body_bytes=self.max_body_bytes)

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        self._runner, bound = await serve(self.app(), host, port)
        return bound

    async def close(self) -> None:
        tasks, self._tasks = list(self._tasks), set()
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
        return web.json_response(reply.ack, status=reply.http_status, headers=reply.headers)

    async def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=self.timeout_s))
        return self._session

    async def deliver(self, out: Outgoing) -> bool:
        """POST a signed message to its receiver; True once it was ACKed."""
        uri = out.receiver_uri
        if not uri or not uri.startswith(("http://", "https://")):
            self._count("undeliverable")
            return False
        url = uri.rstrip("/") + "/" + out.action
        session = await self._client()
        for attempt in range(self.max_attempts):
            try:
                async with session.post(url, data=out.body, headers=out.headers) as resp:
                    text = await resp.read()
                    if resp.status == 200:
                        self._count("delivered")
                        return True
                    if 400 <= resp.status < 500 and resp.status != 429:
                        self._count("rejected")  # the receiver said no: retrying will not change that
                        log.warning("beckn: %s refused %s (%s): %s", url, out.action, resp.status, text[:200])
                        return False
            except asyncio.CancelledError:
                raise
            except (aiohttp.ClientError, asyncio.TimeoutError) as exc:
                log.info("beckn: %s to %s failed (attempt %d): %s", out.action, url, attempt + 1, exc)
            if attempt + 1 < self.max_attempts:
                await asyncio.sleep(self.retry_delay_s * (2 ** attempt))  # back-off, not synchronisation
        self._count("failed")
        return False
