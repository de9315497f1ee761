"""Admission of an incoming request: nothing reaches the charger before it passed.

The checks, in order: the action is served; the body is bytes within ``max_body_bytes`` and
one JSON object; a carried agency certificate (or, for a message about an order, the one its
buyer showed before) verifies against the agency key and the current revocation list (its keys
are then trusted for this sender); the BECKN-006 signature
verifies; the message reads strictly (``messages.parse_request``); the signer is the buyer the
context names, the message is addressed to this charger, it is not from the future nor past
its ttl; and its message id is fresh (a duplicate gets the first answer again). Whatever
fails becomes a NACK naming the reason; a bug becomes a NACK too, never a crash of the
binding. A NACK is signed and addressed to nobody (``Reply.refusal``) unless the request's
signature verified and its signer is the ``bap_id`` it names: unverified input must not make
the charger sign anything, nor send anything to a participant it names.

What is reused between messages, and why that weakens nothing: the check of a buyer's
certificate, for that exact certificate text, inside its own window, under the same
revocation list (a new or re-signed list drops every cached check at once).
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any

from protocols.beckn import messages as m
from protocols.beckn.errors import BUSINESS_ERROR, INVALID_REQUEST, BecknError
from protocols.beckn.profile import CURRENT_PATHS
from protocols.beckn.render import Reply
from protocols.beckn.trust import revocations_marker
from protocols.signing.beckn import AUTHORIZATION, GATEWAY_AUTHORIZATION, www_authenticate
from protocols.signing.detached import load_json
from protocols.signing.errors import SignatureError

log = logging.getLogger("urja.beckn")


def _header(headers: Any, name: str) -> str | None:
    if not isinstance(headers, dict):
        return None
    for k, v in headers.items():
        if isinstance(k, str) and k.lower() == name.lower():
            return v if isinstance(v, str) else None
    return None


def _peek_certificate_text(doc: dict) -> str | None:
    """A carried certificate's text, if any, without trusting anything else in the document."""
    msg = doc.get("message")
    if not isinstance(msg, dict):
        return None
    holder = msg.get("order") if isinstance(msg.get("order"), dict) else msg.get("intent")
    if not isinstance(holder, dict) or not isinstance(holder.get("tags"), list):
        return None
    values = m.tag_values(holder["tags"], m.TAG_CERTIFICATE)
    text = values.get(m.SIGNED_VALUE) if values else None
    return text if isinstance(text, str) else None


def _parse_certificate(text: str) -> dict | None:
    """The carried certificate as an object; None when it is not a JSON object (the strict read
    of the message then refuses it with the path)."""
    try:
        doc = load_json(text)
    except SignatureError:
        return None
    return doc if isinstance(doc, dict) else None


