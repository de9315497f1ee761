"""The few Beckn 2.0 envelope pieces that catalog publishing and discovery share.

Publishing and discovery run beside the transaction flow and need only a context, a signed
POST and an Ack; keeping them here lets the catalog service, the charger's publisher and a
node's discovery speak the same bytes without depending on the provider's codec.

Shapes follow ``beckn.yaml`` 2.0.0 LTS: camelCase context keys, ``version`` "2.0.0",
``networkId``, ``requestDigest`` on every callback (``BLAKE-512=`` and the digest of the
request's exact bytes), Acks ``{"status", "signature"}`` with a counter-signature and, on a
refusal, ``error: {errorCode, errorMessage}``.
"""
from __future__ import annotations

import json
import re
from typing import Any, Callable

from protocols.errors import ProtocolError
from protocols.signing._codec import format_time, strict_json
from protocols.signing.beckn import body_digest, sign_body
from protocols.signing.countersign import counter_sign
from protocols.signing.errors import SignatureError
from protocols.signing.keys import signer_at
from protocols.streams import read_body  # noqa: F401  (the wire's readers use it as w.read_body)

VERSION = "2.0.0"
PUBLISH_ACTIONS = ("catalog/publish", "catalog_publish")
ON_PUBLISH_ACTION = "catalog/on_publish"
MAX_BODY_BYTES = 256 * 1024
SIGNATURE_TTL_S = 30
_UUID_RE = re.compile(r"^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$")
_URI_RE = re.compile(r"^https?://[^\s/?#]+[^\s]*$")


class WireError(ProtocolError):
    """A message this side cannot take: names the field and what was expected.

    ``error_code`` is the Beckn 2.0 error code sent back in the NACK's ``error.errorCode``.
    """

    code = "message-invalid"

    def __init__(self, field: str, message: str, *, error_code: str = "BAD_REQUEST", http_status: int = 400):
        super().__init__(f"{field}: {message}", field=field)
        self.field = field
        self.error_code = error_code
        self.http_status = http_status


def encode(doc: Any) -> bytes:
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def decode(body: bytes) -> dict:
    """Strict JSON (no duplicate keys, no NaN), an object with ``context`` and ``message``."""
    try:
        doc = strict_json(body, reason="body-malformed", what="body is not JSON")
    except SignatureError as exc:
        raise WireError("body", str(exc)) from None
    if not isinstance(doc, dict) or not isinstance(doc.get("context"), dict) or not isinstance(doc.get("message"),
                                                                                                dict):
        raise WireError("body", "must be an object with context and message objects")
    return doc


def decode_object(body: bytes) -> dict:
    """Strict JSON that must be an object (an Ack)."""
    try:
        doc = strict_json(body, reason="body-malformed", what="body is not JSON")
    except SignatureError as exc:
        raise WireError("body", str(exc)) from None
    if not isinstance(doc, dict):
        raise WireError("body", "must be a JSON object")
    return doc


def message_id_in(doc: dict) -> str:
    """``context.messageId`` of a decoded message when it can be named in a counter-signature."""
    value = doc["context"].get("messageId")
    return value if isinstance(value, str) and "\n" not in value and len(value) <= 256 else ""


def message_id_of(body: bytes) -> str:
    """``context.messageId`` of a body that may not even be JSON: what a NACK's
    counter-signature names ("" when there is none to name)."""
    try:
        ctx = json.loads(body).get("context")
        value = ctx.get("messageId")
    except (ValueError, RecursionError, AttributeError):
        return ""
    return value if isinstance(value, str) and "\n" not in value and len(value) <= 256 else ""


def request_digest(body: bytes) -> dict:
    """``context.requestDigest`` of a callback answering the request ``body``."""
    return {"digest": f"BLAKE-512={body_digest(body)}"}


def context(*, action: str, message_id: str, transaction_id: str, now_s: float, network_id: str | None = None,
            ttl_s: int = SIGNATURE_TTL_S, **ids: str | None) -> dict:
    """A 2.0 context; ``ids`` are ``bapId``, ``bapUri``, ``bppId``, ``bppUri``, ``domain``
    (left out when ``None``)."""
    ctx: dict[str, Any] = {"action": action, "version": VERSION}
    ctx.update({k: v for k, v in ids.items() if v is not None})
    ctx.update({"transactionId": transaction_id, "messageId": message_id, "timestamp": format_time(now_s),
                "ttl": f"PT{int(ttl_s)}S"})
    if network_id:
        ctx["networkId"] = network_id
    return ctx


def callback_context(request_ctx: dict, request_body: bytes, *, action: str, now_s: float, **ids: str | None) -> dict:
    """The context of the callback answering a request: its ids, its message id, and the
    digest that binds the two."""
    ctx = {k: v for k, v in request_ctx.items() if k not in ("requestDigest", "timestamp", "ttl", "schemaContext")}
    ctx.update({k: v for k, v in ids.items() if v is not None})
    ctx.update({"action": action, "timestamp": format_time(now_s), "ttl": f"PT{SIGNATURE_TTL_S}S",
                "requestDigest": request_digest(request_body)})
    return ctx


def signed_headers(body: bytes, signer, now_s: float) -> dict:
    """``Authorization`` (BECKN-006) and content type for a POST of ``body``."""
    now = int(now_s)
    key = signer_at(signer)(now)
    return {"Authorization": sign_body(body, key, created_s=now, expires_s=now + SIGNATURE_TTL_S),
            "Content-Type": "application/json"}


def ack(*, request_body: bytes, message_id: str, signer, now_s: float, error: tuple[str, str] | None = None,
        nack: bool = False) -> dict:
    """A counter-signed Ack (or NACK, with ``error`` as ``(code, message)``)."""
    doc: dict[str, Any] = {"status": "NACK" if nack else "ACK"}
    if error is not None:
        doc["error"] = {"errorCode": error[0], "errorMessage": error[1][:500]}
    now = int(now_s)
    return counter_sign(doc, request_body=request_body, message_id=message_id, signer=signer_at(signer)(now),
                        created_s=now, expires_s=now + SIGNATURE_TTL_S)


def require_str(ctx: dict, key: str, *, pattern: re.Pattern | None = None, what: str = "") -> str:
    value = ctx.get(key)
    if not isinstance(value, str) or not value or (pattern is not None and not pattern.match(value)):
        raise WireError(f"context.{key}", f"missing or not {what or 'a non-empty string'} (got {value!r})")
    return value


def check_context(ctx: dict, *, actions: tuple[str, ...], network_id: str | None,
                  clock: Callable[[], float] | None = None) -> str:
    """The checks every request here passes: action, version, network, a UUID message id.
    Returns the message id."""
    if ctx.get("action") not in actions:
        raise WireError("context.action", f"{ctx.get('action')!r} does not belong here (allowed: {', '.join(actions)})")
    if ctx.get("version") != VERSION:
        raise WireError("context.version", f"{ctx.get('version')!r} is not supported (allowed: {VERSION})",
                        error_code="VERSION_NOT_SUPPORTED")
    if network_id is not None and ctx.get("networkId") != network_id:
        raise WireError("context.networkId", f"{ctx.get('networkId')!r} is not this network ({network_id})",
                        error_code="NETWORK_MISMATCH")
    require_str(ctx, "transactionId", pattern=_UUID_RE, what="a UUID")
    return require_str(ctx, "messageId", pattern=_UUID_RE, what="a UUID")


def check_uri(ctx: dict, key: str) -> str:
    return require_str(ctx, key, pattern=_URI_RE, what="an http(s) URL")
