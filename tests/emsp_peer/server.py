"""The eMSP's incoming half: the receiver and sender interfaces a charger talks to.

Served: versions and version details, credentials (GET/POST/PUT/DELETE), the locations,
sessions, CDRs and tariffs receivers (PUT/PATCH/POST/DELETE pushes, stored and recorded in
arrival order), the tokens sender (paginated GET, real-time authorization with a configurable
answer) and the CommandResult endpoint behind every ``response_url`` the peer hands out.

Every request from the charger is checked like the client checks replies: a known token
(Base64 or plain), X-Request-ID and X-Correlation-ID present, routing headers (if any) naming the
two parties, and a body valid against the request schema. A breach is answered as OCPI requires
(401, or 2001 with HTTP 400) and also recorded in ``violations``, which tests assert empty:
the peer never quietly accepts what the specification forbids.
"""
from __future__ import annotations

import asyncio
import json
import secrets
import time
from typing import Callable
from urllib.parse import urlencode

from aiohttp import web

from tests.emsp_peer.schemas import OcpiSpec
from tests.emsp_peer.wire import (
    STATUS_CLIENT_ERROR,
    STATUS_INVALID_PARAMS,
    STATUS_NOT_ENOUGH_INFO,
    STATUS_OK,
    STATUS_UNKNOWN_LOCATION,
    STATUS_UNKNOWN_TOKEN,
    envelope,
    format_dt,
    parse_dt,
    token_candidates,
)

VERSION = "2.2.1"
MAX_BODY_BYTES = 1 << 20
COMMANDS = ("CANCEL_RESERVATION", "RESERVE_NOW", "START_SESSION", "STOP_SESSION", "UNLOCK_CONNECTOR")


class Push:
    """One request the charger made to the peer, in arrival order."""

    __slots__ = ("seq", "module", "method", "path", "params", "body", "token_form")

    def __init__(self, **values):
        for name in self.__slots__:
            setattr(self, name, values.get(name))

    def __repr__(self) -> str:
        return f"Push(#{self.seq} {self.method} {self.path})"


class _Refusal(Exception):
    def __init__(self, http_status: int, status_code: int, message: str):
        super().__init__(message)
        self.http_status, self.status_code, self.message = http_status, status_code, message


