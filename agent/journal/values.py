"""Argument checks and column conversions shared by the journal and the fault latch file.

Everything stored is checked before a transaction begins, so a bad value is refused with its
name instead of being found in the file after a power cut.
"""
from __future__ import annotations

import math

from agent.journal.errors import InvalidValue


def is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def require_number(name, value, *, minimum=None):
    if not is_number(value):
        raise InvalidValue(f"{name} must be a finite number, got {value!r}", field=name, value=value)
    if minimum is not None and value < minimum:
        raise InvalidValue(f"{name} must be >= {minimum}, got {value!r}", field=name, value=value)
    return value


def require_text(name, value, *, optional=False):
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value:
        raise InvalidValue(f"{name} must be a non-empty string, got {value!r}", field=name, value=value)
    return value


def as_text(value) -> str:
    """A stored text column as text, whatever a damaged row holds (SQLite columns are not typed)."""
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "replace")
    return repr(value)


def payload_bytes(name, value) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise InvalidValue(f"{name} must be bytes or str, got {type(value).__name__}", field=name)