class AdmissionMixin:
    """The ``Bpp``'s entry point, ``receive``; the handlers it calls are in ``_handlers``."""

    async def receive(self, action: str, body: bytes, headers: dict) -> Reply:
        """Verify, read and act on one incoming request; never raises for bad input."""
        self._count("received")
        CURRENT_PATHS.set(None)
        try:
            reply = await self._receive(action, body, headers)
        except BecknError as exc:
            reply = self._nack(exc)
        except SignatureError as exc:
            reply = self._nack(BecknError(INVALID_REQUEST, f"signature refused: {exc}", kind="signature",
                                          http_status=401))
        except asyncio.CancelledError:
            raise
        except Exception:  # a bug must end as a refusal, never as a crash of the binding
            log.exception("beckn %s: internal error", action)
            reply = self._nack(BecknError(BUSINESS_ERROR, "internal error while handling the request",
                                          kind="internal", http_status=500))
        if reply.acked:
            self._count("ack")
        return reply

    def _nack(self, exc: BecknError, *, action: str | None = None, answer_to: dict | None = None) -> Reply:
        """The NACK; with ``answer_to`` (the context of a request whose signer is the ``bap_id``
        it names) also the signed error callback a binding without a synchronous answer sends."""
        self._count("nack")
        self._count(f"nack:{exc.code}")
        self._count(f"nack:{exc.kind}")
        headers = {}
        if exc.http_status == 401:
            headers["WWW-Authenticate"] = www_authenticate(self.bpp_id)
        ack = m.nack(exc.code, exc.reason, self.profile.error_path(exc.path))
        refusal = None
        if answer_to is not None and action is not None and not (action == "search" and exc.kind == "no-match"):
            refusal = self._refusal(answer_to, action, ack["error"])
        return Reply(ack, [], exc.http_status, headers, refusal)

    async def _receive(self, action: str, body: bytes, headers: dict) -> Reply:  # noqa: C901
        if action not in self.profile.actions:
            raise BecknError("40001", f"action {action!r} is not served here (allowed: "
                                      f"{', '.join(self.profile.actions)})", kind="unknown-action", http_status=404)
        if not isinstance(body, (bytes, bytearray)):
            raise BecknError(INVALID_REQUEST, "body must be bytes", kind="malformed")
        if len(body) > self.max_body_bytes:
            raise BecknError(INVALID_REQUEST, f"body is {len(body)} bytes, limit {self.max_body_bytes}",
                             kind="oversized", http_status=413)
        body = bytes(body)
        doc = m.decode(body, max_bytes=self.max_body_bytes)
        unreadable = None
        if not self.profile.identity:
            # read into the documents the handlers know; refusals from here on name the sender's paths
            try:
                action, doc, paths = self.profile.inbound(action, doc, body, headers)
                CURRENT_PATHS.set(paths)
            except BecknError as exc:  # told once the signature is checked, as 1.1 tells what it cannot read
                unreadable, action, doc = exc, self.profile.handler_action(action), self.profile.loose(doc)
        # A carried certificate is read from the raw document only to find the key; the
        # message itself is parsed into domain objects after its signature verified.
        carried_text = _peek_certificate_text(doc)
        record = None
        if self.agency_public_key is not None:
            self._follow_revocations()
        if carried_text is None and self.agency_public_key is not None:
            record = self._kept_certificate_key(doc)
        elif carried_text is not None and self.agency_public_key is not None:
            now_s = self.clock()
            # the very certificate text verified before needs no parsing and no agency signature check
            record = self.certificate_cache.cached(carried_text, self.agency_public_key, self.revocations,
                                                   now_s=now_s)
            carried = _parse_certificate(carried_text) if record is None else None
            if carried is not None:
                try:
                    record = self.certificate_cache.verify(carried, self.agency_public_key, self.revocations,
                                                           now_s=now_s, text=carried_text)
                except SignatureError as exc:
                    raise BecknError(INVALID_REQUEST, f"sender certificate refused: {exc}", kind="uncertified",
                                     http_status=401) from None
        lookup_before = None
        if record is not None:
            lookup_before = self.certified_keys.known(record.subscriber_id, record.key_id)
            self.certified_keys.add(record)
        try:
            verified = await self._verifier.verify_message(body, _header(headers, AUTHORIZATION),
                                                     _header(headers, GATEWAY_AUTHORIZATION))
        except SignatureError as exc:
            if record is not None and not lookup_before:  # a refused message leaves no trace
                self.certified_keys.discard(record.subscriber_id, record.key_id)
            raise BecknError(INVALID_REQUEST, f"signature refused: {exc}", kind="signature",
                             http_status=401) from None
        raw_ctx = doc.get("context")
        if unreadable is not None:
            known = isinstance(raw_ctx, dict) and raw_ctx.get("bap_id") == verified.sender.subscriber_id
            return self._nack(unreadable, action=action, answer_to=raw_ctx if known else None)
        if not (isinstance(raw_ctx, dict) and raw_ctx.get("bap_id") == verified.sender.subscriber_id):
            return await self._admitted(action, doc, verified, None)
        try:
            return await self._admitted(action, doc, verified, raw_ctx)
        except BecknError as exc:  # its sender is known: it may be told why, in its own inbox
            return self._nack(exc, action=action, answer_to=raw_ctx)

    async def _admitted(self, action: str, doc: dict, verified, answer_to: dict | None) -> Reply:
        """A request whose signature verified: read it strictly, check it and hand it over.

        ``answer_to`` is its context when its signer is the ``bap_id`` it names (refusals
        then carry their error callback), else None."""
        req = m.parse_request(doc, action=action, domain=self.domain, currency=self._currency())
        ctx = req.context
        if verified.sender.subscriber_id != ctx.bap_id:
            raise BecknError(INVALID_REQUEST, f"signed by {verified.sender.subscriber_id!r} but context.bap_id "
                                              f"is {ctx.bap_id!r}", path="context.bap_id", kind="signature",
                             http_status=401)
        if action != "search" and ctx.bpp_id != self.bpp_id:
            raise BecknError(INVALID_REQUEST, f"{ctx.bpp_id!r} is not this charger ({self.bpp_id})",
                             path="context.bpp_id", kind="misaddressed")
        now_s = self.clock()
        if ctx.timestamp_s > now_s + self.verifier.clock_skew_s:
            raise BecknError(INVALID_REQUEST, "timestamp lies in the future", path="context.timestamp",
                             kind="stale")
        if ctx.ttl_s is not None and ctx.timestamp_s + ctx.ttl_s < now_s:
            raise BecknError(INVALID_REQUEST, "message expired (timestamp + ttl is past)", path="context.ttl",
                             kind="stale")
        certified = self.certified_keys.certified(verified.sender.subscriber_id, verified.sender.key_id, now_s)
        try:
            admission = self.replay.admit_verified(ctx.message_id, verified)
        except SignatureError as exc:
            raise BecknError(INVALID_REQUEST, str(exc), path="context.message_id", kind="replay") from None
        if not admission.fresh:
            self._count("duplicate")
            if admission.answer is None:
                raise BecknError(INVALID_REQUEST, "the same message is still being handled",
                                 path="context.message_id", kind="replay")
            return admission.answer
        try:
            reply = await self._handlers[action](req, certified, verified.digest)
        except BecknError as exc:
            reply = self._nack(exc, action=action, answer_to=answer_to)
            self.replay.settle(ctx.message_id, reply)
            return reply
        except BaseException:
            self.replay.forget(ctx.message_id)
            raise
        self.replay.settle(ctx.message_id, reply)
        return reply

    def _kept_certificate_key(self, doc: dict):
        """The key vouched for by the certificate the buyer of the named order showed earlier, or None.

        Why: ``status``, ``track``, ``update`` and ``cancel`` carry no certificate, and the keys
        certificates vouched for live in a bounded memory that a restart empties; the order keeps
        its buyer's certificate (``order_record``), checked here again against the agency key and
        the revocation list in force. Only the buyer the order names is looked for, and the
        message's signature must still verify with the key; a certificate that no longer
        passes is left out (the signature check then says what is wrong).
        """
        ctx = doc.get("context")
        if not isinstance(ctx, dict) or not isinstance(ctx.get("bap_id"), str):
            return None
        tx = self._txs.get(ctx.get("transaction_id")) if isinstance(ctx.get("transaction_id"), str) else None
        if tx is None:
            msg = doc.get("message")
            order = msg.get("order") if isinstance(msg, dict) else None
            order_id = msg.get("order_id") if isinstance(msg, dict) else None
            if order_id is None and isinstance(order, dict):
                order_id = order.get("id")
            tx = self._by_order.get(order_id) if isinstance(order_id, str) else None
        if tx is None or tx.bap_id != ctx["bap_id"] or tx.buyer_certificate is None:
            return None
        try:
            return self.certificate_cache.verify(tx.buyer_certificate, self.agency_public_key, self.revocations,
                                                 now_s=self.clock())
        except SignatureError:
            self._count("kept_certificate_refused")
            return None

    def _follow_revocations(self) -> None:
        """A new revocation list (assigned to ``self.revocations``, or re-signed in place) takes
        effect at once: cached certificate checks are dropped and revoked keys forgotten."""
        held, marker = self._revocations_seen
        if held is self.revocations and marker == revocations_marker(self.revocations):
            return
        self._revocations_seen = (self.revocations, revocations_marker(self.revocations))
        self.certificate_cache.clear()
        self.certified_keys.apply_revocations(self.revocations, self.agency_public_key)
        self._count("revocations_changed")

    def _currency(self) -> str:
        try:
            return str(self.service.tariff().get("currency", "INR"))
        except Exception:
            return "INR"
