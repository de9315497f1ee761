"""Calls from the charger to a partner's OCPI API (versions, credentials, pushes, authorize).

Every failure becomes a ``PartnerError`` with the OCPI status code that names it (3001 cannot use
their API, 3002 no common version, 3003 endpoints missing), so the registration handlers and
the CLI report the same reason.
"""
from __future__ import annotations

import asyncio
import json

import aiohttp

from protocols.ocpi.errors import NO_MATCHING_ENDPOINTS, UNABLE_TO_USE_CLIENT_API, UNSUPPORTED_VERSION, PartnerError
from protocols.ocpi.wire import VERSION, auth_header
from protocols.streams import read_body

MAX_RESPONSE_BYTES = 1 << 20


class OcpiClient:
    """One partner call at a time per coroutine; ``session`` is an aiohttp ClientSession owned
    by the caller (injected so tests and the CLI choose its connector and lifetime)."""

    def __init__(self, session: aiohttp.ClientSession, *, timeout_s: float = 10.0, new_id=None,
                 from_party: tuple[str, str] | None = None):
        self.session = session
        self.timeout_s = timeout_s
        self._new_id = new_id
        self._from = from_party

    def _headers(self, token: str | None, to_party: tuple[str, str] | None = None) -> dict:
        headers = {"Content-Type": "application/json"}
        if token is not None:
            headers["Authorization"] = auth_header(token)
        if self._new_id is not None:
            rid = self._new_id()
            headers["X-Request-ID"] = rid
            headers["X-Correlation-ID"] = rid
        if self._from is not None and to_party is not None:
            headers["OCPI-from-country-code"], headers["OCPI-from-party-id"] = self._from
            headers["OCPI-to-country-code"], headers["OCPI-to-party-id"] = to_party
        return headers

    async def call(self, method: str, url: str, *, token: str | None, body=None,
                   to_party: tuple[str, str] | None = None, params: dict | None = None) -> tuple[int, dict]:
        """Send one request; returns (HTTP status, parsed envelope). Raises PartnerError 3001 when
        the partner cannot be reached or does not answer with an OCPI envelope."""
        data = None if body is None else json.dumps(body, separators=(",", ":")).encode("utf-8")
        try:
            async with self.session.request(method, url, data=data, params=params,
                                            headers=self._headers(token, to_party),
                                            timeout=aiohttp.ClientTimeout(total=self.timeout_s)) as resp:
                raw = await read_body(resp.content, MAX_RESPONSE_BYTES)
                status = resp.status
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError) as exc:
            raise PartnerError(UNABLE_TO_USE_CLIENT_API, f"{method} {url} failed: {exc or type(exc).__name__}",
                               url=url) from None
        if len(raw) > MAX_RESPONSE_BYTES:
            raise PartnerError(UNABLE_TO_USE_CLIENT_API, f"{method} {url}: response larger than {MAX_RESPONSE_BYTES} bytes")
        try:
            parsed = json.loads(raw) if raw else {}
        except (ValueError, RecursionError):  # too deeply nested for the parser is not JSON either
            raise PartnerError(UNABLE_TO_USE_CLIENT_API, f"{method} {url}: HTTP {status}, body is not JSON",
                               url=url, partner_status=status) from None
        if not isinstance(parsed, dict):
            raise PartnerError(UNABLE_TO_USE_CLIENT_API, f"{method} {url}: HTTP {status}, body is not an OCPI envelope")
        return status, parsed

    async def get_ok(self, url: str, *, token: str) -> object:
        status, body = await self.call("GET", url, token=token)
        if status != 200 or body.get("status_code") != 1000:
            raise PartnerError(UNABLE_TO_USE_CLIENT_API,
                               f"GET {url}: HTTP {status}, status_code {body.get('status_code')!r}: "
                               f"{body.get('status_message', '')}", url=url)
        return body.get("data")

    async def discover(self, versions_url: str, *, token: str) -> tuple[str, list]:
        """(version details URL, endpoints) of the partner's 2.2.1 API."""
        versions = await self.get_ok(versions_url, token=token)
        if isinstance(versions, dict) and "endpoints" in versions:
            # Some partners hand out the version details URL directly.
            details, details_url = versions, versions_url
        else:
            if not isinstance(versions, list):
                raise PartnerError(UNABLE_TO_USE_CLIENT_API, f"GET {versions_url}: data is not a list of versions")
            match = [v for v in versions if isinstance(v, dict) and v.get("version") == VERSION]
            if not match or not isinstance(match[0].get("url"), str):
                offered = ", ".join(str(v.get("version")) for v in versions if isinstance(v, dict)) or "none"
                raise PartnerError(UNSUPPORTED_VERSION, f"partner offers OCPI versions {offered}; we need {VERSION}")
            details_url = match[0]["url"]
            details = await self.get_ok(details_url, token=token)
        if not isinstance(details, dict) or not isinstance(details.get("endpoints"), list):
            raise PartnerError(UNABLE_TO_USE_CLIENT_API, f"GET {details_url}: data has no endpoints list")
        endpoints = [e for e in details["endpoints"]
                     if isinstance(e, dict) and isinstance(e.get("identifier"), str) and isinstance(e.get("url"), str)]
        if not any(e["identifier"] == "credentials" for e in endpoints):
            raise PartnerError(NO_MATCHING_ENDPOINTS, "partner's 2.2.1 endpoints lack the credentials module")
        return details_url, endpoints
