"""What the bridge reads of a message: the context it routes by, nothing of the deal.

Beckn 2.0 spells the context in camelCase (``bapId``, ``bppId``, ``transactionId``,
``messageId``, ``networkId``; ``beckn.yaml`` Context); Beckn 1.1 in snake_case. Both are read
so a charger still on the 1.1 profile can be fronted; a context mixing the two is refused,
because two readers could then disagree on which charger is meant.

The bridge never re-serialises a body: it reads a copy and forwards the original bytes, framed
by the charger's own ``protocols.signing.beckn.frame_message``.
"""
from __future__ import annotations

import json
import re
from dataclasses import dataclass
from urllib.parse import urlsplit

from protocols.bridge.errors import BridgeError
from protocols.mqtt.topics import TopicError, check_subscriber_id
from protocols.signing.beckn import CERTIFICATE_HEADER, MAX_CERTIFICATE_HEADER_CHARS

V2_KEYS = {"bap_id": "bapId", "bap_uri": "bapUri", "bpp_id": "bppId", "bpp_uri": "bppUri",
           "transaction_id": "transactionId", "message_id": "messageId"}
V2_ACTIONS = ("discover", "select", "init", "confirm", "status", "track", "update", "cancel", "rate", "support")
V1_ACTIONS = ("search", "select", "init", "confirm", "status", "track", "update", "cancel", "rating", "support")
CALLBACK_PREFIX = "on_"
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@/+-]{0,127}$")
_TTL_RE = re.compile(r"^PT(?:(\d{1,6})H)?(?:(\d{1,6})M)?(?:(\d{1,8})S)?$")
DEFAULT_TTL_S = 30
MAX_TTL_S = 86400


class EnvelopeError(BridgeError):
    """A context the bridge cannot route by; ``path`` names the field."""

    code = "envelope-invalid"

    def __init__(self, path: str, problem: str):
        super().__init__(f"{path}: {problem}", path=path)
        self.path = path


@dataclass(frozen=True)
class Envelope:
    action: str
    version: str  # "2" (camelCase) or "1" (snake_case)
    bap_id: str | None
    bap_uri: str | None
    bpp_id: str | None
    bpp_uri: str | None
    transaction_id: str
    message_id: str
    network_id: str | None
    ttl_s: int

    def key(self, name: str) -> str:
        """The field's path as this message spells it (for refusals)."""
        return "context." + (V2_KEYS.get(name, name) if self.version == "2" else name)


def _ttl_s(value) -> int:
    if value is None:
        return DEFAULT_TTL_S
    match = _TTL_RE.match(value) if isinstance(value, str) else None
    if not match or not any(match.groups()):
        raise EnvelopeError("context.ttl", f"{value!r} is not an ISO 8601 duration like PT30S")
    hours, minutes, seconds = (int(g or 0) for g in match.groups())
    return max(1, min(MAX_TTL_S, hours * 3600 + minutes * 60 + seconds))


def _ident(ctx: dict, key: str, *, required: bool) -> str | None:
    value = ctx.get(key)
    if value is None and not required:
        return None
    if not isinstance(value, str) or not _ID_RE.match(value):
        raise EnvelopeError(f"context.{key}", "missing" if value is None else f"{value!r} is not an identifier")
    return value


def _uri(ctx: dict, key: str) -> str | None:
    value = ctx.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > 512:
        raise EnvelopeError(f"context.{key}", "must be a URI of at most 512 characters")
    return value


