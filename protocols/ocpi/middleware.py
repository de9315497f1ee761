"""The part of the CPO every request passes: the envelope, the request and correlation ids,
the token check with the OCPI-from/OCPI-to routing headers, body parsing and paging.

Why one middleware maps every refusal: a partner must get an OCPI status code with a reason
for anything that goes wrong, including aiohttp's own 404/405/413, never an HTML page or a
bare 500.

Routing (OCPI 2.2.1, transport and format): a request's ``OCPI-from-*`` names the party it
comes from. A registration may name one of its own roles; a registration with role HUB may
also name any party behind the hub that the hub has not reported SUSPENDED (hubclientinfo),
and the request then acts for that party alone (``Caller.acting``). ``OCPI-to-*`` must name
this charger. Responses of the functional modules carry the headers back: TO is the
requester (the request's FROM, or the caller's own ids on a direct connection), FROM is the
request's TO, or this charger. Configuration modules (versions, credentials, hubclientinfo)
carry none, as the specification says.
"""
from __future__ import annotations

import json
import logging
import uuid
from urllib.parse import urlencode

from aiohttp import web

from protocols.ocpi import errors as E
from protocols.ocpi.errors import OcpiError, Unauthorized
from protocols.ocpi.store import GONE, Party
from protocols.ocpi.wire import VERSION, envelope, page_params, parse_time, token_candidates, token_hash

CALLER = web.RequestKey("ocpi.caller", object)  # where ``_auth`` leaves the Caller, for the response headers
_ID_HEADERS = ("X-Request-ID", "X-Correlation-ID")


def _is_uuid(text: str) -> bool:
    try:
        uuid.UUID(text)
    except ValueError:
        return False
    return len(text) == 36


def routing_pair(headers, direction: str) -> tuple[str, str] | None:
    """(country_code, party_id) of the ``OCPI-<direction>-*`` headers, None when absent; one
    without the other is refused, since a half address routes nowhere."""
    cc, pid = headers.get(f"OCPI-{direction}-country-code"), headers.get(f"OCPI-{direction}-party-id")
    if cc is None and pid is None:
        return None
    if not cc or not pid:
        raise OcpiError(E.INVALID_PARAMETERS, f"OCPI-{direction}-country-code and OCPI-{direction}-party-id go "
                                              f"together; got {cc!r}/{pid!r}")
    return cc, pid

log = logging.getLogger("urja.ocpi")


class Reply:
    __slots__ = ("data", "http_status", "headers")

    def __init__(self, data=None, *, http_status: int = 200, headers: dict | None = None):
        self.data = data
        self.http_status = http_status
        self.headers = headers or {}


class Caller:
    """Who is calling: a registered or registering party, or a holder of a token A.

    ``acting`` is the party ids the request speaks for: None for a direct party speaking for
    all its roles, one role's ids when ``OCPI-from`` names it, and for a hub the party behind
    it that ``OCPI-from`` names (the hub's own ids when it speaks for itself)."""

    __slots__ = ("party", "token_a_hash", "token", "acting")

    def __init__(self, party: Party | None, token_a_hash: str | None, token: str, acting=None):
        self.party = party
        self.token_a_hash = token_a_hash
        self.token = token
        self.acting = acting

    @property
    def ids(self) -> tuple[str, str] | None:
        """Who the answer goes to: the acting party, else the registration's own ids."""
        if self.acting is not None:
            return self.acting
        return self.party.ids if self.party is not None else None


