"""A small buyer-side (BAP) receiver for ``on_*`` callbacks over HTTP.

Tests and the reference node use it to receive what a charger sends back: each callback's
signature is checked (when a verifier is given) before it is accepted, then it is kept in
order of arrival for ``wait_for``.

Public API::

    BapReceiver(*, verifier=None, max_body_bytes=65536, realm="bap", profile="beckn-1.1", signer=None,
                clock=None)     2.0: callbacks are read into 1.1 (``received``) and kept as sent
                                (``raw``); Acks are counter-signed by ``signer``
      await receiver.start(host="127.0.0.1", port=0) -> int
      receiver.received: list[(action, doc, verified_subscriber_id | None)]
      await receiver.wait_for(action, *, transaction_id=None, timeout_s=5.0, after=0) -> dict
      await receiver.close()
"""
from __future__ import annotations

import asyncio

from aiohttp import web

from protocols.beckn import messages as m
from protocols.beckn.errors import BecknError
from protocols.http.serve import action_app, serve
from protocols.signing.beckn import AUTHORIZATION, Verifier, www_authenticate
from protocols.signing.errors import SignatureError


class BapReceiver:
    def __init__(self, *, verifier: Verifier | None = None, max_body_bytes: int = m.MAX_BODY_BYTES,
                 realm: str = "bap", profile: str = "beckn-1.1", signer=None, clock=None):
        self.verifier = verifier
        self.profile = profile
        self.signer = signer  # 2.0: counter-signs each Ack
        self.clock = clock
        self.raw: list[tuple[str, dict]] = []  # 2.0: each callback as it came
        self.max_body_bytes = max_body_bytes
        self.realm = realm
        self.received: list[tuple[str, dict, str | None]] = []
        self.refused = 0
        self._changed = asyncio.Event()
        self._runner: web.AppRunner | None = None

    def app(self) -> web.Application:
        if self.profile == "beckn-2.0":
            from protocols.beckn2.vocabulary import CALLBACK_ACTIONS
            return action_app(CALLBACK_ACTIONS, self._handle, max_body_bytes=self.max_body_bytes)
        return action_app(m.CALLBACK_ACTIONS, self._handle, max_body_bytes=self.max_body_bytes)

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        self._runner, bound = await serve(self.app(), host, port)
        return bound

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _handle(self, request: web.Request) -> web.Response:
        action = request.path.rsplit("/", 1)[-1]
        body = await request.read()
        sender = None
        if self.verifier is not None:
            try:
                verified = await self.verifier.verify_message(body, request.headers.get(AUTHORIZATION))
                sender = verified.sender.subscriber_id
            except SignatureError as exc:
                self.refused += 1
                return web.json_response(m.nack("30000", f"signature refused: {exc}"), status=401,
                                         headers={"WWW-Authenticate": www_authenticate(self.realm)})
        try:
            doc = m.decode(body, max_bytes=self.max_body_bytes)
            if self.profile == "beckn-2.0":
                from protocols.beckn2.codec import callback_v1
                raw, doc = doc, callback_v1(doc)
                self.raw.append((action, raw))
                action = doc["context"]["action"]
            ctx, _ = m.parse_callback(doc, action=action)
        except BecknError as exc:
            self.refused += 1
            return web.json_response(m.nack(exc.code, exc.reason, exc.path), status=exc.http_status)
        if sender is not None and sender != ctx.bpp_id:
            self.refused += 1
            return web.json_response(m.nack("30000", "signer is not context.bpp_id", "context.bpp_id"), status=401)
        self.received.append((action, doc, sender))
        self._changed.set()
        if self.profile == "beckn-2.0":
            return web.json_response(self._ack_v2(body))
        return web.json_response(m.ack())

    def _ack_v2(self, body: bytes) -> dict:
        from protocols.beckn2.ack import counter_sign
        from protocols.beckn2.profile import request_message_id

        if self.signer is None:
            return {"status": "ACK"}
        return counter_sign({"status": "ACK"}, request_body=body, message_id=request_message_id(body),
                            signer=self.signer, created_s=int(self.clock()))

    def _find(self, action, transaction_id, after):
        for act, doc, _ in self.received[after:]:
            if act == action and (transaction_id is None or doc["context"].get("transaction_id") == transaction_id):
                return doc
        return None

    async def wait_for(self, action: str, *, transaction_id: str | None = None, timeout_s: float = 5.0,
                       after: int = 0) -> dict:
        """The first ``action`` callback (of ``transaction_id``) at index ``after`` or later."""

        async def wait():
            while True:
                doc = self._find(action, transaction_id, after)
                if doc is not None:
                    return doc
                self._changed.clear()
                await self._changed.wait()

        try:
            return await asyncio.wait_for(wait(), timeout_s)
        except asyncio.TimeoutError:
            raise TimeoutError(f"no {action} for transaction {transaction_id} within {timeout_s} s") from None
