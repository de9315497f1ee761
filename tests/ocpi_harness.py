"""The OCPI CPO test harness: the CPO served over real HTTP beside a small eMSP, with the 2.2.1 schemas.

The charger is the reference ``MemoryCharger`` (tests/memory_charger.py); the eMSP is a small aiohttp
server defined here (it checks the tokens it receives and records what it was sent). Every body the
CPO produces is validated against the official 2.2.1 schemas. Shared by the OCPI test files.
"""
from __future__ import annotations

import asyncio
import base64
import json
from pathlib import Path

import aiohttp
import pytest
import yaml
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ed25519

from agent.config import Place, SiteConfig
from protocols.signing.keys import Ed25519Signer
from tests.memory_charger import MemoryCharger, socket_connector
from tests.ocpi_support import start_cpo

SPECS = Path(__file__).resolve().parents[1].parent / "shared" / "specs" / "ocpi-2.2.1"

pytestmark = pytest.mark.skipif(not SPECS.is_dir(), reason=f"OCPI 2.2.1 specs not found at {SPECS}")

T0 = 1_780_000_000.0
TARIFF = {"country_code": "IN", "party_id": "URJ", "id": "t1", "currency": "INR",
          "elements": [{"price_components": [{"type": "ENERGY", "price": 12.5, "vat": 18.0, "step_size": 1}]}],
          "last_updated": "2026-01-01T00:00:00Z"}


# ---------------------------------------------------------------------------- schema validation
class Schemas:
    def __init__(self):
        from jsonschema import Draft202012Validator
        from referencing import Registry, Resource
        from referencing.jsonschema import DRAFT202012

        resources = []
        for path in SPECS.rglob("*.yaml"):
            resources.append((path.resolve().as_uri(),
                              Resource.from_contents(yaml.safe_load(path.read_text()), default_specification=DRAFT202012)))
        self.registry = Registry().with_resources(resources)
        self.validator_cls = Draft202012Validator

    def check(self, instance, module: str, name: str, *, file: str = "schema.yaml"):
        uri = (SPECS / module / file).resolve().as_uri() if module == "components" else \
            (SPECS / "modules" / module / file).resolve().as_uri()
        validator = self.validator_cls({"$ref": f"{uri}#/components/schemas/{name}"}, registry=self.registry)
        errors = sorted(validator.iter_errors(instance), key=lambda e: list(e.path))
        assert not errors, f"{module}/{name}: " + "; ".join(f"{list(e.path)}: {e.message}" for e in errors[:5])

    def envelope(self, body):
        uri = (SPECS / "components" / "schema.yaml").resolve().as_uri()
        self.check(body, "components", "OCPIResponse")
        assert isinstance(body["status_code"], int) and "timestamp" in body
        validator = self.validator_cls({"$ref": f"{uri}#/components/schemas/StatusCode"}, registry=self.registry)
        assert not list(validator.iter_errors(body["status_code"])), body


@pytest.fixture(scope="module")
def schemas():
    return Schemas()


# ---------------------------------------------------------------------------- the charger
class Clock:
    def __init__(self):
        self.now = T0

    def __call__(self):
        return self.now


class FakeCharger(MemoryCharger):
    """The reference charger with one socket-outlet EVSE; its charges move the test's clock."""

    def __init__(self, clock: Clock):
        site = SiteConfig(site_id="in.test.site-1", name="Koramangala Socket", operator="Test Owner",
                          phone="", email="", journal_path="/tmp/j.sqlite",
                          place=Place(lat=12.9352, lon=77.6245, address="80 Feet Road", city="Bengaluru",
                                      state="Karnataka", postal_code="560034", country="IND",
                                      timezone="Asia/Kolkata"), extra={})
        signer = Ed25519Signer(subscriber_id="in.test.site-1", key_id="r1",
                               private_key=ed25519.Ed25519PrivateKey.from_private_bytes(bytes([4]) * 32))
        super().__init__(site=site, clock=clock, tariff=TARIFF, receipt_signer=signer,
                         connectors=[socket_connector("1", evse_uid="EVSE-1", standard="IS_1293", max_current_a=16,
                                                      now_s=T0 - 100)])

    @property
    def n(self) -> int:
        """Sessions started so far (the last one is ``S{n}``)."""
        return len(self._sessions)

    def charge(self, session_id, energy_wh, duration_s, *, notify=True):
        self.clock.now += duration_s
        return super().charge(session_id, energy_wh, duration_s, notify=notify)


