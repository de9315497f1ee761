"""Strict decoders shared by the signing modules.

Lenient base64, time or JSON parsing is how two encodings of "the same" value end up both
accepted; every decoder here accepts exactly one spelling and says what it expected.
"""
from __future__ import annotations

import base64
import binascii
import datetime as _dt
import json
import re
from typing import Any, Callable

from protocols.signing.errors import SignatureError

_B64_RE = re.compile(r"^[A-Za-z0-9+/]*={0,2}$")


def b64encode(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def b64decode(text: object, *, field: str, length: int | None = None) -> bytes:
    """Decode standard padded base64, refusing stray characters and wrong lengths."""
    if not isinstance(text, str) or not _B64_RE.match(text) or len(text) % 4:
        raise SignatureError("bad-base64", f"{field}: not standard padded base64")
    try:
        raw = base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        raise SignatureError("bad-base64", f"{field}: not standard padded base64") from None
    if base64.b64encode(raw).decode("ascii") != text:
        # Unused trailing bits set: a second spelling of the same bytes.
        raise SignatureError("bad-base64", f"{field}: non-canonical base64 (padding bits set)")
    if length is not None and len(raw) != length:
        raise SignatureError("bad-length", f"{field}: decodes to {len(raw)} bytes, expected {length}")
    return raw


def format_time(ts_s: float) -> str:
    """UTC ISO 8601 with a ``Z``: the one spelling written to every file and record."""
    return _dt.datetime.fromtimestamp(int(ts_s), _dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def parse_time(text: object, *, field: str) -> int:
    """ISO 8601 date-time with an explicit zone (``Z`` or ``+05:30``) to Unix seconds."""
    if not isinstance(text, str):
        raise SignatureError("bad-time", f"{field}: must be an ISO 8601 date-time string, got {text!r}")
    try:
        value = _dt.datetime.fromisoformat(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    except ValueError:
        raise SignatureError("bad-time", f"{field}: not an ISO 8601 date-time: {text!r}") from None
    if value.tzinfo is None:
        raise SignatureError("bad-time", f"{field}: needs a time zone (Z or +05:30): {text!r}")
    return int(value.timestamp())


class _Refused(ValueError):
    """A strict-JSON refusal; ``strict_json`` gives it the caller's reason."""


def _unique_keys(pairs: list) -> dict:
    obj = dict(pairs)  # at C speed; only a document with a duplicate pays for finding it
    if len(obj) != len(pairs):
        seen = set()
        for key, _ in pairs:
            if key in seen:
                raise _Refused(f"duplicate key {key!r}")
            seen.add(key)
    return obj


def _no_constant(name: str):
    raise _Refused(f"JSON constant {name} is not allowed")


def strict_json(text: str | bytes, *, reason: str, what: str,
                parse_float: Callable[[str], Any] | None = None) -> Any:
    """``json.loads`` for signed material: duplicate keys and NaN/Infinity would give one
    document two readings, and nesting too deep for the parser must be a refusal rather than
    a crash of whoever is reading. Every failure is ``SignatureError(reason)``; ``what`` starts
    the message of a document that is not JSON at all."""
    try:
        return json.loads(text, object_pairs_hook=_unique_keys, parse_constant=_no_constant,
                          parse_float=parse_float)
    except _Refused as exc:
        raise SignatureError(reason, str(exc)) from None
    except (ValueError, RecursionError) as exc:
        raise SignatureError(reason, f"{what}: {exc}") from None
