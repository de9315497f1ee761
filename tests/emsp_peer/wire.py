"""The small pieces of OCPI's transport both halves of the peer share: tokens, envelopes, times.

Written from the OCPI 2.2.1 text (transport_and_format, types, credentials), not from the
charger's code, so that a misreading on either side shows up as a failing exchange.
"""
from __future__ import annotations

import base64
import binascii
import time
from datetime import datetime, timezone

STATUS_OK = 1000
STATUS_CLIENT_ERROR = 2000
STATUS_INVALID_PARAMS = 2001
STATUS_NOT_ENOUGH_INFO = 2002
STATUS_UNKNOWN_LOCATION = 2003
STATUS_UNKNOWN_TOKEN = 2004
STATUS_SERVER_ERROR = 3000
STATUS_UNABLE_TO_USE_CLIENT_API = 3001
STATUS_UNSUPPORTED_VERSION = 3002
STATUS_NO_MATCHING_ENDPOINTS = 3003
STATUS_CODES = (1000, 2000, 2001, 2002, 2003, 2004, 3000, 3001, 3002, 3003, 4000, 4001, 4002, 4003)


def authorization_header(token: str, *, encode: bool = True) -> str:
    """2.2.1 sends the token Base64-encoded (UTF-8 octets, RFC 4648); 2.1.1 peers send it plain."""
    if encode:
        return "Token " + base64.b64encode(token.encode("utf-8")).decode("ascii")
    return "Token " + token


def token_candidates(header: str | None) -> list[tuple[str, str]]:
    """The tokens an Authorization header may carry, each with how it was written ("base64"/"plain").

    A receiver cannot tell a plain token from an encoded one by looking (a plain token may be valid
    Base64), so both readings are offered and the caller matches them against the tokens it issued.
    """
    if not header or not header.startswith("Token "):
        return []
    raw = header[len("Token "):].strip()
    if not raw:
        return []
    found = []
    try:
        decoded = base64.b64decode(raw, validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError, ValueError):
        decoded = None
    if decoded:
        found.append((decoded, "base64"))
    found.append((raw, "plain"))
    return found


def format_dt(epoch_s: float) -> str:
    """OCPI DateTime, UTC with Z, whole seconds (string(25) allows fractions; none are needed)."""
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(int(epoch_s)))


def parse_dt(value: str) -> float:
    """Epoch seconds of an OCPI DateTime (UTC, the Z optional)."""
    text = value[:-1] if value.endswith("Z") else value
    if "." in text:
        text, fraction = text.split(".", 1)
        extra = float("0." + fraction)
    else:
        extra = 0.0
    moment = datetime.strptime(text, "%Y-%m-%dT%H:%M:%S").replace(tzinfo=timezone.utc)
    return moment.timestamp() + extra


def envelope(data, *, status_code: int = STATUS_OK, message: str | None = None, now_s: float) -> dict:
    body = {"status_code": status_code, "timestamp": format_dt(now_s)}
    if message is not None:
        body["status_message"] = message
    if data is not None:
        body["data"] = data
    return body


def next_link(header: str | None) -> str | None:
    """The URL of a ``Link: <url>; rel="next"`` header (RFC 8288), or None on the last page."""
    if not header:
        return None
    for part in header.split(","):
        section = part.strip()
        if not section.startswith("<") or ">" not in section:
            continue
        url, _, params = section[1:].partition(">")
        for param in params.split(";"):
            name, _, value = param.strip().partition("=")
            if name.strip().lower() == "rel" and "next" in value.strip().strip('"').split():
                return url
    return None
