"""An independent eMSP: the server half, the client half and the flows that tie them together.

Why it exists: the charger's OCPI side can only be trusted if something that shares none of its
code talks to it the way a roaming partner would. This peer registers in both directions, pulls
every module with pagination, sends every command and waits for the asynchronous result, and
receives pushes; both halves check each message against the official OpenAPI files.
"""
from __future__ import annotations

import asyncio
import time
import uuid
from typing import Callable

import aiohttp

from tests.emsp_peer.client import OcpiClient, Reply
from tests.emsp_peer.schemas import ConformanceError, OcpiSpec, load_spec
from tests.emsp_peer.server import VERSION, EmspServer, _Refusal
from tests.emsp_peer.wire import STATUS_OK, STATUS_UNABLE_TO_USE_CLIENT_API, format_dt

SENDER_MODULES = ("locations", "sessions", "cdrs", "tariffs")


class CommandOutcome:
    """What came of one command: the synchronous CommandResponse and the later CommandResult."""

    __slots__ = ("name", "uid", "reply", "response", "result")

    def __init__(self, *, name, uid, reply, response, result):
        self.name, self.uid, self.reply, self.response, self.result = name, uid, reply, response, result

    def __repr__(self) -> str:
        return (f"CommandOutcome({self.name}: OCPI {self.reply.status_code}, "
                f"{(self.response or {}).get('result')}, {(self.result or {}).get('result')})")