# ---------------------------------------------------------------------------- the eMSP
def _token_of(request) -> str | None:
    header = request.headers.get("Authorization", "")
    if not header.startswith("Token "):
        return None
    return base64.b64decode(header[6:]).decode()


class FakeEmsp:
    """Just enough of an eMSP: versions, credentials, receivers, authorize, command results."""

    def __init__(self, *, party_id="EMS", version="2.2.1", with_credentials=True):
        self.party_id = party_id
        self.version = version
        self.with_credentials = with_credentials
        self.verify_callback = True
        self.token_b = f"emsp-token-b-{party_id}"       # what the CPO must use to call us
        self.token_a = f"emsp-token-a-{party_id}"       # what we hand out when the CPO registers with us
        self.cpo_token = None                           # what we use to call the CPO
        self.received = []
        self.fail_pushes = 0
        self.authorize_answer = "ALLOWED"
        self.changed = asyncio.Event()
        self.runner = None
        self.url = None

    def roles(self):
        return [{"role": "EMSP", "business_details": {"name": "Test eMSP"}, "party_id": self.party_id,
                 "country_code": "IN"}]

    def credentials(self):
        return {"token": self.token_b, "url": f"{self.url}/versions", "roles": self.roles()}

    async def start(self):
        app = web.Application()
        app.router.add_route("*", "/emsp/{tail:.*}", self._handle)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]
        self.url = f"http://127.0.0.1:{port}/emsp"
        return self

    async def close(self):
        await self.runner.cleanup()

    @staticmethod
    def ok(data=None, status=200, code=1000):
        body = {"status_code": code, "timestamp": "2026-01-01T00:00:00Z"}
        if data is not None:
            body["data"] = data
        return web.json_response(body, status=status)

    async def _handle(self, request):
        tail = request.match_info["tail"]
        token = _token_of(request)
        allowed = {self.token_b, self.token_a}
        if token not in allowed:
            return self.ok(status=401, code=2000)
        if tail == "versions":
            return self.ok([{"version": self.version, "url": f"{self.url}/2.2.1"}])
        if tail == "2.2.1":
            eps = [("locations", "RECEIVER"), ("sessions", "RECEIVER"), ("cdrs", "RECEIVER"), ("tokens", "SENDER"),
                   ("commands", "SENDER")]
            if self.with_credentials:
                eps.append(("credentials", "RECEIVER"))
            return self.ok({"version": "2.2.1", "endpoints": [
                {"identifier": i, "role": r, "url": f"{self.url}/2.2.1/{i}"} for i, r in eps]})
        if tail == "2.2.1/credentials" and request.method == "POST":
            if token != self.token_a:
                return self.ok(status=405, code=2000)
            creds = await request.json()
            if self.verify_callback:
                # Check the CPO's token B works before answering, as a real eMSP does.
                async with aiohttp.ClientSession() as http:
                    async with http.get(creds["url"], headers={"Authorization": "Token " + base64.b64encode(
                            creds["token"].encode()).decode()}) as resp:
                        assert resp.status == 200, await resp.text()
            self.cpo_token = creds["token"]
            self.token_a = None
            return self.ok(self.credentials())
        body = await request.json() if request.can_read_body else None
        tail = tail.removeprefix("2.2.1/")
        self.received.append((request.method, tail, body, dict(request.query)))
        self.changed.set()
        if tail.startswith(("locations", "sessions", "cdrs")) and self.fail_pushes > 0:
            self.fail_pushes -= 1
            return self.ok(status=503, code=3000)
        if tail.startswith("tokens/") and tail.endswith("/authorize"):
            uid = tail.split("/")[1]
            return self.ok({"allowed": self.authorize_answer, "authorization_reference": "auth-ref-1",
                            "token": {"uid": uid}})
        return self.ok(status=201 if request.method == "POST" else 200)

    async def wait_for(self, predicate, what, timeout_s=5.0):
        async def loop():
            while True:
                found = [r for r in self.received if predicate(r)]
                if found:
                    return found
                self.changed.clear()
                await self.changed.wait()
        try:
            return await asyncio.wait_for(loop(), timeout_s)
        except asyncio.TimeoutError:
            raise AssertionError(f"eMSP never received {what}; got {[r[:2] for r in self.received]}") from None


