"""Values as they travel (timestamps, durations, money, energy, positions) and as the
charger holds them (epoch seconds, whole seconds, integer paise, integer Wh, degrees).

Why text outside and integers inside: Beckn carries decimals as text, and money must never be
rounded twice; each reader refuses what it cannot convert exactly and names the JSON path.
"""
from __future__ import annotations

import datetime as _dt
import math
import re
from typing import Any

from agent.core.tariff import TariffError, format_fixed, parse_fixed
from protocols.beckn.errors import invalid

_DECIMAL_RE = re.compile(r"^[+-]?([0-9]*[.])?[0-9]+$")
_GPS_RE = re.compile(
    r"^[-+]?([1-8]?\d(\.\d+)?|90(\.0+)?),\s*[-+]?(180(\.0+)?|((1[0-7]\d)|([1-9]?\d))(\.\d+)?)$"
)
_DURATION_RE = re.compile(r"^P(?:(\d{1,4})D)?(?:T(?:(\d{1,6})H)?(?:(\d{1,8})M)?(?:(\d{1,9})S)?)?$")


def format_timestamp(epoch_s: float) -> str:
    """RFC 3339 UTC with milliseconds, the spelling Beckn examples use."""
    t = _dt.datetime.fromtimestamp(float(epoch_s), _dt.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def parse_timestamp(text: Any, path: str) -> float:
    if not isinstance(text, str) or len(text) > 40:
        raise invalid(path, f"must be an RFC 3339 date-time string, got {shown(text)}")
    try:
        value = _dt.datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    except ValueError:
        raise invalid(path, f"not an RFC 3339 date-time: {shown(text)}") from None
    if value.tzinfo is None:
        raise invalid(path, f"needs a time zone (Z or +05:30): {shown(text)}")
    return value.timestamp()


def duration_text(seconds: int) -> str:
    return f"PT{int(seconds)}S"


def parse_duration(text: Any, path: str) -> int:
    """ISO 8601 duration (days, hours, minutes, seconds) to whole seconds."""
    m = _DURATION_RE.match(text) if isinstance(text, str) else None
    if not m or text in ("P", "PT") or text.endswith("T"):
        raise invalid(path, f"must be an ISO 8601 duration such as PT30S, got {shown(text)}")
    d, h, mi, s = (int(g) if g else 0 for g in m.groups())
    return ((d * 24 + h) * 60 + mi) * 60 + s


def money_text(paise: int) -> str:
    return format_fixed(int(paise), 2)


def parse_money(value: Any, path: str, *, allow_negative: bool = False) -> int:
    """Decimal text in the currency unit to integer paise; more than 2 decimals is refused."""
    if not isinstance(value, str) or not _DECIMAL_RE.match(value) or len(value) > 20:
        raise invalid(path, f"must be decimal text such as \"40.00\", got {shown(value)}")
    try:
        return parse_fixed(value, 2, path, allow_negative=allow_negative)
    except TariffError as exc:
        raise invalid(path, str(exc)) from None


def energy_text(wh: int) -> str:
    """kWh with up to three decimals, no trailing zeros ("4", "4.5", "0.125")."""
    text = format_fixed(int(wh), 3)
    return text.rstrip("0").rstrip(".") if "." in text else text


def parse_scaled(value: Any, path: str, places: int) -> int:
    """Decimal text to an integer with ``places`` decimals (kWh to Wh: 3), exactly or refused."""
    if not isinstance(value, str) or not _DECIMAL_RE.match(value) or len(value) > 20:
        raise invalid(path, f"must be decimal text, got {shown(value)}")
    try:
        return parse_fixed(value, places, path)
    except TariffError as exc:
        raise invalid(path, str(exc)) from None


def shown(value: Any) -> str:
    """A bounded ``repr`` for refusals: an attacker's megabyte must not travel back in a NACK."""
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def parse_gps(value: Any, path: str) -> tuple[float, float]:
    if not isinstance(value, str) or len(value) > 64 or not _GPS_RE.match(value):
        raise invalid(path, f"must be 'lat,lon' in degrees, got {shown(value)}")
    lat, lon = value.split(",")
    return float(lat), float(lon.strip())


def distance_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle distance (haversine, mean Earth radius)."""
    lat1, lon1, lat2, lon2 = map(math.radians, (a[0], a[1], b[0], b[1]))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * 6_371_008.8 * math.asin(min(1.0, math.sqrt(h)))
