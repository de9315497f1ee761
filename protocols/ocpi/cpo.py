"""The charger's CPO side of OCPI 2.2.1: HTTP handlers, commands, eMSP tokens and pushes.

See the package docstring for how to wire it. Handlers return ``Reply`` objects or raise
``OcpiError``; one middleware adds the envelope, the request/correlation ids and turns every
refusal (including aiohttp's own 404/405/413) into an OCPI status code with a reason.
"""
from __future__ import annotations

import asyncio
import json
import logging
import secrets
import time
import uuid
from urllib.parse import urlencode, urlparse

from aiohttp import web

from agent.core.errors import AgentError
from agent.service import ServiceError
from agent.aio import cancel_and_wait
from protocols.ocpi import errors as E
from protocols.ocpi.client import OcpiClient
from protocols.ocpi.errors import MethodNotAllowed, OcpiError, PartnerError, Unauthorized
from protocols.ocpi.mapping import Renderer
from protocols.ocpi.store import OcpiStore, Party
from protocols.ocpi.wire import (VERSION, envelope, page_params, parse_time, require, require_enum, token_candidates,
                                 token_hash)

log = logging.getLogger("urja.ocpi")
CDR_CATCH_UP_S = 2 * 86400  # at start, CDRs of sessions ended this recently are queued if missing

COMMANDS = ("CANCEL_RESERVATION", "RESERVE_NOW", "START_SESSION", "STOP_SESSION", "UNLOCK_CONNECTOR")
TOKEN_TYPES = ("AD_HOC_USER", "APP_USER", "OTHER", "RFID")
WHITELIST_TYPES = ("ALWAYS", "ALLOWED", "ALLOWED_OFFLINE", "NEVER")
PUSH_TOPIC = "ocpi/push"
RESULT_TOPIC = "ocpi/command-result"

# ServiceError codes onto CommandResultType.
_RESULTS = {
    ServiceError.OCCUPIED: "EVSE_OCCUPIED",
    ServiceError.INOPERATIVE: "EVSE_INOPERATIVE",
    ServiceError.UNKNOWN_CONNECTOR: "REJECTED",
    ServiceError.UNKNOWN_SESSION: "REJECTED",
    ServiceError.UNKNOWN_RESERVATION: "UNKNOWN_RESERVATION",
    ServiceError.REJECTED: "REJECTED",
    ServiceError.NOT_SUPPORTED: "NOT_SUPPORTED",
}

# Modules we serve, with our role in each (listed in version details).
_MODULES = (("credentials", "SENDER"), ("credentials", "RECEIVER"), ("locations", "SENDER"), ("tariffs", "SENDER"),
            ("sessions", "SENDER"), ("cdrs", "SENDER"), ("commands", "RECEIVER"), ("tokens", "RECEIVER"))


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


class AuthDecision:
    """The outcome of authorizing an eMSP token (whitelist, real-time, offline fallback)."""

    __slots__ = ("allowed", "reason", "token", "owner_pk", "authorization_reference", "auth_method")

    def __init__(self, allowed, reason, *, token=None, owner_pk=None, authorization_reference=None,
                 auth_method="WHITELIST"):
        self.allowed = allowed
        self.reason = reason
        self.token = token
        self.owner_pk = owner_pk
        self.authorization_reference = authorization_reference
        self.auth_method = auth_method

    def __repr__(self):
        return f"AuthDecision({self.allowed}, {self.reason!r})"


def credentials_object(token: str, *, base_url: str, country_code: str, party_id: str, name: str) -> dict:
    """Our Credentials object: the token the partner must use, our versions URL, our CPO role."""
    return {"token": token, "url": f"{base_url.rstrip('/')}/versions", "roles": [
        {"role": "CPO", "business_details": {"name": name[:100]}, "party_id": party_id,
         "country_code": country_code}]}


def _text(message: str) -> list:
    return [{"language": "en", "text": message[:512]}]


def _new_uuid() -> str:
    return str(uuid.uuid4())