class EmspPeer:
    """Use as ``async with EmspPeer(...) as peer``; everything it opens is closed on exit."""

    def __init__(self, *, spec: OcpiSpec | None = None, country_code: str = "IN", party_id: str = "EMP",
                 clock: Callable[[], float] = time.time, new_id: Callable[[], str] | None = None,
                 new_token: Callable[[], str] | None = None, page_limit: int = 2, encode_token: bool = True):
        self.spec = spec or load_spec()
        self.clock = clock
        self.new_id = new_id or (lambda: str(uuid.uuid4()))
        self.server = EmspServer(spec=self.spec, country_code=country_code, party_id=party_id, clock=clock,
                                 new_token=new_token, page_limit=page_limit)
        self.server.on_register = self._accept_registration
        self.server.on_update = self._accept_update
        self.server.on_unregister = self._accept_unregister
        self._encode_token = encode_token
        self.http: aiohttp.ClientSession | None = None
        self.client: OcpiClient | None = None
        self.cpo_credentials: dict | None = None
        self.cpo_endpoints: dict[tuple[str, str], str] = {}

    async def __aenter__(self) -> "EmspPeer":
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    async def start(self) -> None:
        self.http = aiohttp.ClientSession()
        self.client = OcpiClient(http=self.http, spec=self.spec, new_id=self.new_id,
                                 encode_token=self._encode_token)
        try:
            await self.server.start()
        except BaseException:
            await self.http.close()
            raise

    async def close(self) -> None:
        await self.server.close()
        if self.http is not None:
            await self.http.close()
            self.http = None

    # --- registration: the eMSP starts it ------------------------------------------------
    async def register(self, versions_url: str, token_a: str) -> dict:
        """Credentials handshake with the charger's token A; afterwards the client holds token C."""
        self.client.token = token_a
        await self._discover(versions_url)
        cred_url = self.endpoint("credentials")
        token_b = self.server.new_token()
        self.server.accepted[token_b] = "party"
        seen_before = len(self.server.pushes)
        reply = await self.client.call("POST", cred_url, interface="credentials/interface", path="/credentials",
                                       body=self.server.credentials(token_b), expect_http=200)
        if reply.status_code != STATUS_OK:
            self.server.accepted.pop(token_b, None)
            raise ConformanceError(f"{reply.what}: registration refused with {reply.status_code} "
                                   f"{reply.body.get('status_message')!r}")
        fetched = [p for p in self.server.pushes[seen_before:] if p.module == "versions"]
        if not fetched:
            raise ConformanceError("charger answered POST /credentials without fetching this eMSP's versions "
                                   "and endpoints with token B (credentials module: the server must)")
        self._take_credentials(reply.data, check_token_differs=token_a)
        self.server.registered = True
        return reply.data

    async def update_credentials(self) -> dict:
        """PUT new credentials (a fresh token B); the charger answers with a fresh token C."""
        old_b = self.server.party_token()
        token_b = self.server.new_token()
        self.server.accepted[token_b] = "party"
        reply = await self.client.call("PUT", self.endpoint("credentials"), interface="credentials/interface",
                                       path="/credentials", body=self.server.credentials(token_b), expect_http=200)
        if reply.status_code != STATUS_OK:
            self.server.accepted.pop(token_b, None)
            raise ConformanceError(f"{reply.what}: update refused with {reply.status_code}")
        self.server.accepted.pop(old_b, None)
        self._take_credentials(reply.data, check_token_differs=self.client.token)
        return reply.data

    async def unregister(self) -> Reply:
        reply = await self.client.call("DELETE", self.endpoint("credentials"), interface="credentials/interface",
                                       path="/credentials", expect_http=200)
        if reply.status_code == STATUS_OK:
            self.server.registered = False
            self.server.accepted = {t: k for t, k in self.server.accepted.items() if k != "party"}
        return reply

    def _take_credentials(self, creds: dict, *, check_token_differs: str) -> None:
        if creds.get("token") == check_token_differs:
            raise ConformanceError("charger handed back the same credentials token it was called with; "
                                   "a new token must be generated")
        if not any(r.get("role") == "CPO" for r in creds.get("roles", [])):
            raise ConformanceError(f"charger credentials name no CPO role: {creds.get('roles')}")
        self.cpo_credentials = creds
        self.client.token = creds["token"]

    async def _discover(self, versions_url: str) -> None:
        reply = await self.client.call("GET", versions_url, interface="versions/interface", path="/versions",
                                       expect_http=200)
        if reply.status_code != STATUS_OK:
            raise ConformanceError(f"{reply.what}: versions refused with {reply.status_code}")
        urls = [v["url"] for v in reply.data if v.get("version") == VERSION]
        if len(urls) != 1:
            raise ConformanceError(f"{reply.what}: expected exactly one {VERSION} entry, got {reply.data}")
        details = await self.client.call("GET", urls[0], interface="versions/interface",
                                         path=f"/versions/{VERSION}", expect_http=200)
        if details.status_code != STATUS_OK or details.data.get("version") != VERSION:
            raise ConformanceError(f"{details.what}: version details for {VERSION} wrong: {details.body}")
        self.cpo_endpoints = {(e["identifier"], e["role"]): e["url"] for e in details.data["endpoints"]}
        if not any(ident == "credentials" for ident, _ in self.cpo_endpoints):
            raise ConformanceError(f"{details.what}: no credentials endpoint among {sorted(self.cpo_endpoints)}")

    def endpoint(self, identifier: str, role: str | None = None) -> str:
        for (ident, their_role), url in self.cpo_endpoints.items():
            if ident == identifier and (role is None or their_role == role):
                return url
        raise ConformanceError(f"charger offers no {identifier} endpoint"
                               f"{' with role ' + role if role else ''}: {sorted(self.cpo_endpoints)}")

    # --- registration: the charger starts it ---------------------------------------------
    def issue_registration_token(self) -> str:
        """Token A handed to the charger's operator out of band; good for versions and credentials only."""
        token = self.server.new_token()
        self.server.accepted[token] = "registration"
        return token

    async def _accept_registration(self, creds: dict) -> str:
        self.client.token = creds["token"]
        try:
            await self._discover(creds["url"])
        except (ConformanceError, aiohttp.ClientError, asyncio.TimeoutError) as exc:
            self.server._violation(f"registration: could not use the charger's API: {exc}")
            raise _Refusal(400, STATUS_UNABLE_TO_USE_CLIENT_API, f"cannot use your API: {exc}") from None
        if not any(r.get("role") == "CPO" for r in creds.get("roles", [])):
            self.server._violation(f"registration: credentials name no CPO role: {creds.get('roles')}")
        token_c = self.server.new_token()
        self.server.accepted = {t: k for t, k in self.server.accepted.items() if k != "registration"}
        self.server.accepted[token_c] = "party"
        self.server.registered = True
        self.cpo_credentials = creds
        return token_c

    async def _accept_update(self, creds: dict) -> str:
        self.client.token = creds["token"]
        try:
            await self._discover(creds["url"])
        except (ConformanceError, aiohttp.ClientError, asyncio.TimeoutError) as exc:
            self.server._violation(f"credentials update: could not use the charger's API: {exc}")
            raise _Refusal(400, STATUS_UNABLE_TO_USE_CLIENT_API, f"cannot use your API: {exc}") from None
        token_c = self.server.new_token()
        self.server.accepted = {t: k for t, k in self.server.accepted.items() if k != "party"}
        self.server.accepted[token_c] = "party"
        self.cpo_credentials = creds
        return token_c

    async def _accept_unregister(self) -> None:
        self.server.accepted = {t: k for t, k in self.server.accepted.items() if k != "party"}
        self.server.registered = False

    # --- pulling -------------------------------------------------------------------------
    async def pull(self, module: str, *, date_from_s: float | None = None, date_to_s: float | None = None,
                   limit: int | None = None) -> list:
        params = {}
        if date_from_s is not None:
            params["date_from"] = format_dt(date_from_s)
        if date_to_s is not None:
            params["date_to"] = format_dt(date_to_s)
        if limit is not None:
            params["limit"] = str(limit)
        return await self.client.pull(self.endpoint(module, "SENDER"), interface=f"{module}/sender-interface",
                                      path=f"/{module}", params=params,
                                      id_of=lambda o: (o.get("country_code"), o.get("party_id"), o.get("id")))

    async def get_location(self, *ids: str, expect_http=200) -> Reply:
        templates = ("/locations/{location_id}", "/locations/{location_id}/{evse_uid}",
                     "/locations/{location_id}/{evse_uid}/{connector_id}")
        url = self.endpoint("locations", "SENDER") + "/" + "/".join(ids)
        return await self.client.call("GET", url, interface="locations/sender-interface",
                                      path=templates[len(ids) - 1], expect_http=expect_http)

    # --- commands ------------------------------------------------------------------------
    async def command(self, name: str, body: dict, *, timeout_s: float = 10.0, wait: bool = True) -> CommandOutcome:
        """Send one command and, when the charger accepts it, wait (bounded) for its CommandResult."""
        uid = self.new_id()
        payload = dict(body)
        payload["response_url"] = f"{self.server.module_url}/commands/{name}/{uid}"
        self.server.expected_results[uid] = name
        reply = await self.client.call("POST", f"{self.endpoint('commands', 'RECEIVER')}/{name}",
                                       interface="commands/receiver-interface", path=f"/commands/{name}",
                                       body=payload)
        response = reply.data if reply.status_code == STATUS_OK else None
        outcome = CommandOutcome(name=name, uid=uid, reply=reply, response=response, result=None)
        if response is None or response.get("result") != "ACCEPTED":
            self.server.expected_results[uid] = None  # no CommandResult may follow a refusal
            return outcome
        if wait:
            bound_s = min(timeout_s, max(1, int(response.get("timeout", timeout_s))) + 1)
            results = await self.server.wait_until(lambda: self.server.command_results.get(uid), timeout_s=bound_s,
                                                   what=f"CommandResult of {name}")
            outcome.result = results[0]
        return outcome

    async def wait_result(self, outcome: CommandOutcome, *, timeout_s: float = 10.0) -> dict:
        results = await self.server.wait_until(lambda: self.server.command_results.get(outcome.uid),
                                               timeout_s=timeout_s, what=f"CommandResult of {outcome.name}")
        outcome.result = results[0]
        return outcome.result

    async def wait_until(self, predicate, *, timeout_s: float = 10.0, what: str = "condition"):
        return await self.server.wait_until(predicate, timeout_s=timeout_s, what=what)

    # --- tokens the eMSP owns ------------------------------------------------------------
    def add_token(self, uid: str, **fields) -> dict:
        return self.server.add_token(uid, **fields)

    def token_object(self, uid: str) -> dict:
        return next(t for t in self.server.tokens if t["uid"] == uid)
