"""An OCPI 2.2.1 hub on a real socket, for testing the charger behind (and in front of) a hub.

Written from the specification's hub rules, sharing no code with ``protocols.ocpi``: the hub
registers with the charger under one credentials object with role HUB, forwards requests of
the eMSPs connected to it with ``OCPI-from-*`` naming the eMSP and ``OCPI-to-*`` the charger,
and receives the charger's pushes, recording the routing headers each carried so tests can
check where the charger addressed them. ``client_info`` pushes what the hub knows of the
parties behind it (hubclientinfo).
"""
from __future__ import annotations

import base64
import uuid

import aiohttp
from aiohttp import web

VERSION = "2.2.1"
ROUTING = ("OCPI-to-country-code", "OCPI-to-party-id", "OCPI-from-country-code", "OCPI-from-party-id")


def _ok(data=None, status=200, code=1000):
    body = {"status_code": code, "timestamp": "2026-01-01T00:00:00Z"}
    if data is not None:
        body["data"] = data
    return web.json_response(body, status=status)


class Received:
    """One request the charger made to the hub, with its routing headers."""

    __slots__ = ("method", "path", "body", "to", "sender")

    def __init__(self, method, path, body, headers):
        self.method, self.path, self.body = method, path, body
        self.to = (headers.get("OCPI-to-country-code"), headers.get("OCPI-to-party-id"))
        self.sender = (headers.get("OCPI-from-country-code"), headers.get("OCPI-from-party-id"))

    def __repr__(self):
        return f"Received({self.method} {self.path} to={self.to})"


class HubPeer:
    """``async with HubPeer() as hub``; ``await hub.register(versions_url, token_a)``."""

    def __init__(self, *, country_code: str = "NL", party_id: str = "HUB"):
        self.ids = (country_code, party_id)
        self.token_b = f"hub-token-b-{uuid.uuid4()}"  # what the charger uses to call the hub
        self.token_c = None                           # what the hub uses to call the charger
        self.received: list[Received] = []
        self.authorize_answers: dict[str, object] = {}  # uid -> data of the AuthorizationInfo reply
        self.url = None
        self._runner = None
        self._http = None
        self.endpoints: dict = {}

    async def __aenter__(self):
        app = web.Application()
        app.router.add_route("*", "/hub/{tail:.*}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/hub"
        self._http = aiohttp.ClientSession()
        return self

    async def __aexit__(self, *exc):
        await self._http.close()
        await self._runner.cleanup()

    def credentials(self) -> dict:
        return {"token": self.token_b, "url": f"{self.url}/versions", "roles": [
            {"role": "HUB", "country_code": self.ids[0], "party_id": self.ids[1],
             "business_details": {"name": "Test Hub"}}]}

    # --- the hub's server half ----------------------------------------------------------------
    async def _handle(self, request):
        header = request.headers.get("Authorization", "")
        if header != "Token " + base64.b64encode(self.token_b.encode()).decode():
            return _ok(status=401, code=2000)
        tail = request.match_info["tail"]
        if tail == "versions":
            return _ok([{"version": VERSION, "url": f"{self.url}/{VERSION}"}])
        if tail == VERSION:
            eps = [("credentials", "RECEIVER"), ("locations", "RECEIVER"), ("sessions", "RECEIVER"),
                   ("cdrs", "RECEIVER"), ("tokens", "SENDER"), ("commands", "SENDER")]
            return _ok({"version": VERSION, "endpoints": [
                {"identifier": i, "role": r, "url": f"{self.url}/{VERSION}/{i}"} for i, r in eps]})
        body = await request.json() if request.can_read_body else None
        self.received.append(Received(request.method, tail.removeprefix(f"{VERSION}/"), body, request.headers))
        if tail.endswith("/authorize"):
            uid = tail.split("/")[-2]
            return _ok(self.authorize_answers.get(uid, {"allowed": "ALLOWED", "token": {"uid": uid}}))
        return _ok(status=201 if request.method == "POST" else 200)

    def pushes(self, module: str) -> list[Received]:
        return [r for r in self.received if r.path.startswith(module)]

    # --- the hub's client half ----------------------------------------------------------------
    def _headers(self, token, sender=None, to=None) -> dict:
        h = {"Authorization": "Token " + base64.b64encode(token.encode()).decode(),
             "X-Request-ID": str(uuid.uuid4()), "X-Correlation-ID": str(uuid.uuid4())}
        if sender is not None:
            h["OCPI-from-country-code"], h["OCPI-from-party-id"] = sender
        if to is not None:
            h["OCPI-to-country-code"], h["OCPI-to-party-id"] = to
        return h

    async def call(self, method, url, *, sender=None, to=None, body=None, params=None, token=None):
        """One request to the charger, as forwarded for ``sender`` (None: the hub itself)."""
        async with self._http.request(method, url, json=body, params=params,
                                      headers=self._headers(token or self.token_c, sender, to)) as resp:
            return resp.status, await resp.json(content_type=None), resp.headers

    async def register(self, versions_url: str, token_a: str) -> dict:
        status, versions, _ = await self.call("GET", versions_url, token=token_a)
        (details_url,) = [v["url"] for v in versions["data"] if v["version"] == VERSION]
        _, details, _ = await self.call("GET", details_url, token=token_a)
        self.endpoints = {(e["identifier"], e["role"]): e["url"] for e in details["data"]["endpoints"]}
        status, body, _ = await self.call("POST", self.endpoints[("credentials", "SENDER")], token=token_a,
                                          body=self.credentials())
        assert status == 200 and body["status_code"] == 1000, body
        self.token_c = body["data"]["token"]
        return body["data"]

    async def client_info(self, country_code, party_id, status, *, role="EMSP",
                          last_updated="2026-01-01T00:00:00Z"):
        url = f"{self.endpoints[('hubclientinfo', 'RECEIVER')]}/{country_code}/{party_id}"
        return await self.call("PUT", url, body={"country_code": country_code, "party_id": party_id,
                                                 "role": role, "status": status, "last_updated": last_updated})
