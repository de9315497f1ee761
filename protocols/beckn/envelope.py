"""The envelope of every message: exact bytes, the context, callbacks and ACK/NACK.

Why the bytes matter: a BECKN-006 signature covers the body exactly as sent, so encoding is
compact and deterministic here and decoding refuses what could be read two ways.
"""
from __future__ import annotations

import json

from protocols.beckn.errors import INVALID_REQUEST, BecknError
from protocols.beckn.values import duration_text, format_timestamp
from protocols.beckn.vocabulary import (
    CORE_VERSION,
    DEFAULT_CITY,
    DEFAULT_COUNTRY,
    DEFAULT_DOMAIN,
    DEFAULT_TTL_S,
    MAX_BODY_BYTES,
    MAX_TEXT,
)
from protocols.signing.detached import load_json
from protocols.signing.errors import SignatureError


def encode(doc: dict) -> bytes:
    """Compact UTF-8 JSON: these exact bytes are what gets signed and sent."""
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


def decode(body: bytes, *, max_bytes: int = MAX_BODY_BYTES) -> dict:
    """Untrusted bytes to a JSON object: bounded, no duplicate keys, no NaN; ``BecknError``."""
    if not isinstance(body, (bytes, bytearray)):
        raise BecknError(INVALID_REQUEST, "body must be bytes", kind="malformed")
    if len(body) > max_bytes:
        raise BecknError(INVALID_REQUEST, f"body is {len(body)} bytes, limit {max_bytes}",
                         kind="oversized", http_status=413)
    try:
        doc = load_json(bytes(body), max_bytes=max_bytes)
    except SignatureError as exc:
        raise BecknError(INVALID_REQUEST, str(exc), kind="malformed") from None
    if not isinstance(doc, dict):
        raise BecknError(INVALID_REQUEST, "body must be a JSON object", path="$", kind="malformed")
    return doc


def new_context(*, action: str, bap_id: str, bap_uri: str, transaction_id: str, message_id: str,
                timestamp_s: float, bpp_id: str | None = None, bpp_uri: str | None = None,
                domain: str = DEFAULT_DOMAIN, ttl_s: int | None = DEFAULT_TTL_S,
                city_code: str = DEFAULT_CITY, country_code: str = DEFAULT_COUNTRY) -> dict:
    ctx = {
        "domain": domain,
        "action": action,
        "location": {"country": {"code": country_code}, "city": {"code": city_code}},
        "version": CORE_VERSION,
        "bap_id": bap_id,
        "bap_uri": bap_uri,
    }
    if bpp_id is not None:
        ctx["bpp_id"] = bpp_id
    if bpp_uri is not None:
        ctx["bpp_uri"] = bpp_uri
    ctx.update(transaction_id=transaction_id, message_id=message_id,
               timestamp=format_timestamp(timestamp_s))
    if ttl_s is not None:
        ctx["ttl"] = duration_text(ttl_s)
    return ctx


def reply_context(request_context: dict, *, action: str, timestamp_s: float, bpp_id: str,
                  bpp_uri: str, message_id: str | None = None, ttl_s: int | None = DEFAULT_TTL_S,
                  location: dict | None = None) -> dict:
    """Context of a callback: same transaction (and message id unless unsolicited), our ids.

    ``location`` is the provider's own, given when a request without one must still be
    answered with the documented context (every callback carries a ``location``)."""
    ctx = {k: v for k, v in request_context.items() if k not in ("ttl", "key")}
    if location is not None and not isinstance(ctx.get("location"), dict):
        ctx["location"] = location
    ctx.update(action=action, bpp_id=bpp_id, bpp_uri=bpp_uri,
               timestamp=format_timestamp(timestamp_s))
    if message_id is not None:
        ctx["message_id"] = message_id
    if ttl_s is not None:
        ctx["ttl"] = duration_text(ttl_s)
    return ctx


def callback(ctx: dict, message: dict) -> dict:
    return {"context": ctx, "message": message}


def ack() -> dict:
    return {"message": {"ack": {"status": "ACK"}}}


def nack(code: str, message: str, path: str | None = None) -> dict:
    error = {"code": str(code), "message": message[:MAX_TEXT]}
    if path:
        error["paths"] = path
    return {"message": {"ack": {"status": "NACK"}}, "error": error}
