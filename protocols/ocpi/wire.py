"""OCPI transport details shared by the server and the client side.

Why one place: the envelope, the time format, the ``Authorization: Token`` variants and the
pagination headers are where OCPI peers most often disagree; keeping them in one module keeps
every endpoint and every outgoing call consistent.
"""
from __future__ import annotations

import base64
import binascii
import hashlib
import re
from datetime import datetime, timezone

from protocols.ocpi.errors import INVALID_PARAMETERS, OcpiError

VERSION = "2.2.1"
MAX_LIMIT = 100
DEFAULT_LIMIT = 50

_RFC3339 = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?(Z|[+-]\d{2}:\d{2})?$")


def format_time(epoch_s: float) -> str:
    """UTC RFC 3339 with a ``Z``; milliseconds only when the instant has them (string(25))."""
    whole = int(epoch_s // 1)
    ms = int(round((epoch_s - whole) * 1000))
    if ms == 1000:
        whole, ms = whole + 1, 0
    text = datetime.fromtimestamp(whole, timezone.utc).strftime("%Y-%m-%dT%H:%M:%S")
    return f"{text}.{ms:03d}Z" if ms else text + "Z"


def parse_time(text, field: str) -> float:
    """Epoch seconds from an OCPI timestamp; no zone designator means UTC (as the spec says)."""
    if not isinstance(text, str):
        raise OcpiError(INVALID_PARAMETERS, f"{field} must be an RFC 3339 date-time string, got {text!r}")
    m = _RFC3339.match(text.strip())
    if not m:
        raise OcpiError(INVALID_PARAMETERS, f"{field} is not an RFC 3339 date-time: {text!r}")
    year, month, day, hour, minute, second = (int(g) for g in m.groups()[:6])
    try:
        base = datetime(year, month, day, hour, minute, second, tzinfo=timezone.utc).timestamp()
    except ValueError:
        raise OcpiError(INVALID_PARAMETERS, f"{field} is not a valid date-time: {text!r}") from None
    frac = float(m.group(7)) if m.group(7) else 0.0
    zone = m.group(8)
    offset_s = 0
    if zone and zone != "Z":
        sign = 1 if zone[0] == "+" else -1
        offset_s = sign * (int(zone[1:3]) * 3600 + int(zone[4:6]) * 60)
    return base + frac - offset_s


def envelope(data=None, *, status_code: int = 1000, message: str | None = None, now_s: float) -> dict:
    body = {"status_code": status_code, "timestamp": format_time(now_s)}
    if data is not None:
        body["data"] = data
    if message is not None:
        body["status_message"] = message
    return body


def token_hash(token: str) -> str:
    """Tokens we only check are kept as SHA-256: they are long random strings, so a fast hash
    is enough and a stolen store does not let anyone call us."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def token_candidates(header: str | None) -> list[str]:
    """The tokens an ``Authorization`` header may carry: 2.2.1 sends ``Token base64(token)``,
    2.1.1 and many 2.2 peers send the token plain, so both readings are tried."""
    if not header:
        return []
    parts = header.strip().split(None, 1)
    if len(parts) != 2 or parts[0].lower() != "token" or not parts[1].strip():
        return []
    raw = parts[1].strip()
    out = []
    try:
        decoded = base64.b64decode(raw, validate=True).decode("utf-8")
        if decoded and decoded.isprintable():
            out.append(decoded)
    except (binascii.Error, UnicodeDecodeError, ValueError):
        pass
    out.append(raw)
    return out


def auth_header(token: str) -> str:
    return "Token " + base64.b64encode(token.encode("utf-8")).decode("ascii")


def page_params(query) -> tuple[int, int, float | None, float | None]:
    """``offset``, ``limit``, ``date_from``, ``date_to`` from a query, checked."""
    def integer(name, default):
        text = query.get(name)
        if text is None or text == "":
            return default
        if not text.isdigit():
            raise OcpiError(INVALID_PARAMETERS, f"query parameter {name} must be a whole number >= 0, got {text!r}")
        return int(text)

    offset = integer("offset", 0)
    limit = min(integer("limit", DEFAULT_LIMIT), MAX_LIMIT)
    date_from = query.get("date_from")
    date_to = query.get("date_to")
    return (offset, limit,
            parse_time(date_from, "date_from") if date_from else None,
            parse_time(date_to, "date_to") if date_to else None)


def require(obj, name: str, kind, *, where: str, max_len: int | None = None, optional: bool = False):
    """A field of a request body, type-checked, with an error naming the field."""
    if not isinstance(obj, dict):
        raise OcpiError(INVALID_PARAMETERS, f"{where} must be a JSON object")
    value = obj.get(name)
    if value is None:
        if optional:
            return None
        raise OcpiError(INVALID_PARAMETERS, f"{where}.{name} is required")
    if kind is str:
        ok = isinstance(value, str) and value != ""
    elif kind is bool:
        ok = isinstance(value, bool)
    elif kind is dict:
        ok = isinstance(value, dict)
    elif kind is list:
        ok = isinstance(value, list)
    else:
        ok = isinstance(value, kind) and not isinstance(value, bool)
    if not ok:
        kinds = kind if isinstance(kind, tuple) else (kind,)
        names = {"str": "string", "dict": "JSON object", "list": "JSON array", "bool": "boolean", "int": "integer"}
        wanted = " or ".join(names.get(k.__name__, k.__name__) for k in kinds)
        raise OcpiError(INVALID_PARAMETERS, f"{where}.{name} must be a {wanted}, got {value!r}")
    if max_len is not None and len(value) > max_len:
        raise OcpiError(INVALID_PARAMETERS, f"{where}.{name} is longer than {max_len} characters")
    return value


def require_enum(obj, name: str, allowed, *, where: str, optional: bool = False):
    value = require(obj, name, str, where=where, optional=optional)
    if value is not None and value not in allowed:
        raise OcpiError(INVALID_PARAMETERS, f"{where}.{name} is {value!r}; allowed: {', '.join(allowed)}")
    return value