def is_http_uri(uri: str | None) -> bool:
    """Whether a callback can only be delivered over HTTP (by a bridge)."""
    if not uri:
        return False
    parts = urlsplit(uri)
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def read(body: bytes) -> Envelope:
    """The routing context of ``body``; ``EnvelopeError`` names what cannot be read."""
    try:
        doc = json.loads(body)
    except (ValueError, RecursionError):
        raise EnvelopeError("$", "body is not JSON") from None
    ctx = doc.get("context") if isinstance(doc, dict) else None
    if not isinstance(ctx, dict):
        raise EnvelopeError("context", "missing or not an object")
    camel = [k for k in V2_KEYS.values() if k in ctx]
    snake = [k for k in V2_KEYS if k in ctx]
    if camel and snake:
        raise EnvelopeError(f"context.{snake[0]}", f"mixes Beckn 1.1 and 2.0 keys ({snake[0]} beside {camel[0]})")
    version = "1" if snake else "2"
    if version == "1":
        ctx = {V2_KEYS[k]: v for k, v in ctx.items() if k in V2_KEYS} | {
            k: v for k, v in ctx.items() if k not in V2_KEYS}
    action = ctx.get("action")
    if not isinstance(action, str) or not action:
        raise EnvelopeError("context.action", "missing")
    env = Envelope(action=action, version=version, bap_id=_ident(ctx, "bapId", required=False),
                   bap_uri=_uri(ctx, "bapUri"), bpp_id=_ident(ctx, "bppId", required=False),
                   bpp_uri=_uri(ctx, "bppUri"), transaction_id=_ident(ctx, "transactionId", required=True),
                   message_id=_ident(ctx, "messageId", required=True),
                   network_id=ctx.get("networkId") if isinstance(ctx.get("networkId"), str) else None,
                   ttl_s=_ttl_s(ctx.get("ttl")))
    return env


def charger_id(env: Envelope) -> str:
    """The charger a directed request names, checked as one topic level: no wildcard, no
    separator, so the bytes can only ever reach that charger's own inbox."""
    if env.bpp_id is None:
        raise EnvelopeError(env.key("bpp_id"), f"required for {env.action}")
    try:
        return check_subscriber_id(env.bpp_id)
    except TopicError as exc:
        raise EnvelopeError(env.key("bpp_id"), str(exc)) from None


_B64_RE = re.compile(r"^[A-Za-z0-9+/]+={0,2}$")


def certificate_header(value: str | None) -> str | None:
    """The sender's certificate header (``CERTIFICATE_HEADER``: a 2.0 discover's body has no
    place for it), passed on as it came if it is plausible base64 of the size a charger reads."""
    if value is None:
        return None
    if len(value) > MAX_CERTIFICATE_HEADER_CHARS or not _B64_RE.match(value):
        raise EnvelopeError(CERTIFICATE_HEADER, f"must be base64 of at most {MAX_CERTIFICATE_HEADER_CHARS} characters")
    return value


def discover_circle(body: bytes) -> tuple[float, float, float]:
    """A Beckn 2.0 ``discover``'s area, ``message.intent.spatial`` ``S_DWITHIN`` a ``Point``
    (``beckn.yaml``, GeoJSON order: longitude, latitude) within ``distanceMeters``:
    ``(lat, lon, radius_km)``."""
    path = "message.intent.spatial"
    try:
        spatial = json.loads(body)["message"]["intent"]["spatial"]
        for i, clause in enumerate(spatial if isinstance(spatial, list) else []):
            path = f"message.intent.spatial[{i}]"
            geometry = clause.get("geometry") or {}
            if clause.get("op") != "S_DWITHIN" or geometry.get("type") != "Point":
                continue
            lon, lat = geometry["coordinates"]
            metres = clause["distanceMeters"]
            if all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in (lat, lon, metres)) \
                    and -90 <= lat <= 90 and -180 <= lon <= 180 and 0 < metres:
                return float(lat), float(lon), float(metres) / 1000
            raise ValueError("coordinates or distance out of range")
    except (ValueError, KeyError, TypeError, AttributeError):
        raise EnvelopeError(path, "a discover through a bridge names its area: S_DWITHIN a Point within "
                            "distanceMeters") from None
    raise EnvelopeError(path, "a discover through a bridge names its area: S_DWITHIN a Point within distanceMeters")