class RequestHandling:
    """Middleware and request helpers of ``OcpiCpo`` (uses its store, clock, ids, mount path)."""

    @web.middleware
    async def _middleware(self, request, handler):
        ids, problem = self._request_ids(request)
        try:
            if problem is not None:
                raise OcpiError(E.INVALID_PARAMETERS, problem)
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
        headers = {**ids, **self._reply_routing(request), **extra}
        return web.Response(status=status, headers=headers, content_type="application/json",
                            body=json.dumps(body, separators=(",", ":")).encode("utf-8"))

    def _request_ids(self, request) -> tuple[dict, str | None]:
        """The ids the response carries, and why the request's own are refused (or None).

        2.2.1 gives both headers to every request as UUIDs, and a hub correlates by them: a
        value that is not a UUID is refused (2001) rather than echoed into the partner's logs;
        a missing one is answered with a fresh UUID and logged once per caller, since older
        peers omit them and refusing would cut them off for a header they cannot act on."""
        out, problem, missing = {}, None, []
        for name in _ID_HEADERS:
            value = request.headers.get(name)
            if value is None:
                missing.append(name)
                out[name] = self._new_id()
            elif not _is_uuid(value):
                problem = problem or f"{name} must be a UUID, got {value[:64]!r}"
                out[name] = self._new_id()
            else:
                out[name] = value
        if missing:
            who = request.headers.get("Authorization", "")[-12:] or request.remote
            if who not in self._warned_ids:
                self._warned_ids.add(who)
                log.warning("OCPI %s %s came without %s; answered with fresh ones", request.method, request.path,
                            " and ".join(missing))
        return out, problem

    def _is_configuration(self, request) -> bool:
        rel = request.path[len(self.mount_path):] if request.path.startswith(self.mount_path) else request.path
        rel = rel.rstrip("/")
        return rel in ("/versions", f"/{VERSION}", f"/versions/{VERSION}") or \
            rel.startswith((f"/{VERSION}/credentials", f"/{VERSION}/hubclientinfo"))

    def _reply_routing(self, request) -> dict:
        """The routing headers of a response: TO the requester, FROM the party it addressed."""
        if self._is_configuration(request):
            return {}
        try:
            asked_from = routing_pair(request.headers, "from")
            asked_to = routing_pair(request.headers, "to")
        except OcpiError:
            asked_from = asked_to = None
        caller = request.get(CALLER)
        to = asked_from or (caller.ids if caller is not None else None)
        if to is None:
            return {}
        sender = asked_to or (self.country_code, self.party_id)
        return {"OCPI-to-country-code": to[0], "OCPI-to-party-id": to[1],
                "OCPI-from-country-code": sender[0], "OCPI-from-party-id": sender[1]}

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
                request[CALLER] = caller
                if not token_a:  # configuration modules carry no routing headers
                    self._check_routing(request, caller)
                return caller
            if self.store.has_token_a(hashed):
                if not token_a:
                    raise Unauthorized("this token only allows registration (versions and credentials)")
                return Caller(None, hashed, token)
        raise Unauthorized("unknown token")

    def _check_routing(self, request, caller: Caller) -> None:
        """Who the request speaks for (``caller.acting``), from its routing headers."""
        party = caller.party
        to = routing_pair(request.headers, "to")
        if to is not None and to != (self.country_code, self.party_id):
            raise OcpiError(E.INVALID_PARAMETERS, f"OCPI-to {to[0]}*{to[1]} is not this charger "
                                                  f"({self.country_code}*{self.party_id})")
        sender = routing_pair(request.headers, "from")
        if party.state != "registered":
            return
        if sender is None:
            caller.acting = party.ids if party.is_hub else None
        elif party.has_role(*sender):
            caller.acting = sender
        elif party.is_hub:
            if self.store.client_status(party.pk, *sender) == GONE:
                raise OcpiError(E.INVALID_PARAMETERS, f"OCPI-from {sender[0]}*{sender[1]}: the hub has "
                                                      f"reported this party SUSPENDED")
            caller.acting = sender
        else:
            raise OcpiError(E.INVALID_PARAMETERS, f"OCPI-from {sender[0]}*{sender[1]} is not the party "
                                                  f"registered with this token")

    def _may_act_for(self, caller: Caller, country_code: str, party_id: str) -> bool:
        """Whether the caller may manage what belongs to ``country_code*party_id`` (its tokens,
        commands with its tokens): a direct party its own roles, a hub the party it speaks for,
        or, speaking for itself (a broadcast), any party behind it not reported SUSPENDED."""
        party = caller.party
        if caller.acting is None:
            return party.has_role(country_code, party_id)
        if caller.acting == (country_code, party_id):
            return True
        if party.is_hub and caller.acting == party.ids:
            return self.store.client_status(party.pk, country_code, party_id) != GONE
        return False

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

    def _page(self, request, items: list, *, render=None, filtered: bool = False) -> Reply:
        """One page of ``items``; with ``render`` the items are already date-filtered and only
        the page is rendered; ``filtered`` says the items are date-filtered already."""
        offset, limit, date_from, date_to = page_params(request.query)
        if render is None and not filtered and (date_from is not None or date_to is not None):
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
