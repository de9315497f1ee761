"""Signed MQTT payloads: header block, empty line, exact body bytes.

The framing itself lives in ``protocols.signing.beckn`` (one definition for every binding);
this module adds what the MQTT binding needs around it: signing a body for a window that
follows the message's ``ttl``, a light and bounded look at the context for routing (which
transaction, which message, still within its ttl?) before the provider verifies and parses
it for real, and the signed presence document.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Callable

from protocols.beckn import messages
from protocols.errors import ProtocolError
from protocols.signing.beckn import (
    AUTHORIZATION,
    CERTIFICATE_HEADER,
    GATEWAY_AUTHORIZATION,
    FramedMessage,
    frame_message,
    parse_frame,
    parse_signature_header,
    sign_body,
)
from protocols.signing.keys import Ed25519Signer

MAX_PAYLOAD_BYTES = 64 * 1024 + 4 * 1024 + 24 * 1024  # body limit, two signature headers, a certificate
SIGNATURE_MIN_WINDOW_S = 60


class FrameError(ProtocolError):
    code = "frame-invalid"


def sign_and_frame(body: bytes, signer: Ed25519Signer, *, now_s: float, window_s: int,
                   certificate: str | None = None) -> bytes:
    """Sign ``body`` valid from now for ``window_s`` seconds and frame it (with the sender's
    certificate header beside a Beckn 2.0 discover)."""
    created = int(now_s)
    auth = sign_body(body, signer, created_s=created, expires_s=created + max(SIGNATURE_MIN_WINDOW_S, int(window_s)))
    return frame_message(body, auth, certificate=certificate)


def unframe(payload: bytes) -> FramedMessage:
    if len(payload) > MAX_PAYLOAD_BYTES:
        raise FrameError(f"payload of {len(payload)} bytes exceeds {MAX_PAYLOAD_BYTES}", code="payload-too-large")
    try:
        return parse_frame(payload, max_bytes=MAX_PAYLOAD_BYTES)
    except ProtocolError as exc:
        raise FrameError(str(exc), code="frame-invalid") from None


def headers_of(frame: FramedMessage) -> dict:
    """The frame's headers as an HTTP binding would hand them to the provider."""
    headers = {AUTHORIZATION: frame.authorization}
    if frame.gateway_authorization is not None:
        headers[GATEWAY_AUTHORIZATION] = frame.gateway_authorization
    if frame.certificate is not None:
        headers[CERTIFICATE_HEADER] = frame.certificate
    return headers


def signature_expires_s(frame: FramedMessage) -> int:
    return parse_signature_header(frame.authorization).expires_s


@dataclass(frozen=True)
class Routing:
    """What the binding reads from a body before the provider verifies it: only for routing,
    deduplication and ttl, never for a decision about charging."""

    action: str
    transaction_id: str
    message_id: str
    timestamp_s: float
    ttl_s: int | None
    bap_id: str | None
    bpp_id: str | None

    def expired(self, now_s: float, default_ttl_s: int) -> bool:
        ttl = self.ttl_s if self.ttl_s is not None else default_ttl_s
        return now_s > self.timestamp_s + ttl


def peek_routing(body: bytes) -> Routing:
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):  # nesting too deep for the parser is malformed too
        raise FrameError("body is not JSON", code="body-malformed") from None
    ctx = doc.get("context") if isinstance(doc, dict) else None
    if not isinstance(ctx, dict):
        raise FrameError("body has no context object", code="body-malformed")
    try:
        action = ctx["action"]
        if "transactionId" in ctx or "messageId" in ctx:  # Beckn 2.0: camelCase keys
            ctx = {**ctx, "transaction_id": ctx["transactionId"], "message_id": ctx["messageId"],
                   "bap_id": ctx.get("bapId"), "bpp_id": ctx.get("bppId")}
        txn, mid = ctx["transaction_id"], ctx["message_id"]
        if not all(isinstance(v, str) and v for v in (action, txn, mid)):
            raise KeyError("empty")
        ts = messages.parse_timestamp(ctx.get("timestamp"), "context.timestamp")
        ttl = messages.parse_duration(ctx["ttl"], "context.ttl") if ctx.get("ttl") is not None else None
    except (KeyError, TypeError, ProtocolError) as exc:
        raise FrameError(f"context lacks a usable action, transaction_id, message_id or timestamp ({exc})",
                         code="body-malformed") from None
    return Routing(action, txn, mid, ts, ttl, ctx.get("bap_id"), ctx.get("bpp_id"))


PRESENCE_KIND = "urja.presence"


def presence_body(*, subscriber_id: str, online: bool, now_s: float, lat: float, lon: float,
                  catalog_topic: str, bridges: tuple[str, ...] = (), clock: dict | None = None) -> bytes:
    """``bridges``: the HTTP bridges the charger lets front it (``protocols.bridge``); ``clock``:
    whether its clock is trusted and why (``agent.service.ClockView.as_dict``), so a buyer sees
    why it is not selling."""
    doc = {"kind": PRESENCE_KIND, "subscriber_id": subscriber_id, "status": "ONLINE" if online else "OFFLINE",
           "timestamp": messages.format_timestamp(now_s), "gps": f"{lat:.6f},{lon:.6f}",
           "catalog_topic": catalog_topic}
    if bridges:
        doc["bridges"] = list(bridges)
    if clock is not None:
        doc["clock"] = clock
    return messages.encode(doc)


SignerFor = Callable[[float], Ed25519Signer]
