"""The eMSP's outgoing half: every call it makes to the charger is checked against the specification.

Each reply is held to: JSON body with the OCPI envelope (integer ``status_code`` from the list,
``timestamp`` in OCPI DateTime form), X-Request-ID and X-Correlation-ID echoed unchanged, the body
valid against the response schema the OpenAPI file declares for that operation and HTTP status,
and no 5xx ever. Any breach raises ``ConformanceError`` naming the call and what was wrong.
"""
from __future__ import annotations

import json
import uuid
from typing import Callable
from urllib.parse import parse_qs, urlsplit

import aiohttp

from tests.emsp_peer.schemas import ConformanceError, OcpiSpec, ocpi_datetime_ok
from tests.emsp_peer.wire import STATUS_CODES, authorization_header, next_link

MAX_PAGES = 500


class Reply:
    """One checked reply: the HTTP status, headers, whole envelope and its ``data``."""

    __slots__ = ("http_status", "headers", "body", "request_id", "correlation_id", "what")

    def __init__(self, *, http_status, headers, body, request_id, correlation_id, what):
        self.http_status = http_status
        self.headers = headers
        self.body = body
        self.request_id = request_id
        self.correlation_id = correlation_id
        self.what = what

    @property
    def status_code(self):
        return self.body.get("status_code") if isinstance(self.body, dict) else None

    @property
    def data(self):
        return self.body.get("data") if isinstance(self.body, dict) else None

    def __repr__(self) -> str:
        return f"Reply({self.what}: HTTP {self.http_status}, OCPI {self.status_code})"


