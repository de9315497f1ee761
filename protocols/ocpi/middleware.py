"""The part of the CPO every request passes: the envelope, the request and correlation ids,
the token check with the OCPI-from/OCPI-to routing headers, body parsing and paging.

Why one middleware maps every refusal: a partner must get an OCPI status code with a reason
for anything that goes wrong, including aiohttp's own 404/405/413, never an HTML page or a
bare 500.
"""
from __future__ import annotations

import json
import logging
from urllib.parse import urlencode

from aiohttp import web

from protocols.ocpi import errors as E
from protocols.ocpi.errors import OcpiError, Unauthorized
from protocols.ocpi.store import Party
from protocols.ocpi.wire import envelope, page_params, parse_time, token_candidates, token_hash

log = logging.getLogger("urja.ocpi")


class Reply:
    __slots__ = ("data", "http_status", "headers")

    def __init__(self, data=None, *, http_status: int = 200, headers: dict | None = None):
        self.data = data
        self.http_status = http_status
        self.headers = headers or {}


class Caller:
    """Who is calling: a registered or registering party, or a holder of a token A."""

    __slots__ = ("party", "token_a_hash", "token")

    def __init__(self, party: Party | None, token_a_hash: str | None, token: str):
        self.party = party
        self.token_a_hash = token_a_hash
        self.token = token


class RequestHandling:
    """Middleware and request helpers of ``OcpiCpo`` (uses its store, clock, ids, mount path)."""

    @web.middleware
    async def _middleware(self, request, handler):
        request_id = request.headers.get("X-Request-ID") or self._new_id()
        correlation_id = request.headers.get("X-Correlation-ID") or self._new_id()
        try:
            reply = await handler(request)
            body = envelope(reply.data, now_s=self._clock())
            status, extra = reply.http_status, reply.headers
        except OcpiError as exc:
            body = envelope(None, status_code=exc.status_code, message=exc.message, now_s=self._clock())
            status, extra = exc.http_status, {}
        except web.HTTPException as exc:
            reason = {404: f"no OCPI endpoint at {request.path}",
                      405: f"method {request.method} not allowed on {request.path}",
                      413: f"request body larger than {self.max_body_bytes} bytes"}.get(exc.status, exc.reason)
            code = E.INVALID_PARAMETERS if exc.status == 413 else E.CLIENT_ERROR
            body = envelope(None, status_code=code, message=reason, now_s=self._clock())
            status, extra = exc.status, ({"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else {})
        except Exception:  # noqa: BLE001 - a partner gets 3000, the log gets the trace
            log.exception("OCPI %s %s failed", request.method, request.path)
            body = envelope(None, status_code=E.SERVER_ERROR, message="internal error", now_s=self._clock())
            status, extra = 500, {}
        headers = {"X-Request-ID": request_id, "X-Correlation-ID": correlation_id, **extra}
        return web.Response(status=status, headers=headers, content_type="application/json",
                            body=json.dumps(body, separators=(",", ":")).encode("utf-8"))

    def _auth(self, request, *, token_a: bool = False, pending: bool = False) -> Caller:
        header = request.headers.get("Authorization")
        candidates = token_candidates(header)
        if not candidates:
            raise Unauthorized("missing or malformed Authorization header; expected 'Token <base64 token>'")
        for token in candidates:
            hashed = token_hash(token)
            party = self.store.party_by_hash(hashed)
            if party is not None:
                if party.state != "registered" and not pending:
                    raise Unauthorized("registration with this token is not finished yet")
                caller = Caller(party, None, token)
                self._check_routing(request, caller)
                return caller
            if self.store.has_token_a(hashed):
                if not token_a:
                    raise Unauthorized("this token only allows registration (versions and credentials)")
                return Caller(None, hashed, token)
        raise Unauthorized("unknown token")

    def _check_routing(self, request, caller: Caller) -> None:
        h = request.headers
        from_cc, from_pid = h.get("OCPI-from-country-code"), h.get("OCPI-from-party-id")
        if (from_cc or from_pid) and caller.party.state == "registered" and \
                not caller.party.has_role(from_cc, from_pid):
            raise OcpiError(E.INVALID_PARAMETERS, f"OCPI-from {from_cc}*{from_pid} is not the party registered "
                                                  f"with this token")
        to_cc, to_pid = h.get("OCPI-to-country-code"), h.get("OCPI-to-party-id")
        if (to_cc or to_pid) and (to_cc, to_pid) != (self.country_code, self.party_id):
            raise OcpiError(E.INVALID_PARAMETERS, f"OCPI-to {to_cc}*{to_pid} is not this charger "
                                                  f"({self.country_code}*{self.party_id})")

    async def _body(self, request):
        raw = await request.read()
        if not raw:
            raise OcpiError(E.INVALID_PARAMETERS, "request body is empty; a JSON object is required")

        def no_constants(name):
            raise ValueError(f"JSON constant {name} is not allowed")

        try:
            data = json.loads(raw, parse_constant=no_constants)
        except (ValueError, RecursionError) as exc:
            raise OcpiError(E.INVALID_PARAMETERS, f"request body is not valid JSON: {exc}") from None
        if not isinstance(data, dict):
            raise OcpiError(E.INVALID_PARAMETERS, "request body must be a JSON object")
        return data

    def _public_url(self, request, query: dict) -> str:
        path = request.path[len(self.mount_path):] if request.path.startswith(self.mount_path) else request.path
        return f"{self.base_url}{path}?{urlencode(query)}"

    def _page(self, request, items: list, *, render=None) -> Reply:
        """One page of ``items``; with ``render`` the items are already date-filtered and only
        the page is rendered (listing many sessions stays cheap)."""
        offset, limit, date_from, date_to = page_params(request.query)
        if render is None and (date_from is not None or date_to is not None):
            kept = []
            for item in items:
                t = parse_time(item["last_updated"], "last_updated")
                if (date_from is None or t >= date_from) and (date_to is None or t < date_to):
                    kept.append(item)
            items = kept
        total = len(items)
        page = items[offset:offset + limit]
        if render is not None:
            page = [render(item) for item in page]
        headers = {"X-Total-Count": str(total), "X-Limit": str(limit)}
        if offset + len(page) < total and limit > 0:
            query = {k: request.query[k] for k in ("date_from", "date_to") if request.query.get(k)}
            query.update(offset=str(offset + len(page)), limit=str(limit))
            headers["Link"] = f'<{self._public_url(request, query)}>; rel="next"'
        return Reply(page, headers=headers)