# ---------------------------------------------------------------------------- fixtures
class Harness:
    def __init__(self, base, token_a, cpo, charger, emsp, http, schemas, clock):
        self.base, self.token_a, self.cpo, self.charger, self.emsp = base, token_a, cpo, charger, emsp
        self.http, self.schemas, self.clock = http, schemas, clock
        self.token_c = None

    async def call(self, method, path, *, token=None, body=None, raw=None, headers=None, plain=False, params=None):
        token = token if token is not None else self.token_c
        h = dict(headers or {})
        if token:
            h["Authorization"] = "Token " + (token if plain else base64.b64encode(token.encode()).decode())
        url = path if path.startswith("http") else self.base + path
        data = raw if raw is not None else (json.dumps(body).encode() if body is not None else None)
        async with self.http.request(method, url, data=data, headers=h, params=params) as resp:
            payload = await resp.json(content_type=None)
            self.schemas.envelope(payload)
            assert resp.headers.get("X-Request-ID") and resp.headers.get("X-Correlation-ID")
            return resp.status, payload, resp.headers

    async def register(self):
        status, body, _ = await self.call("POST", "/2.2.1/credentials", token=self.token_a,
                                          body=self.emsp.credentials())
        assert status == 200 and body["status_code"] == 1000, body
        self.schemas.check(body["data"], "credentials", "Credentials")
        self.token_c = body["data"]["token"]
        return body


@pytest.fixture
async def h(tmp_path, schemas):
    clock = Clock()
    charger = FakeCharger(clock)
    emsp = await FakeEmsp().start()
    counter = iter(range(1, 1_000_000))
    base, token_a, cpo = await start_cpo(charger, tmp_path, clock=clock, new_id=lambda: f"id-{next(counter)}",
                                         push_poll_s=0.05, command_timeout_s=5)
    http = aiohttp.ClientSession()
    harness = Harness(base, token_a, cpo, charger, emsp, http, schemas, clock)
    try:
        yield harness
    finally:
        await http.close()
        await cpo.close()
        await emsp.close()


# ---------------------------------------------------------------------------- helpers

def _token(uid="RFID-1", whitelist="ALLOWED", valid=True, party="EMS"):
    return {"country_code": "IN", "party_id": party, "uid": uid, "type": "RFID", "contract_id": f"IN-EMS-{uid}",
            "issuer": "Test eMSP", "valid": valid, "whitelist": whitelist, "last_updated": "2026-01-01T00:00:00Z"}


async def _command(h, name, body, schemas, *, token=None):
    status, reply, _ = await h.call("POST", f"/2.2.1/commands/{name}", body=body, token=token)
    assert status == 200, reply
    schemas.check(reply["data"], "commands", "CommandResponse")
    return reply["data"]


async def _start_by_command(h, tag, *, token=None, **extra):
    """A session the eMSP starts with START_SESSION (so it is that eMSP's); returns its id."""
    start = {"response_url": f"{h.emsp.url}/2.2.1/commands/START_SESSION/{tag}", "token": token or _token(),
             "location_id": "in.test.site-1", **extra}
    assert (await _command(h, "START_SESSION", start, h.schemas))["result"] == "ACCEPTED"
    result = await h.emsp.wait_for(lambda r: r[1] == f"commands/START_SESSION/{tag}", f"the START result {tag}")
    assert result[0][2]["result"] == "ACCEPTED", result[0][2]
    return f"S{h.charger.n}"


async def _second_emsp(h, party_id="OTH"):
    """Another eMSP registered with the same charger: (its FakeEmsp, its token for calling us)."""
    other = await FakeEmsp(party_id=party_id).start()
    status, body, _ = await h.call("POST", "/2.2.1/credentials", token=h.cpo.create_token_a(party_id),
                                   body=other.credentials())
    assert status == 200, body
    return other, body["data"]["token"]


def _sessions_pushed(emsp) -> set:
    return {r[1].rsplit("/", 1)[1] for r in emsp.received if r[0] == "PUT" and r[1].startswith("sessions/")}


def _cdrs_pushed(emsp) -> set:
    return {r[2]["session_id"] for r in emsp.received if r[0] == "POST" and r[1] == "cdrs"}