class EmspServer:
    """An eMSP on a real socket. Settings are keyword-only; clock, ids and tokens are injected."""

    def __init__(self, *, spec: OcpiSpec, country_code: str = "IN", party_id: str = "EMP",
                 name: str = "Independent test eMSP", host: str = "127.0.0.1",
                 clock: Callable[[], float] = time.time, new_token: Callable[[], str] | None = None,
                 page_limit: int = 2):
        self.spec = spec
        self.country_code = country_code
        self.party_id = party_id
        self.name = name
        self.host = host
        self.clock = clock
        self.new_token = new_token or (lambda: secrets.token_urlsafe(24))
        self.page_limit = page_limit
        self.port = 0
        self._runner: web.AppRunner | None = None
        self._changed = asyncio.Event()
        # tokens the charger may present: token -> "registration" (token A, versions/credentials
        # only) or "party" (the token issued for the registered charger).
        self.accepted: dict[str, str] = {}
        self.registered = False
        self.on_register: Callable | None = None  # async (credentials dict) -> token C, set by the peer
        self.on_update: Callable | None = None
        self.on_unregister: Callable | None = None
        # what was received
        self.pushes: list[Push] = []
        self.violations: list[str] = []
        self.unauthorized: list[str] = []
        self.token_forms: set[str] = set()
        self.locations: dict[tuple, dict] = {}
        self.sessions: dict[tuple, dict] = {}
        self.cdrs: dict[tuple, dict] = {}
        self.tariffs: dict[tuple, dict] = {}
        self.duplicate_cdrs: list[tuple] = []
        self.out_of_order: list[str] = []
        self.command_results: dict[str, list] = {}
        self.expected_results: dict[str, str] = {}  # response uid -> command name
        self.authorize_requests: list[dict] = []
        # what the eMSP owns
        self.tokens: list[dict] = []
        self.authorize_answers: dict[str, dict] = {}

    # --- lifecycle -----------------------------------------------------------------------
    @property
    def base_url(self) -> str:
        return f"http://{self.host}:{self.port}/ocpi/emsp"

    @property
    def versions_url(self) -> str:
        return f"{self.base_url}/versions"

    @property
    def module_url(self) -> str:
        return f"{self.base_url}/{VERSION}"

    async def start(self) -> None:
        await self.go_up()

    async def go_up(self) -> None:
        """Listen (again, on the same port once it is known): the eMSP comes back after an outage."""
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        app.router.add_route("*", "/ocpi/emsp/{tail:.*}", self._dispatch)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        try:
            site = web.TCPSite(runner, self.host, self.port, reuse_address=True)
            await site.start()
        except BaseException:
            await runner.cleanup()
            raise
        self._runner = runner
        if not self.port:
            self.port = site._server.sockets[0].getsockname()[1]

    async def go_down(self) -> None:
        """A real outage: stop listening and drop open keep-alive connections; records and tokens stay."""
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()

    async def close(self) -> None:
        await self.go_down()

    # --- waiting -------------------------------------------------------------------------
    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    async def wait_until(self, predicate: Callable[[], object], *, timeout_s: float, what: str):
        """Wait (event-driven, bounded) until ``predicate()`` is truthy; return its value."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while True:
            value = predicate()
            if value:
                return value
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise asyncio.TimeoutError(f"eMSP waited {timeout_s} s for {what}; got "
                                           f"{len(self.pushes)} pushes: {self.pushes[-5:]}")
            try:
                await asyncio.wait_for(self._changed.wait(), remaining)
            except asyncio.TimeoutError:
                pass

    # --- the one entry point -------------------------------------------------------------
    async def _dispatch(self, request: web.Request) -> web.StreamResponse:
        request_id = request.headers.get("X-Request-ID")
        correlation_id = request.headers.get("X-Correlation-ID")
        echo = {}
        if request_id is not None:
            echo["X-Request-ID"] = request_id
        if correlation_id is not None:
            echo["X-Correlation-ID"] = correlation_id
        what = f"{request.method} {request.path}"
        try:
            token_kind = self._authorize(request, what)
            if request_id is None or correlation_id is None:
                self._violation(f"{what}: missing X-Request-ID or X-Correlation-ID header")
            parts = request.match_info["tail"].strip("/").split("/")
            http_status, code, data, extra, message = await self._route(request, parts, token_kind, what)
        except _Refusal as refusal:
            http_status, code, data, extra, message = (refusal.http_status, refusal.status_code, None, {},
                                                       refusal.message)
        headers = dict(echo)
        headers.update(extra)
        return web.json_response(envelope(data, status_code=code, message=message, now_s=self.clock()),
                                 status=http_status, headers=headers)

    def _authorize(self, request: web.Request, what: str) -> str:
        header = request.headers.get("Authorization")
        for token, form in token_candidates(header):
            kind = self.accepted.get(token)
            if kind is not None:
                self.token_forms.add(form)
                return kind
        self.unauthorized.append(f"{what}: Authorization {header!r}")
        self._notify()
        raise _Refusal(401, STATUS_CLIENT_ERROR, "missing or unknown credentials token")

    def _violation(self, text: str) -> None:
        self.violations.append(text)
        self._notify()

    async def _body(self, request: web.Request, interface: str, path: str, what: str, *, required=True):
        raw = await request.read()
        if not raw:
            if required:
                self._violation(f"{what}: empty body")
                raise _Refusal(400, STATUS_INVALID_PARAMS, "request body required")
            return None
        try:
            body = json.loads(raw)
        except ValueError:
            self._violation(f"{what}: body is not JSON")
            raise _Refusal(400, STATUS_INVALID_PARAMS, "body is not JSON") from None
        ref = self.spec.request_ref(interface, path, request.method)
        problems = self.spec.errors(ref, body) if ref else []
        if problems:
            self._violation(f"{what}: body violates the schema: {'; '.join(problems[:6])}")
            raise _Refusal(400, STATUS_INVALID_PARAMS, "; ".join(problems[:3]))
        return body

    def _record(self, request, module, body, token_kind) -> Push:
        push = Push(seq=len(self.pushes), module=module, method=request.method, path=request.path,
                    params=dict(request.query), body=body, token_form=token_kind)
        self.pushes.append(push)
        self._notify()
        return push

    def _check_routing(self, request, what):
        """On a direct connection routing headers are optional; when sent they must name us and the sender."""
        to_cc, to_pid = request.headers.get("OCPI-to-country-code"), request.headers.get("OCPI-to-party-id")
        if to_cc is not None and (to_cc, to_pid) != (self.country_code, self.party_id):
            self._violation(f"{what}: OCPI-to routing headers name {to_cc}/{to_pid}, not this eMSP")

    async def _route(self, request, parts, token_kind, what):
        method = request.method
        if parts == ["versions"] and method == "GET":
            data = [{"version": VERSION, "url": self.module_url}]
            self._record(request, "versions", None, token_kind)
            return 200, STATUS_OK, data, {}, None
        if parts == [VERSION] and method == "GET":
            self._record(request, "versions", None, token_kind)
            return 200, STATUS_OK, self.version_details(), {}, None
        if len(parts) < 2 or parts[0] != VERSION:
            raise _Refusal(404, STATUS_CLIENT_ERROR, f"no such endpoint {request.path}")
        module, rest = parts[1], parts[2:]
        if module == "credentials" and not rest:
            return await self._credentials(request, token_kind, what)
        if token_kind != "party":
            self.unauthorized.append(f"{what}: registration token used outside credentials/versions")
            raise _Refusal(401, STATUS_CLIENT_ERROR, "this token only allows registration")
        self._check_routing(request, what)
        handler = {"locations": self._locations, "sessions": self._sessions, "cdrs": self._cdrs,
                   "tariffs": self._tariffs, "tokens": self._tokens, "commands": self._commands}.get(module)
        if handler is None:
            raise _Refusal(404, STATUS_CLIENT_ERROR, f"module {module} not offered")
        return await handler(request, rest, what)

    # --- versions and credentials --------------------------------------------------------
    def version_details(self) -> dict:
        u = self.module_url
        endpoints = [("credentials", "SENDER"), ("credentials", "RECEIVER"), ("locations", "RECEIVER"),
                     ("sessions", "RECEIVER"), ("cdrs", "RECEIVER"), ("tariffs", "RECEIVER"),
                     ("tokens", "SENDER"), ("commands", "SENDER")]
        return {"version": VERSION,
                "endpoints": [{"identifier": i, "role": r, "url": f"{u}/{i}"} for i, r in endpoints]}

    def credentials(self, token: str) -> dict:
        return {"token": token, "url": self.versions_url,
                "roles": [{"role": "EMSP", "party_id": self.party_id, "country_code": self.country_code,
                           "business_details": {"name": self.name}}]}

    def party_token(self) -> str | None:
        for token, kind in self.accepted.items():
            if kind == "party":
                return token
        return None

    async def _credentials(self, request, token_kind, what):
        method = request.method
        path = "/credentials"
        if method == "GET":
            if not self.registered:
                raise _Refusal(405, STATUS_CLIENT_ERROR, "not registered")
            self._record(request, "credentials", None, token_kind)
            return 200, STATUS_OK, self.credentials(self.party_token()), {}, None
        if method == "POST":
            if self.registered:
                raise _Refusal(405, STATUS_CLIENT_ERROR, "already registered; use PUT")
            body = await self._body(request, "credentials/interface", path, what)
            self._record(request, "credentials", body, token_kind)
            token_c = await self.on_register(body)
            return 200, STATUS_OK, self.credentials(token_c), {}, None
        if method == "PUT":
            if not self.registered or token_kind != "party":
                raise _Refusal(405, STATUS_CLIENT_ERROR, "not registered; use POST")
            body = await self._body(request, "credentials/interface", path, what)
            self._record(request, "credentials", body, token_kind)
            token_c = await self.on_update(body)
            return 200, STATUS_OK, self.credentials(token_c), {}, None
        if method == "DELETE":
            if not self.registered or token_kind != "party":
                raise _Refusal(405, STATUS_CLIENT_ERROR, "not registered")
            self._record(request, "credentials", None, token_kind)
            await self.on_unregister()
            return 200, STATUS_OK, None, {}, None
        raise _Refusal(405, STATUS_CLIENT_ERROR, f"{method} not allowed on credentials")

    # --- receivers -----------------------------------------------------------------------
    def _own_object(self, what, body, cc, pid, oid, id_field="id"):
        if body.get("country_code", cc) != cc or body.get("party_id", pid) != pid:
            self._violation(f"{what}: body country_code/party_id {body.get('country_code')}/"
                            f"{body.get('party_id')} differ from the URL {cc}/{pid}")
        if id_field in body and body[id_field] != oid:
            self._violation(f"{what}: body {id_field} {body[id_field]!r} differs from the URL {oid!r}")

    def _check_fresh(self, what, stored, body):
        old, new = stored.get("last_updated"), body.get("last_updated")
        if old and new and parse_dt(new) < parse_dt(old):
            self.out_of_order.append(f"{what}: last_updated {new} older than stored {old}")

    async def _locations(self, request, rest, what):  # noqa: C901
        method = request.method
        if len(rest) not in (3, 4, 5):
            raise _Refusal(404, STATUS_CLIENT_ERROR, "locations receiver needs /{cc}/{party}/{location}[/{evse}[/{connector}]]")
        cc, pid, lid = rest[:3]
        level = ("location", "evse", "connector")[len(rest) - 3]
        template = "/locations/{country_code}/{party_id}/{location_id}" + \
            ("/{evse_uid}" if len(rest) >= 4 else "") + ("/{connector_id}" if len(rest) == 5 else "")
        key = (cc, pid, lid)
        if method == "GET":
            node = self._location_node(key, rest)
            if node is None:
                raise _Refusal(404, STATUS_UNKNOWN_LOCATION, "unknown location object")
            return 200, STATUS_OK, node, {}, None
        if method not in ("PUT", "PATCH"):
            raise _Refusal(405, STATUS_CLIENT_ERROR, f"{method} not allowed on locations")
        body = await self._body(request, "locations/receiver-interface", template, what)
        self._record(request, "locations", body, level)
        if level == "location":
            if method == "PUT":
                self._own_object(what, body, cc, pid, lid)
                if key in self.locations:
                    self._check_fresh(what, self.locations[key], body)
                self.locations[key] = body
            else:
                stored = self._need(key, self.locations, what)
                self._check_fresh(what, stored, body)
                stored.update(body)
            return 200, STATUS_OK, None, {}, None
        location = self._need(key, self.locations, what)
        evses = location.setdefault("evses", [])
        evse = next((e for e in evses if e.get("uid") == rest[3]), None)
        if level == "evse":
            if method == "PUT":
                if body.get("uid") != rest[3]:
                    self._violation(f"{what}: EVSE uid {body.get('uid')!r} differs from the URL")
                if evse is not None:
                    self._check_fresh(what, evse, body)
                    evses.remove(evse)
                evses.append(body)
            else:
                if evse is None:
                    self._violation(f"{what}: PATCH of an EVSE never PUT")
                    raise _Refusal(404, STATUS_UNKNOWN_LOCATION, "unknown EVSE")
                self._check_fresh(what, evse, body)
                evse.update(body)
            self._touch(location, body)
            return 200, STATUS_OK, None, {}, None
        if evse is None:
            self._violation(f"{what}: connector push for an EVSE never PUT")
            raise _Refusal(404, STATUS_UNKNOWN_LOCATION, "unknown EVSE")
        connectors = evse.setdefault("connectors", [])
        connector = next((c for c in connectors if c.get("id") == rest[4]), None)
        if method == "PUT":
            if connector is not None:
                connectors.remove(connector)
            connectors.append(body)
        else:
            if connector is None:
                self._violation(f"{what}: PATCH of a connector never PUT")
                raise _Refusal(404, STATUS_UNKNOWN_LOCATION, "unknown connector")
            self._check_fresh(what, connector, body)
            connector.update(body)
        self._touch(evse, body)
        self._touch(location, body)
        return 200, STATUS_OK, None, {}, None

    @staticmethod
    def _touch(parent, body):
        if body.get("last_updated") and (not parent.get("last_updated")
                                         or parse_dt(body["last_updated"]) > parse_dt(parent["last_updated"])):
            parent["last_updated"] = body["last_updated"]

    def _location_node(self, key, rest):
        node = self.locations.get(key)
        if node is None or len(rest) == 3:
            return node
        node = next((e for e in node.get("evses", []) if e.get("uid") == rest[3]), None)
        if node is None or len(rest) == 4:
            return node
        return next((c for c in node.get("connectors", []) if c.get("id") == rest[4]), None)

    def _need(self, key, table, what):
        stored = table.get(key)
        if stored is None:
            self._violation(f"{what}: PATCH or child push for an object never PUT")
            raise _Refusal(404, STATUS_UNKNOWN_LOCATION, "unknown object")
        return stored

    async def _sessions(self, request, rest, what):
        if len(rest) != 3:
            raise _Refusal(404, STATUS_CLIENT_ERROR, "sessions receiver needs /{cc}/{party}/{session_id}")
        cc, pid, sid = rest
        key = (cc, pid, sid)
        template = "/sessions/{country_code}/{party_id}/{session_id}"
        if request.method == "GET":
            if key not in self.sessions:
                raise _Refusal(404, STATUS_CLIENT_ERROR, "unknown session")
            return 200, STATUS_OK, self.sessions[key], {}, None
        if request.method not in ("PUT", "PATCH"):
            raise _Refusal(405, STATUS_CLIENT_ERROR, f"{request.method} not allowed on sessions")
        body = await self._body(request, "sessions/receiver-interface", template, what)
        self._record(request, "sessions", body, None)
        if request.method == "PUT":
            self._own_object(what, body, cc, pid, sid)
            if key in self.sessions:
                self._check_fresh(what, self.sessions[key], body)
            self.sessions[key] = body
        else:
            stored = self._need(key, self.sessions, what)
            self._check_fresh(what, stored, body)
            periods = body.pop("charging_periods", None)
            stored.update(body)
            if periods:  # a PATCH adds charging periods; it never replaces the list
                stored.setdefault("charging_periods", []).extend(periods)
        return 200, STATUS_OK, None, {}, None

    async def _cdrs(self, request, rest, what):
        if request.method == "GET" and len(rest) == 1:
            found = [c for k, c in self.cdrs.items() if k[2] == rest[0]]
            if not found:
                raise _Refusal(404, STATUS_CLIENT_ERROR, "unknown CDR")
            return 200, STATUS_OK, found[0], {}, None
        if request.method != "POST" or rest:
            raise _Refusal(405, STATUS_CLIENT_ERROR, "CDRs are POSTed to the collection")
        body = await self._body(request, "cdrs/receiver-interface", "/cdrs", what)
        self._record(request, "cdrs", body, None)
        key = (body["country_code"], body["party_id"], body["id"])
        if key in self.cdrs:
            self.duplicate_cdrs.append(key)
            if self.cdrs[key] != body:
                self._violation(f"{what}: CDR {key} sent twice with different contents (CDRs are final)")
        else:
            self.cdrs[key] = body
        return 200, STATUS_OK, None, {"Location": f"{self.module_url}/cdrs/{body['id']}"}, None

    async def _tariffs(self, request, rest, what):
        if len(rest) != 3:
            raise _Refusal(404, STATUS_CLIENT_ERROR, "tariffs receiver needs /{cc}/{party}/{tariff_id}")
        key = tuple(rest)
        template = "/tariffs/{country_code}/{party_id}/{tariff_id}"
        if request.method == "GET":
            if key not in self.tariffs:
                raise _Refusal(404, STATUS_CLIENT_ERROR, "unknown tariff")
            return 200, STATUS_OK, self.tariffs[key], {}, None
        if request.method == "DELETE":
            self._record(request, "tariffs", None, None)
            self.tariffs.pop(key, None)
            return 200, STATUS_OK, None, {}, None
        if request.method != "PUT":
            raise _Refusal(405, STATUS_CLIENT_ERROR, f"{request.method} not allowed on tariffs")
        body = await self._body(request, "tariffs/receiver-interface", template, what)
        self._record(request, "tariffs", body, None)
        self._own_object(what, body, *key)
        self.tariffs[key] = body
        return 200, STATUS_OK, None, {}, None

    # --- tokens sender -------------------------------------------------------------------
    async def _tokens(self, request, rest, what):
        if request.method == "GET" and not rest:
            return self._token_page(request, what)
        if request.method == "POST" and len(rest) == 2 and rest[1] == "authorize":
            return await self._authorize_token(request, rest[0], what)
        raise _Refusal(404, STATUS_CLIENT_ERROR, "tokens sender offers GET /tokens and POST /tokens/{uid}/authorize")

    def _token_page(self, request, what):
        query = request.query
        try:
            offset = int(query.get("offset", "0"))
            limit = int(query.get("limit", str(self.page_limit)))
            since = parse_dt(query["date_from"]) if "date_from" in query else None
            until = parse_dt(query["date_to"]) if "date_to" in query else None
        except ValueError:
            raise _Refusal(400, STATUS_INVALID_PARAMS, "offset/limit must be integers, dates OCPI DateTime") from None
        if offset < 0 or limit < 1:
            raise _Refusal(400, STATUS_INVALID_PARAMS, "offset >= 0 and limit >= 1 required")
        limit = min(limit, self.page_limit)
        chosen = [t for t in sorted(self.tokens, key=lambda t: t["last_updated"])
                  if (since is None or parse_dt(t["last_updated"]) >= since)
                  and (until is None or parse_dt(t["last_updated"]) < until)]
        page = chosen[offset:offset + limit]
        headers = {"X-Total-Count": str(len(chosen)), "X-Limit": str(limit)}
        if offset + limit < len(chosen):
            keep = {k: v for k, v in query.items() if k in ("date_from", "date_to")}
            keep.update(offset=str(offset + limit), limit=str(limit))
            headers["Link"] = f'<{self.module_url}/tokens?{urlencode(keep)}>; rel="next"'
        self._record(request, "tokens", None, None)
        return 200, STATUS_OK, page, headers, None

    async def _authorize_token(self, request, uid, what):
        token_type = request.query.get("type", "RFID")
        body = await self._body(request, "tokens/sender-interface", "/tokens/{token_uid}/authorize", what,
                                required=False)
        self.authorize_requests.append({"uid": uid, "type": token_type, "location": body})
        self._record(request, "tokens", body, None)
        token = next((t for t in self.tokens if t["uid"] == uid and t["type"] == token_type), None)
        if token is None:
            raise _Refusal(404, STATUS_UNKNOWN_TOKEN, f"unknown token {uid} of type {token_type}")
        answer = dict(self.authorize_answers.get(uid, {"allowed": "ALLOWED"}))
        if answer.get("need_location") and body is None:
            raise _Refusal(400, STATUS_NOT_ENOUGH_INFO, "this token needs LocationReferences")
        answer.pop("need_location", None)
        info = {"allowed": answer.pop("allowed"), "token": token}
        if body is not None and info["allowed"] == "ALLOWED":
            info["location"] = body
        info.update(answer)
        return 200, STATUS_OK, info, {}, None

    # --- command results -----------------------------------------------------------------
    async def _commands(self, request, rest, what):
        if request.method != "POST" or len(rest) != 2 or rest[0] not in COMMANDS:
            raise _Refusal(404, STATUS_CLIENT_ERROR, "CommandResult goes to /commands/{command}/{uid}")
        command, uid = rest
        body = await self._body(request, "commands/sender-interface", "/commands/{command}/{uid}", what)
        self._record(request, "commands", body, None)
        if self.expected_results.get(uid) != command:
            self._violation(f"{what}: CommandResult for a response_url this eMSP never handed out")
        elif self.command_results.get(uid):
            self._violation(f"{what}: a second CommandResult for the same command")
        self.command_results.setdefault(uid, []).append(body)
        return 200, STATUS_OK, None, {}, None

    # --- owned tokens --------------------------------------------------------------------
    def add_token(self, uid: str, *, token_type: str = "RFID", contract_id: str | None = None,
                  whitelist: str = "ALLOWED", valid: bool = True, last_updated_s: float | None = None) -> dict:
        token = {"country_code": self.country_code, "party_id": self.party_id, "uid": uid,
                 "type": token_type, "contract_id": contract_id or f"{self.country_code}-{self.party_id}-{uid}",
                 "issuer": self.name, "valid": valid, "whitelist": whitelist,
                 "last_updated": format_dt(self.clock() if last_updated_s is None else last_updated_s)}
        self.tokens.append(token)
        return token