class OcpiCpo:
    """The CPO side of OCPI 2.2.1 for one charger (see the package docstring)."""

    def __init__(self, *, service, store: OcpiStore, outbox, base_url: str, country_code: str, party_id: str,
                 http_session_factory, clock=None, new_id=None, new_token=None, mount_path: str | None = None,
                 business_name: str | None = None, max_body_bytes: int = 64 * 1024, command_timeout_s: int = 60,
                 authorize_timeout_s: float = 5.0, push_retry_base_s: float = 2.0, push_retry_max_s: float = 600.0,
                 push_poll_s: float = 1.0, session_push_interval_s: float = 60.0, can_unlock: bool = False):
        if len(country_code) != 2 or len(party_id) != 3:
            raise ValueError(f"country_code must have 2 and party_id 3 characters, got {country_code!r}/{party_id!r}")
        self.service = service
        self.store = store
        self.outbox = outbox
        self.base_url = base_url.rstrip("/")
        self.country_code = country_code
        self.party_id = party_id
        self._session_factory = http_session_factory
        self._clock = clock or time.time
        self._new_id = new_id or _new_uuid
        self._new_token = new_token or (lambda: secrets.token_urlsafe(32))
        self.mount_path = (mount_path if mount_path is not None else urlparse(self.base_url).path).rstrip("/")
        self.business_name = business_name
        self.max_body_bytes = max_body_bytes
        self.command_timeout_s = command_timeout_s
        self.authorize_timeout_s = authorize_timeout_s
        self.push_retry_base_s = push_retry_base_s
        self.push_retry_max_s = push_retry_max_s
        self.push_poll_s = push_poll_s
        self.session_push_interval_s = session_push_interval_s
        self.render = Renderer(service=service, country_code=country_code, party_id=party_id, can_unlock=can_unlock)
        self._http = None
        self._tasks: set = set()
        self._push_task = None
        self._wake = asyncio.Event()
        self._push_lock = asyncio.Lock()
        self._listening = False
        self._evse_pushed: dict = {}
        self._session_pushed: dict = {}
        self._known_parties: set = set()
        self._live_refreshed_s = self._clock()
        self.config_updated_s = self._clock()

    # ================================================================== lifecycle
    async def start(self) -> None:
        """Subscribe to charger changes and start delivering queued pushes."""
        if self._push_task is not None:
            return
        self.service.add_listener(self._on_event)
        self._listening = True
        self.service.add_token_authority(self)  # cards at the charger: the eMSPs' tokens count too
        for view in self.service.connectors():
            self._evse_pushed[str(view.evse_uid)] = view.status
        self._known_parties = {p.pk for p in self.store.parties()}
        self._catch_up_cdrs()
        self._push_task = asyncio.create_task(self._push_loop(), name="ocpi-push")

    def _catch_up_cdrs(self) -> None:
        """Queue the CDRs of sessions that ended while nobody listened: the ones the charger's
        boot closed after a crash, before this binding started. Queuing is keyed per party
        and CDR, so a CDR already queued (or sent, while the outbox remembers it) is not again."""
        since_s = self._clock() - CDR_CATCH_UP_S
        try:
            finished = [s for s in self.service.sessions(since_s=since_s) if s.stop_s is not None]
        except Exception:  # noqa: BLE001 - starting OCPI must not fail on this
            log.exception("OCPI: could not list recent sessions for their CDRs")
            return
        for session in finished:
            try:
                receipt = self.service.receipt(session.session_id)
                if receipt is not None:
                    self._on_receipt(session.session_id, receipt)
            except Exception:  # noqa: BLE001 - one bad session must not stop the others
                log.exception("OCPI: could not queue the CDR of session %s", session.session_id)

    async def close(self) -> None:
        if self._listening:
            self.service.remove_listener(self._on_event)
            self.service.remove_token_authority(self)
            self._listening = False
        tasks = [t for t in (self._push_task, *self._tasks) if t is not None]
        self._push_task = None
        self._tasks.clear()
        await cancel_and_wait(tasks)
        if self._http is not None:
            await self._http.close()
            self._http = None

    def _client(self) -> OcpiClient:
        if self._http is None:
            self._http = self._session_factory()
        return OcpiClient(self._http, new_id=self._new_id, from_party=(self.country_code, self.party_id))

    def _spawn(self, coro, name: str):
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _session(self, session_id: str):
        """The facade's session or None; an unknown id may also surface as the journal's own
        error, which must not become a 500 for a partner's typo."""
        try:
            return self.service.session(session_id)
        except AgentError as exc:
            if "unknown" in getattr(exc, "code", ""):
                return None
            raise

    # ================================================================== app and middleware
    def make_app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware], client_max_size=self.max_body_bytes)
        self.add_routes(app.router)
        return app

    def add_routes(self, router) -> None:
        p = self.mount_path
        v = f"{p}/{VERSION}"
        router.add_get(f"{p}/versions", self._get_versions)
        router.add_get(v, self._get_version_details)
        router.add_get(f"{p}/versions/{VERSION}", self._get_version_details)  # the spec's example layout
        router.add_get(f"{v}/credentials", self._get_credentials)
        router.add_post(f"{v}/credentials", self._post_credentials)
        router.add_put(f"{v}/credentials", self._put_credentials)
        router.add_delete(f"{v}/credentials", self._delete_credentials)
        router.add_get(f"{v}/locations", self._get_locations)
        router.add_get(f"{v}/locations/{{location_id}}", self._get_location)
        router.add_get(f"{v}/locations/{{location_id}}/{{evse_uid}}", self._get_location)
        router.add_get(f"{v}/locations/{{location_id}}/{{evse_uid}}/{{connector_id}}", self._get_location)
        router.add_get(f"{v}/tariffs", self._get_tariffs)
        router.add_get(f"{v}/sessions", self._get_sessions)
        router.add_get(f"{v}/cdrs", self._get_cdrs)
        router.add_post(f"{v}/commands/{{command}}", self._post_command)
        router.add_get(f"{v}/tokens/{{country_code}}/{{party_id}}/{{uid}}", self._get_token)
        router.add_put(f"{v}/tokens/{{country_code}}/{{party_id}}/{{uid}}", self._put_token)
        router.add_patch(f"{v}/tokens/{{country_code}}/{{party_id}}/{{uid}}", self._patch_token)

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

    # ================================================================== request helpers
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

    # ================================================================== versions
    async def _get_versions(self, request):
        self._auth(request, token_a=True, pending=True)
        return Reply([{"version": VERSION, "url": f"{self.base_url}/{VERSION}"}])

    async def _get_version_details(self, request):
        self._auth(request, token_a=True, pending=True)
        base = f"{self.base_url}/{VERSION}"
        return Reply({"version": VERSION, "endpoints": [
            {"identifier": ident, "role": role, "url": f"{base}/{ident}"} for ident, role in _MODULES]})

    # ================================================================== credentials
    def credentials(self, token: str) -> dict:
        site = self.service.site
        name = self.business_name or site.operator or site.name or site.site_id
        return credentials_object(token, base_url=self.base_url, country_code=self.country_code,
                                  party_id=self.party_id, name=name)

    @staticmethod
    def _parse_credentials(body) -> tuple[str, str, list]:
        token = require(body, "token", str, where="credentials", max_len=64)
        url = require(body, "url", str, where="credentials", max_len=255)
        if urlparse(url).scheme not in ("http", "https") or not urlparse(url).netloc:
            raise OcpiError(E.INVALID_PARAMETERS, f"credentials.url must be an http(s) URL, got {url!r}")
        roles = require(body, "roles", list, where="credentials")
        if not roles:
            raise OcpiError(E.INVALID_PARAMETERS, "credentials.roles must list at least one role")
        clean = []
        for i, role in enumerate(roles):
            where = f"credentials.roles[{i}]"
            require(role, "role", str, where=where)
            cc = require(role, "country_code", str, where=where)
            pid = require(role, "party_id", str, where=where)
            if len(cc) != 2 or len(pid) != 3:
                raise OcpiError(E.INVALID_PARAMETERS, f"{where}: country_code needs 2 and party_id 3 characters")
            require(role, "business_details", dict, where=where)
            clean.append(role)
        return token, url, clean

    async def _get_credentials(self, request):
        caller = self._auth(request, pending=True)
        return Reply(self.credentials(caller.token))

    async def _post_credentials(self, request):
        caller = self._auth(request, token_a=True, pending=True)
        if caller.party is not None:
            raise MethodNotAllowed("already registered with this token; use PUT to update or DELETE to unregister")
        token_b, url, roles = self._parse_credentials(await self._body(request))
        _, endpoints = await self._client().discover(url, token=token_b)
        token_c = self._new_token()
        party = self.store.register_party(incoming_token=token_c, outgoing_token=token_b, versions_url=url,
                                          version=VERSION, endpoints=endpoints, roles=roles, now_s=self._clock(),
                                          used_token_a_hash=caller.token_a_hash)
        if party is None:
            raise Unauthorized("this registration token was used meanwhile")
        log.info("OCPI: %s registered with us", party.label)
        self._initial_push(party)
        return Reply(self.credentials(token_c))

    async def _put_credentials(self, request):
        caller = self._auth(request, token_a=True, pending=True)
        if caller.party is None or caller.party.state != "registered":
            raise MethodNotAllowed("not registered; use POST to register")
        token_b, url, roles = self._parse_credentials(await self._body(request))
        _, endpoints = await self._client().discover(url, token=token_b)
        token_c = self._new_token()
        self.store.update_party(caller.party.pk, incoming_token=token_c, outgoing_token=token_b, versions_url=url,
                                version=VERSION, endpoints=endpoints, roles=roles, now_s=self._clock())
        return Reply(self.credentials(token_c))

    async def _delete_credentials(self, request):
        caller = self._auth(request, token_a=True, pending=True)
        if caller.party is None or caller.party.state != "registered":
            raise MethodNotAllowed("not registered; nothing to delete")
        self.store.delete_party(caller.party.pk)
        log.info("OCPI: %s unregistered", caller.party.label)
        return Reply(None)

    def create_token_a(self, label: str = "") -> str:
        """A one-time registration token for an eMSP (``urja ocpi token create`` does the same)."""
        token = self._new_token()
        self.store.add_token_a(token, label=label, now_s=self._clock())
        return token

    async def register(self, versions_url: str, token_a: str) -> Party:
        """Register this charger with an eMSP or hub that gave us ``token_a`` (we are the client)."""
        return await register_with(self._client(), self.store, versions_url=versions_url, token_a=token_a,
                                   credentials=self.credentials, new_token=self._new_token, clock=self._clock,
                                   on_registered=self._initial_push)

    async def rotate(self, party_pk: int) -> Party:
        """Fresh tokens both ways with a registered partner (PUT on their credentials)."""
        party = self.store.party(party_pk)
        if party is None or party.state != "registered":
            raise OcpiError(E.INVALID_PARAMETERS, f"no registered party {party_pk}")
        return await rotate_with(self._client(), self.store, party, credentials=self.credentials,
                                 new_token=self._new_token, clock=self._clock)

    async def unregister(self, party_pk: int) -> None:
        """Tell a partner we leave (DELETE on their credentials) and forget it either way."""
        party = self.store.party(party_pk)
        if party is None:
            raise OcpiError(E.INVALID_PARAMETERS, f"no registered party {party_pk}")
        url = party.endpoint("credentials", "RECEIVER") or party.endpoint("credentials", "SENDER")
        try:
            if url and party.outgoing_token:
                await self._client().call("DELETE", url, token=party.outgoing_token)
        finally:
            self.store.delete_party(party_pk)

    # ================================================================== locations, tariffs
    def _location_or_404(self, location_id: str):
        if location_id != self.render.location_id:
            raise OcpiError(E.UNKNOWN_LOCATION, f"unknown location {location_id!r}", http_status=404)
        return self.render.location(config_updated_s=self.config_updated_s)

    async def _get_locations(self, request):
        self._auth(request)
        return self._page(request, [self.render.location(config_updated_s=self.config_updated_s)])

    async def _get_location(self, request):
        self._auth(request)
        info = request.match_info
        location = self._location_or_404(info["location_id"])
        if "evse_uid" not in info:
            return Reply(location)
        evse = next((e for e in location["evses"] if e["uid"] == info["evse_uid"]), None)
        if evse is None:
            raise OcpiError(E.UNKNOWN_LOCATION, f"unknown EVSE {info['evse_uid']!r} at location "
                                                f"{info['location_id']!r}", http_status=404)
        if "connector_id" not in info:
            return Reply(evse)
        connector = next((c for c in evse["connectors"] if c["id"] == info["connector_id"]), None)
        if connector is None:
            raise OcpiError(E.UNKNOWN_LOCATION, f"unknown connector {info['connector_id']!r} on EVSE "
                                                f"{info['evse_uid']!r}", http_status=404)
        return Reply(connector)

    async def _get_tariffs(self, request):
        self._auth(request)
        return self._page(request, [self.render.tariff()])

    # ================================================================== sessions, CDRs
    def _visible_to(self, session, party: Party) -> tuple[bool, object]:
        """An eMSP sees only the sessions tied to it: started by its START_SESSION or authorized
        with one of its tokens (the store's session reference says which). Sessions no eMSP
        started (free vend, the site's allow-list, network customers) and other eMSPs' sessions
        are the operator's business data: showing them would hand a competitor the charger's
        utilisation."""
        ref = self.store.session_ref(session.reference)
        return (ref is not None and ref.owner_pk == party.pk), ref

    async def _get_sessions(self, request):
        party = self._auth(request).party
        _, _, date_from, date_to = page_params(request.query)
        items = []
        for session in self.service.sessions(since_s=date_from, until_s=date_to):
            visible, ref = self._visible_to(session, party)
            if visible:
                items.append((session, ref))
        return self._page(request, items, render=lambda item: self.render.session(*item))

    def cdr_for(self, session, ref=None) -> dict | None:
        receipt = self.service.receipt(session.session_id)
        if receipt is None:
            return None
        return self.render.cdr(session, receipt, ref)

    async def _get_cdrs(self, request):
        party = self._auth(request).party
        items = []
        for session in self.service.sessions():
            if session.stop_s is None:
                continue
            visible, ref = self._visible_to(session, party)
            if visible:
                cdr = self.cdr_for(session, ref)
                if cdr is not None:
                    items.append(cdr)
        return self._page(request, items)

    # ================================================================== commands
    async def _post_command(self, request):
        party = self._auth(request).party
        command = request.match_info["command"]
        if command not in COMMANDS:
            raise OcpiError(E.INVALID_PARAMETERS, f"unknown command {command!r}; allowed: {', '.join(COMMANDS)}")
        body = await self._body(request)
        response_url = require(body, "response_url", str, where=command, max_len=255)
        parsed = urlparse(response_url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise OcpiError(E.INVALID_PARAMETERS, f"{command}.response_url must be an http(s) URL")
        dedup = token_hash(f"{party.pk}|{command}|{response_url}")
        previous = self.store.command_response(dedup)
        if previous is not None:
            # A replayed command gets the first answer again and is not executed twice.
            return Reply(previous)
        check = getattr(self, "_check_" + command.lower())
        result, message, action = check(party, body)
        response = {"result": result, "timeout": self.command_timeout_s}
        if message:
            response["message"] = _text(message)
        self.store.record_command(dedup, owner_pk=party.pk, command=command, response=response, now_s=self._clock())
        if action is not None:
            self._spawn(self._run_command(party, dedup, response_url, command, action), f"ocpi-command-{command}")
        return Reply(response)

    async def _run_command(self, party, dedup, response_url, command, action):
        try:
            result, message = await asyncio.wait_for(action(), self.command_timeout_s)
        except asyncio.TimeoutError:
            result, message = "TIMEOUT", f"the charger did not complete {command} within {self.command_timeout_s} s"
        except ServiceError as exc:
            result, message = _RESULTS.get(exc.code, "FAILED"), str(exc)
        except OcpiError as exc:
            result, message = "FAILED", exc.message
        except Exception as exc:  # noqa: BLE001 - reported to the eMSP as FAILED, logged here
            log.exception("OCPI %s failed", command)
            result, message = "FAILED", f"{type(exc).__name__}: {exc}"
        body = {"result": result}
        if message:
            body["message"] = _text(message)
        self.outbox.enqueue(RESULT_TOPIC, json.dumps({"party": party.pk, "url": response_url, "body": body}),
                            key=f"ocpi-result:{dedup}")
        self._wake.set()

    def _check_location(self, body, where):
        location_id = require(body, "location_id", str, where=where, max_len=36)
        if location_id != self.render.location_id:
            raise OcpiError(E.UNKNOWN_LOCATION, f"unknown location {location_id!r}")

    def _evse_connector(self, body, where, *, connector_required=False):
        """(connector_id, problem): the facade's connector for an optional evse_uid/connector_id."""
        evse_uid = require(body, "evse_uid", str, where=where, optional=not connector_required, max_len=36)
        connector_id = require(body, "connector_id", str, where=where, optional=not connector_required, max_len=36)
        if evse_uid is None:
            return None, None
        view = self.render.connector_view(evse_uid, connector_id)
        if view is None:
            return None, f"unknown EVSE/connector {evse_uid!r}/{connector_id!r}"
        return view.connector_id, None

    @staticmethod
    def _parse_token(body, where) -> dict:
        token = require(body, "token", dict, where=where)
        w = f"{where}.token"
        for name in ("country_code", "party_id", "uid", "contract_id"):
            require(token, name, str, where=w, max_len=36)
        require_enum(token, "type", TOKEN_TYPES, where=w)
        require_enum(token, "whitelist", WHITELIST_TYPES, where=w, optional=True)
        require(token, "valid", bool, where=w, optional=True)
        return token

    @staticmethod
    def _token_problem(party: Party, token: dict) -> str | None:
        """Why the token of a START_SESSION or RESERVE_NOW cannot be used, or None.

        The eMSP sending the command has authorized the token itself (OCPI 2.2.1, commands), so
        it is not asked again, whatever its whitelist says: asking would refuse a NEVER token
        of an eMSP without a real-time endpoint and lose the eMSP's authorization_reference.
        What is checked is that the token is the caller's own, so no eMSP can charge a session
        to another's customer, and that the eMSP has not itself marked it invalid."""
        if not party.has_role(token["country_code"], token["party_id"]):
            return (f"token {token['country_code']}*{token['party_id']} {token['uid']!r} is not issued by the "
                    f"party sending the command")
        if token.get("valid") is False:
            return f"token {token['uid']!r} is marked not valid"
        return None

    def _check_start_session(self, party, body):
        where = "START_SESSION"
        token = self._parse_token(body, where)
        self._check_location(body, where)
        connector_id, problem = self._evse_connector(body, where)
        auth_ref = require(body, "authorization_reference", str, where=where, optional=True, max_len=36)
        problem = problem or self._token_problem(party, token)
        if problem:
            return "REJECTED", problem, None

        async def action():
            reference = self._new_id()
            cdr_token = {k: token[k] for k in ("country_code", "party_id", "uid", "type", "contract_id")}
            self.store.add_session_ref(reference, owner_pk=party.pk, cdr_token=cdr_token, auth_method="COMMAND",
                                       authorization_reference=auth_ref, now_s=self._clock())
            session = await self.service.start_session(source="ocpi", reference=reference, token=token["uid"],
                                                       connector_id=connector_id)
            return "ACCEPTED", f"session {session.session_id} started"

        return "ACCEPTED", None, action

    def _check_stop_session(self, party, body):
        session_id = require(body, "session_id", str, where="STOP_SESSION", max_len=36)
        session = self._session(session_id)
        if session is None or not self._visible_to(session, party)[0]:
            return "UNKNOWN_SESSION", f"unknown session {session_id!r}", None
        if session.status in ("COMPLETED", "INVALID") or session.stop_s is not None:
            return "REJECTED", f"session {session_id!r} has already finished", None

        async def action():
            await self.service.stop_session(session_id, reason="remote")
            return "ACCEPTED", f"session {session_id} stopped"

        return "ACCEPTED", None, action

    def _check_reserve_now(self, party, body):
        where = "RESERVE_NOW"
        token = self._parse_token(body, where)
        expires_s = parse_time(require(body, "expiry_date", str, where=where), f"{where}.expiry_date")
        their_id = require(body, "reservation_id", str, where=where, max_len=36)
        require(body, "authorization_reference", str, where=where, optional=True, max_len=36)
        self._check_location(body, where)
        connector_id, problem = self._evse_connector(body, where)
        problem = problem or self._token_problem(party, token)
        if problem:
            return "REJECTED", problem, None
        if expires_s <= self.service.now_s():
            return "REJECTED", "expiry_date lies in the past", None
        reservation_id = f"ocpi-{party.pk}-{their_id}"

        async def action():
            # The eMSP authorized the token when it asked for the reservation (as for START_SESSION).
            self.store.add_reservation(reservation_id, owner_pk=party.pk, their_id=their_id, now_s=self._clock())
            await self.service.reserve(reservation_id=reservation_id, connector_id=connector_id, expires_s=expires_s,
                                       token=token["uid"])
            return "ACCEPTED", f"reserved until {body['expiry_date']}"

        return "ACCEPTED", None, action

    def _check_cancel_reservation(self, party, body):
        their_id = require(body, "reservation_id", str, where="CANCEL_RESERVATION", max_len=36)
        reservation_id = f"ocpi-{party.pk}-{their_id}"

        async def action():
            await self.service.cancel_reservation(reservation_id)
            return "ACCEPTED", f"reservation {their_id} cancelled"

        return "ACCEPTED", None, action

    def _check_unlock_connector(self, party, body):
        where = "UNLOCK_CONNECTOR"
        self._check_location(body, where)
        connector_id, problem = self._evse_connector(body, where, connector_required=True)
        if problem:
            return "REJECTED", problem, None

        async def action():
            await self.service.unlock(connector_id)
            return "ACCEPTED", f"connector {body['connector_id']} unlocked"

        return "ACCEPTED", None, action

    # ================================================================== tokens (receiver)
    def _token_path(self, request, party: Party) -> tuple[str, str, str, str]:
        info = request.match_info
        cc, pid, uid = info["country_code"], info["party_id"], info["uid"]
        token_type = request.query.get("type", "RFID")
        if token_type not in TOKEN_TYPES:
            raise OcpiError(E.INVALID_PARAMETERS, f"query type={token_type!r}; allowed: {', '.join(TOKEN_TYPES)}")
        if not party.has_role(cc, pid):
            raise OcpiError(E.INVALID_PARAMETERS, f"tokens of {cc}*{pid} cannot be managed by {party.label}")
        if len(uid) > 36:
            raise OcpiError(E.INVALID_PARAMETERS, "token uid is longer than 36 characters")
        return cc, pid, uid, token_type

    @staticmethod
    def _check_token_fields(token: dict, where: str, *, partial: bool) -> None:
        for name, limit in (("country_code", 2), ("party_id", 3), ("uid", 36), ("contract_id", 36),
                            ("visual_number", 64), ("issuer", 64), ("group_id", 36), ("language", 2)):
            optional = partial or name in ("visual_number", "group_id", "language")
            require(token, name, str, where=where, max_len=limit, optional=optional)
        require_enum(token, "type", TOKEN_TYPES, where=where, optional=partial)
        require_enum(token, "whitelist", WHITELIST_TYPES, where=where, optional=partial)
        require(token, "valid", bool, where=where, optional=partial)
        parse_time(require(token, "last_updated", str, where=where), f"{where}.last_updated")
        for name in ("default_profile_type",):
            require_enum(token, name, ("CHEAP", "FAST", "GREEN", "REGULAR"), where=where, optional=True)
        if token.get("energy_contract") is not None:
            require(token["energy_contract"], "supplier_name", str, where=f"{where}.energy_contract")

    async def _get_token(self, request):
        party = self._auth(request).party
        cc, pid, uid, token_type = self._token_path(request, party)
        token = self.store.token(cc, pid, uid, token_type)
        if token is None:
            raise OcpiError(E.UNKNOWN_TOKEN, f"unknown token {cc}*{pid} {uid!r} ({token_type})", http_status=404)
        return Reply(token)

    async def _put_token(self, request):
        party = self._auth(request).party
        cc, pid, uid, token_type = self._token_path(request, party)
        token = await self._body(request)
        self._check_token_fields(token, "token", partial=False)
        if (token["country_code"], token["party_id"], token["uid"], token["type"]) != (cc, pid, uid, token_type):
            raise OcpiError(E.INVALID_PARAMETERS, "token country_code/party_id/uid/type differ from the URL "
                                                  f"({cc}/{pid}/{uid}?type={token_type})")
        created = self.store.put_token(token, owner_pk=party.pk,
                                       last_updated_s=parse_time(token["last_updated"], "token.last_updated"))
        return Reply(None, http_status=201 if created else 200)

    async def _patch_token(self, request):
        party = self._auth(request).party
        cc, pid, uid, token_type = self._token_path(request, party)
        patch = await self._body(request)
        self._check_token_fields(patch, "token", partial=True)
        existing = self.store.token(cc, pid, uid, token_type)
        if existing is None:
            raise OcpiError(E.UNKNOWN_TOKEN, f"unknown token {cc}*{pid} {uid!r} ({token_type})", http_status=404)
        for name, value in (("country_code", cc), ("party_id", pid), ("uid", uid), ("type", token_type)):
            if name in patch and patch[name] != value:
                raise OcpiError(E.INVALID_PARAMETERS, f"token.{name} cannot be changed by PATCH")
        merged = {**existing, **patch}
        self.store.put_token(merged, owner_pk=party.pk,
                             last_updated_s=parse_time(merged["last_updated"], "token.last_updated"))
        return Reply(None)

    # ================================================================== authorization
    async def authorize(self, uid: str, *, token_type: str | None = None, evse_uid: str | None = None) -> AuthDecision:
        """Whether an eMSP token (e.g. an RFID card at the socket) may charge here now."""
        found = self.store.find_token(uid, token_type)
        if found is None:
            return AuthDecision(False, "unknown token")
        token, owner_pk = found
        party = self.store.party(owner_pk)
        if party is None:
            return AuthDecision(False, "the token's eMSP is no longer registered")
        return await self._decide(token, party, evse_uid=evse_uid)

    async def decide_token(self, uid: str, *, token_type: str | None = None,
                           evse_uid: str | None = None) -> AuthDecision | None:
        """The charger's question for a card at its reader (``agent.service.TokenAuthority``):
        None when no registered eMSP has pushed this token, otherwise ``authorize``'s answer."""
        if self.store.find_token(uid, token_type) is None:
            return None
        return await self.authorize(uid, token_type=token_type, evse_uid=evse_uid)

    def bind_session(self, reference: str, decision: AuthDecision) -> None:
        self.remember_authorization(reference, decision)

    def remember_authorization(self, reference: str, decision: AuthDecision) -> None:
        """Tie a session the charger starts after ``authorize`` (its ``reference``) to the eMSP
        token, so its Session and CDR name that token and go to that eMSP only."""
        if not decision.allowed or decision.token is None:
            raise ValueError("only an allowed decision can be remembered")
        token = decision.token
        self.store.add_session_ref(reference, owner_pk=decision.owner_pk, cdr_token={
            "country_code": token["country_code"], "party_id": token["party_id"], "uid": token["uid"],
            "type": token.get("type", "RFID"), "contract_id": token.get("contract_id", token["uid"])},
            auth_method=decision.auth_method, authorization_reference=decision.authorization_reference,
            now_s=self._clock())

    async def _decide(self, token: dict, party: Party, *, evse_uid=None) -> AuthDecision:
        """Whitelist semantics: ALWAYS and ALLOWED decide locally; ALLOWED_OFFLINE asks the eMSP
        and falls back to ``valid`` when it cannot be reached; NEVER must be asked."""
        stored = self.store.token(token.get("country_code", ""), token.get("party_id", ""), token["uid"],
                                  token.get("type", "RFID"))
        token = stored or token
        valid = token.get("valid", True)
        whitelist = token.get("whitelist", "ALLOWED")
        common = {"token": token, "owner_pk": party.pk}
        if not valid:
            return AuthDecision(False, "token is not valid", **common)
        if whitelist in ("ALWAYS", "ALLOWED"):
            return AuthDecision(True, f"whitelist {whitelist}", **common)
        try:
            info = await self._authorize_remote(token, party, evse_uid=evse_uid)
        except PartnerError as exc:
            if whitelist == "ALLOWED_OFFLINE":
                return AuthDecision(True, f"eMSP unreachable, allowed offline ({exc.message})", **common)
            return AuthDecision(False, f"eMSP authorization failed: {exc.message}", **common)
        allowed = info.get("allowed")
        return AuthDecision(allowed == "ALLOWED", f"eMSP says {allowed}", auth_method="AUTH_REQUEST",
                            authorization_reference=info.get("authorization_reference"), **common)

    async def _authorize_remote(self, token: dict, party: Party, *, evse_uid=None) -> dict:
        url = party.endpoint("tokens", "SENDER")
        if not url or not party.outgoing_token:
            raise PartnerError(E.NO_MATCHING_ENDPOINTS, f"{party.label} offers no tokens SENDER endpoint")
        body = {"location_id": self.render.location_id}
        if evse_uid:
            body["evse_uids"] = [evse_uid]
        to = (token.get("country_code"), token.get("party_id"))
        try:
            status, reply = await asyncio.wait_for(
                self._client().call("POST", f"{url.rstrip('/')}/{token['uid']}/authorize", token=party.outgoing_token,
                                    body=body, params={"type": token.get("type", "RFID")}, to_party=to),
                self.authorize_timeout_s)
        except asyncio.TimeoutError:
            raise PartnerError(E.UNABLE_TO_USE_CLIENT_API, "authorize request timed out") from None
        data = reply.get("data")
        if status == 404 or reply.get("status_code") == E.UNKNOWN_TOKEN:
            return {"allowed": "NOT_ALLOWED"}
        if status != 200 or reply.get("status_code") != 1000 or not isinstance(data, dict):
            raise PartnerError(E.UNABLE_TO_USE_CLIENT_API, f"authorize answered HTTP {status}, "
                                                           f"status_code {reply.get('status_code')!r}")
        return data

    # ================================================================== pushes
    def _parties_with(self, module: str) -> list[Party]:
        return [p for p in self.store.parties() if p.endpoint(module, "RECEIVER")]

    def _enqueue(self, party: Party, kind: str, object_id: str, snapshot, *, key: str | None = None) -> None:
        payload = json.dumps({"party": party.pk, "kind": kind, "id": object_id, "snapshot": snapshot})
        self.outbox.enqueue(PUSH_TOPIC, payload, key=key)

    def _greet_new_parties(self) -> None:
        """A party registered by ``urja ocpi register`` beside the running agent gets its
        location here, since that command cannot write to the agent's journal."""
        for party in self.store.parties():
            if party.pk not in self._known_parties:
                self._initial_push(party)

    def _initial_push(self, party: Party) -> None:
        self._known_parties.add(party.pk)
        if party.endpoint("locations", "RECEIVER"):
            self._enqueue(party, "location", self.render.location_id, None)
            self._wake.set()

    def _on_event(self, kind: str, obj) -> None:
        """Charger changes become durable pushes; never raises into the charger."""
        try:
            # A party registered beside the running agent must get its Location PUT queued
            # before any PATCH of it, or it is told about an EVSE it has never seen.
            self._greet_new_parties()
            if kind == "connector":
                self._on_connector(obj)
            elif kind == "session":
                self._on_session(obj)
            elif kind == "receipt":
                self._on_receipt(*obj)
        except Exception:  # noqa: BLE001 - a push problem must not disturb charging
            log.exception("OCPI: queuing a push for %s failed", kind)

    def _on_connector(self, view) -> None:
        evse_uid = str(view.evse_uid)
        if self._evse_pushed.get(evse_uid) == view.status:
            return
        self._evse_pushed[evse_uid] = view.status
        snapshot = self.render.evse([view])
        for party in self._parties_with("locations"):
            self._enqueue(party, "evse", evse_uid, {"status": snapshot["status"],
                                                    "last_updated": snapshot["last_updated"]})
        self._wake.set()

    def _owner_taking(self, ref, module: str) -> Party | None:
        """The registered eMSP a session belongs to, if it takes pushes of ``module``."""
        if ref is None:
            return None
        party = self.store.party(ref.owner_pk)
        if party is None or party.state != "registered" or not party.endpoint(module, "RECEIVER"):
            return None
        return party

    def _on_session(self, session, *, force: bool = False) -> None:
        """A session is pushed to the eMSP it belongs to and to nobody else (see ``_visible_to``)."""
        ref = self.store.session_ref(session.reference)
        if ref is None:
            return  # the site's own session: no eMSP is told of it
        now = self._clock()
        last = self._session_pushed.get(session.session_id)
        if not force and last is not None and last[0] == session.status and \
                now - last[1] < self.session_push_interval_s:
            return
        self._session_pushed[session.session_id] = (session.status, now)
        if session.stop_s is not None:
            self._session_pushed.pop(session.session_id, None)
        party = self._owner_taking(ref, "sessions")
        if party is not None:
            self._enqueue(party, "session", session.session_id, self.render.session(session, ref))
            self._wake.set()

    def _on_receipt(self, session_id, receipt) -> None:
        session = self._session(session_id)
        if session is None:
            return
        ref = self.store.session_ref(session.reference)
        party = self._owner_taking(ref, "cdrs")
        if party is not None:
            cdr = self.render.cdr(session, receipt, ref)
            self._enqueue(party, "cdr", cdr["id"], cdr, key=f"ocpi-cdr:{party.pk}:{cdr['id']}")
            self._wake.set()

    def _addressed_rightly(self, party: Party, entry: dict) -> bool:
        """Whether a queued Session or CDR push still goes to the eMSP the session belongs to.

        Checked again at delivery because the outbox outlives the process: entries queued by a
        version that pushed the site's own sessions to every eMSP must not leak after an update."""
        kind = entry["kind"]
        if kind not in ("session", "cdr"):
            return True
        session_id = entry["id"] if kind == "session" else (entry.get("snapshot") or {}).get("session_id")
        session = self._session(session_id) if isinstance(session_id, str) else None
        return session is not None and self._visible_to(session, party)[0]

    def _request_for(self, party: Party, entry: dict):
        """(method, url, body) of a queued push; live objects are rendered afresh so that a late
        or retried push never overwrites newer state with older."""
        kind, object_id, snapshot = entry["kind"], entry["id"], entry.get("snapshot")
        ours = f"{self.country_code}/{self.party_id}"
        if kind == "location":
            base = party.endpoint("locations", "RECEIVER")
            return "PUT", f"{base.rstrip('/')}/{ours}/{self.render.location_id}", \
                self.render.location(config_updated_s=self.config_updated_s)
        if kind == "evse":
            base = party.endpoint("locations", "RECEIVER")
            view = self.render.connector_view(object_id)
            body = snapshot
            if view is not None:
                evse = self.render.evse([view])
                body = {"status": evse["status"], "last_updated": evse["last_updated"]}
            return "PATCH", f"{base.rstrip('/')}/{ours}/{self.render.location_id}/{object_id}", body
        if kind == "session":
            base = party.endpoint("sessions", "RECEIVER")
            session = self._session(object_id)
            body = self.render.session(session, self.store.session_ref(session.reference)) if session else snapshot
            return "PUT", f"{base.rstrip('/')}/{ours}/{object_id}", body
        if kind == "cdr":
            return "POST", party.endpoint("cdrs", "RECEIVER"), snapshot
        raise ValueError(f"unknown push kind {kind!r}")

    async def push_once(self, limit: int = 200) -> int:
        """Deliver what is due now; returns how many were delivered (acked)."""
        delivered = 0
        self._greet_new_parties()
        async with self._push_lock:  # one round at a time, so an entry is never sent twice at once
            for entry in self.outbox.due(self._clock(), limit, topic_prefix="ocpi/"):
                if entry.topic not in (PUSH_TOPIC, RESULT_TOPIC):
                    continue
                if await self._deliver(entry):
                    delivered += 1
        return delivered

    async def _deliver(self, entry) -> bool:
        try:
            payload = json.loads(entry.payload)
            party = self.store.party(payload["party"])
            if party is None or party.state != "registered" or not party.outgoing_token:
                self.outbox.ack(entry.id)  # the partner left; nobody to deliver to
                return False
            if entry.topic == RESULT_TOPIC:
                method, url, body = "POST", payload["url"], payload["body"]
            elif not self._addressed_rightly(party, payload):
                log.warning("OCPI: dropping queued %s push %s: it is not %s's", payload["kind"], payload["id"],
                            party.label)
                self.outbox.ack(entry.id)
                return False
            else:
                method, url, body = self._request_for(party, payload)
            if not url:
                self.outbox.ack(entry.id)
                return False
            to = (party.roles[0].get("country_code"), party.roles[0].get("party_id")) if party.roles else None
            status, reply = await self._client().call(method, url, token=party.outgoing_token, body=body, to_party=to)
            ok = 200 <= status < 300 and reply.get("status_code") in (1000, None)
            problem = f"HTTP {status}, status_code {reply.get('status_code')!r}: {reply.get('status_message', '')}"
        except PartnerError as exc:
            ok, problem = False, exc.message
        except (ValueError, KeyError, TypeError) as exc:
            log.error("OCPI: dropping malformed outbox entry %s: %s", entry.id, exc)
            self.outbox.ack(entry.id)
            return False
        if ok:
            self.outbox.ack(entry.id)
            return True
        delay_s = min(self.push_retry_max_s, self.push_retry_base_s * (2 ** min(entry.attempts, 30)))
        self.outbox.retry(entry.id, self._clock() + delay_s)
        log.warning("OCPI push %s failed (%s); retry in %.0f s", entry.id, problem, delay_s)
        return False

    def _refresh_live_sessions(self) -> None:
        """Running sessions change every meter reading, but the facade only announces state
        changes; their kWh and cost are pushed every ``session_push_interval_s``."""
        now = self._clock()
        if now - self._live_refreshed_s < self.session_push_interval_s:
            return
        self._live_refreshed_s = now
        for view in self.service.connectors():
            session = self._session(view.session_id) if view.session_id else None
            if session is not None and session.stop_s is None:
                self._on_session(session, force=True)

    async def _push_loop(self) -> None:
        while True:
            self._wake.clear()
            try:
                self._refresh_live_sessions()
                await self.push_once()
            except Exception:  # noqa: BLE001 - keep pushing; the outbox keeps what failed
                log.exception("OCPI push round failed")
            try:
                await asyncio.wait_for(self._wake.wait(), self.push_poll_s)
            except asyncio.TimeoutError:
                pass


def _credentials_url(endpoints: list) -> str:
    """The partner's credentials module (its RECEIVER interface when it names roles)."""
    return next((e["url"] for e in endpoints if e["identifier"] == "credentials" and e.get("role") == "RECEIVER"),
                None) or next(e["url"] for e in endpoints if e["identifier"] == "credentials")


async def _exchange_credentials(client: OcpiClient, method: str, url: str, token: str, ours: dict) -> tuple:
    """Send our credentials (POST to register, PUT to update); returns theirs (token, url, roles)."""
    status, reply = await client.call(method, url, token=token, body=ours)
    data = reply.get("data")
    if status != 200 or reply.get("status_code") != 1000 or not isinstance(data, dict):
        raise PartnerError(E.UNABLE_TO_USE_CLIENT_API,
                           f"{method} {url}: HTTP {status}, status_code {reply.get('status_code')!r}: "
                           f"{reply.get('status_message', '')}")
    return OcpiCpo._parse_credentials(data)


async def rotate_with(client: OcpiClient, store: OcpiStore, party: Party, *, credentials, new_token,
                      clock) -> Party:
    """Update a registration from our side (OCPI credentials PUT): the partner gets a new token
    for calling us and answers with a new token for calling it; its endpoints are read anew.

    Why now and not only at registration: a token that leaked, a partner that moved or added
    modules. The new token is accepted (like a registration's token B) before the PUT, since
    the partner may check our versions with it while handling the PUT; until the partner has
    answered, the old token keeps working, and if the PUT fails nothing changes.
    """
    if not party.outgoing_token:
        raise OcpiError(E.INVALID_PARAMETERS, f"{party.label} has given us no token to call it with")
    _, endpoints = await client.discover(party.versions_url, token=party.outgoing_token)
    url = _credentials_url(endpoints)
    token_b = new_token()
    pending = store.add_pending(incoming_token=token_b, versions_url=party.versions_url, version=VERSION,
                                endpoints=endpoints, now_s=clock())
    try:
        token_c, their_url, roles = await _exchange_credentials(client, "PUT", url, party.outgoing_token,
                                                                credentials(token_b))
    except BaseException:
        store.delete_party(pending.pk)
        raise
    updated = store.finish_rotation(party.pk, pending_pk=pending.pk, outgoing_token=token_c, versions_url=their_url,
                                    endpoints=endpoints, roles=roles, now_s=clock())
    if their_url != party.versions_url:  # the partner moved: read its endpoints where it is now
        try:
            _, endpoints = await client.discover(their_url, token=token_c)
            updated = store.update_party(party.pk, endpoints=endpoints, now_s=clock())
        except PartnerError as exc:
            log.warning("OCPI: %s moved to %s but its endpoints could not be read there (%s); "
                        "the old ones stay until the next update", updated.label, their_url, exc)
    log.info("OCPI: credentials with %s renewed", updated.label)
    return updated


async def register_with(client: OcpiClient, store: OcpiStore, *, versions_url: str, token_a: str, credentials,
                        new_token, clock, on_registered=None) -> Party:
    """Registration where we are the client: discover with token A, offer token B, keep token C.

    Token B is stored (hashed) before the POST so the partner may call our versions with it
    while handling our request; a failed registration removes it again.
    """
    _, endpoints = await client.discover(versions_url, token=token_a)
    url = _credentials_url(endpoints)
    token_b = new_token()
    pending = store.add_pending(incoming_token=token_b, versions_url=versions_url, version=VERSION,
                                endpoints=endpoints, now_s=clock())
    try:
        token_c, their_url, roles = await _exchange_credentials(client, "POST", url, token_a, credentials(token_b))
        party = store.complete_pending(pending.pk, outgoing_token=token_c, roles=roles, versions_url=their_url,
                                       now_s=clock())
    except BaseException:
        store.delete_party(pending.pk)
        raise
    if on_registered is not None:
        on_registered(party)
    return party