class OcpiClient:
    """Calls the charger with one credentials token; ids are injected so runs are reproducible."""

    def __init__(self, *, http: aiohttp.ClientSession, spec: OcpiSpec, token: str | None = None,
                 encode_token: bool = True, new_id: Callable[[], str] | None = None,
                 routing: dict | None = None):
        self.http = http
        self.spec = spec
        self.token = token
        self.encode_token = encode_token
        self.new_id = new_id or (lambda: str(uuid.uuid4()))
        self.routing = dict(routing or {})
        self.calls = 0

    async def call(self, method: str, url: str, *, interface: str | None = None, path: str | None = None,
                   body=None, raw_body: bytes | None = None, params: dict | None = None,
                   token: str | None = ..., encode_token: bool | None = None, headers: dict | None = None,
                   expect_http: tuple | int | None = None, check_schema: bool = True) -> Reply:
        """One request. ``interface``/``path`` name the OpenAPI operation whose response schema applies
        (e.g. "locations/sender-interface", "/locations/{location_id}"); ``token=None`` sends no
        Authorization header; ``raw_body`` sends bytes as they are (for malformed-input tests)."""
        what = f"{method.upper()} {urlsplit(url).path}"
        request_id, correlation_id = self.new_id(), self.new_id()
        sent = {"X-Request-ID": request_id, "X-Correlation-ID": correlation_id}
        sent.update(self.routing)
        use_token = self.token if token is ... else token
        if use_token is not None:
            sent["Authorization"] = authorization_header(
                use_token, encode=self.encode_token if encode_token is None else encode_token)
        data = None
        if raw_body is not None:
            data = raw_body
            sent["Content-Type"] = "application/json"
        elif body is not None:
            data = json.dumps(body).encode("utf-8")
            sent["Content-Type"] = "application/json"
        if headers:
            sent.update(headers)
        self.calls += 1
        async with self.http.request(method.upper(), url, data=data, params=params, headers=sent) as resp:
            raw = await resp.read()
            status = resp.status
            got = resp.headers
        if status >= 500:
            raise ConformanceError(f"{what}: server error HTTP {status}: {raw[:300]!r}")
        if expect_http is not None:
            allowed = (expect_http,) if isinstance(expect_http, int) else tuple(expect_http)
            if status not in allowed:
                raise ConformanceError(f"{what}: HTTP {status}, expected {allowed}: {raw[:300]!r}")
        if got.get("X-Request-ID") != request_id:
            raise ConformanceError(f"{what}: X-Request-ID not echoed (sent {request_id}, got "
                                   f"{got.get('X-Request-ID')!r})")
        if got.get("X-Correlation-ID") != correlation_id:
            raise ConformanceError(f"{what}: X-Correlation-ID not echoed (sent {correlation_id}, got "
                                   f"{got.get('X-Correlation-ID')!r})")
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            raise ConformanceError(f"{what}: HTTP {status} body is not JSON: {raw[:200]!r}") from None
        reply = Reply(http_status=status, headers=got, body=parsed, request_id=request_id,
                      correlation_id=correlation_id, what=what)
        self._check_envelope(reply)
        if check_schema:
            ref = None
            if interface is not None and path is not None:
                ref = self.spec.response_ref(interface, path, method, status)
            # A status the operation does not declare (or no operation: an unknown command) is
            # still held to the envelope every OCPI reply shares.
            self.spec.check(ref or self.spec.schema_ref("components", "OCPIResponse"), parsed,
                            f"{what} reply (HTTP {status})")
        return reply

    @staticmethod
    def _check_envelope(reply: Reply) -> None:
        body = reply.body
        if not isinstance(body, dict):
            raise ConformanceError(f"{reply.what}: reply is not an OCPI envelope object: {body!r}")
        code = body.get("status_code")
        if not isinstance(code, int) or isinstance(code, bool) or code not in STATUS_CODES:
            raise ConformanceError(f"{reply.what}: status_code {code!r} is not an OCPI status code")
        stamp = body.get("timestamp")
        if not isinstance(stamp, str) or not ocpi_datetime_ok(stamp):
            raise ConformanceError(f"{reply.what}: envelope timestamp {stamp!r} is missing or not an OCPI DateTime")
        if "status_message" in body and not isinstance(body["status_message"], str):
            raise ConformanceError(f"{reply.what}: status_message is not a string")
        if code == 1000 and reply.http_status not in (200, 201):
            raise ConformanceError(f"{reply.what}: status_code 1000 with HTTP {reply.http_status}")
        if reply.http_status == 401 and code == 1000:
            raise ConformanceError(f"{reply.what}: HTTP 401 carrying success status 1000")

    async def pull(self, url: str, *, interface: str, path: str, params: dict | None = None,
                   id_of: Callable[[dict], object] | None = None) -> list:
        """Every object of a paginated list, following ``Link: rel="next"`` to the end.

        Checks on every page: HTTP 200 and status 1000, X-Total-Count and X-Limit present as
        integers, no page longer than X-Limit, the next link keeps the original filters, the total
        stays the same and matches what was collected, and no object appears twice.
        """
        collected: list = []
        seen: set = set()
        total = None
        page_url, page_params = url, dict(params or {})
        for _ in range(MAX_PAGES):
            reply = await self.call("GET", page_url, interface=interface, path=path, params=page_params,
                                    expect_http=200)
            if reply.status_code != 1000:
                raise ConformanceError(f"{reply.what}: list request failed with {reply.status_code}: "
                                       f"{reply.body.get('status_message')!r}")
            count = _int_header(reply, "X-Total-Count")
            limit = _int_header(reply, "X-Limit")
            items = reply.data
            if not isinstance(items, list):
                raise ConformanceError(f"{reply.what}: data is not a list")
            if len(items) > limit:
                raise ConformanceError(f"{reply.what}: page has {len(items)} objects, X-Limit is {limit}")
            if total is None:
                total = count
            elif count != total:
                raise ConformanceError(f"{reply.what}: X-Total-Count changed from {total} to {count} while paging")
            for item in items:
                key = id_of(item) if id_of else json.dumps(item, sort_keys=True)
                if key in seen:
                    raise ConformanceError(f"{reply.what}: object {key!r} returned twice while paging")
                seen.add(key)
                collected.append(item)
            link = next_link(reply.headers.get("Link"))
            if link is None:
                if len(collected) != total:
                    raise ConformanceError(f"{reply.what}: collected {len(collected)} objects, "
                                           f"X-Total-Count said {total}")
                return collected
            if not items:
                raise ConformanceError(f"{reply.what}: empty page that still links to a next page")
            query = parse_qs(urlsplit(link).query)
            for name, value in (params or {}).items():
                if name in ("offset", "limit"):
                    continue
                if query.get(name) != [str(value)]:
                    raise ConformanceError(f"{reply.what}: next link {link!r} drops filter {name}={value!r}")
            page_url, page_params = link, None
        raise ConformanceError(f"GET {url}: more than {MAX_PAGES} pages; the next links never end")


def _int_header(reply: Reply, name: str) -> int:
    value = reply.headers.get(name)
    try:
        return int(value)
    except (TypeError, ValueError):
        raise ConformanceError(f"{reply.what}: header {name} missing or not an integer ({value!r})") from None
