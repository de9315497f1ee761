"""OCPI 2.2.1 CPO side over real HTTP: handshake both ways, every module, commands, tokens, pushes.

The charger is the reference ``MemoryCharger`` (tests/memory_charger.py); the eMSP is a small aiohttp
server defined here too (it checks the tokens it receives and records what it was sent).
Every body the CPO produces is validated against the official 2.2.1 schemas.
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
from agent.service import ServiceError
from protocols.ocpi.cpo import PUSH_TOPIC
from protocols.ocpi.mapping import Renderer
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


# ---------------------------------------------------------------------------- versions and credentials
async def test_versions_and_details_list_only_served_modules(h):
    request_id = "5a0c6c1e-8f4b-4c43-9d0e-2f9a6a1b7c01"
    status, body, headers = await h.call("GET", "/versions", token=h.token_a, headers={"X-Request-ID": request_id})
    assert status == 200 and headers["X-Request-ID"] == request_id
    for v in body["data"]:
        h.schemas.check(v, "versions", "Version")
    assert body["data"] == [{"version": "2.2.1", "url": f"{h.base}/2.2.1"}]
    status, body, _ = await h.call("GET", "/2.2.1", token=h.token_a)
    h.schemas.check(body["data"], "versions", "VersionDetails")
    served = {(e["identifier"], e["role"]) for e in body["data"]["endpoints"]}
    assert ("locations", "SENDER") in served and ("commands", "RECEIVER") in served
    assert ("hubclientinfo", "RECEIVER") in served
    assert not any(i == "chargingprofiles" for i, _ in served)


async def test_registration_as_receiver_swaps_tokens_and_retires_token_a(h):
    await h.register()
    assert h.token_c and h.token_c != h.token_a
    status, body, _ = await h.call("GET", "/2.2.1/locations", token=h.token_a)
    assert status == 401
    status, body, _ = await h.call("GET", "/versions", token=h.token_a)
    assert status == 401, "token A must stop working after registration"
    status, body, _ = await h.call("GET", "/2.2.1/credentials")
    assert status == 200 and body["data"]["token"] == h.token_c
    assert body["data"]["roles"][0]["party_id"] == "URJ"
    # POST again while registered: 405, and nothing changes.
    status, body, _ = await h.call("POST", "/2.2.1/credentials", body=h.emsp.credentials())
    assert status == 405
    status, _, _ = await h.call("GET", "/2.2.1/locations")
    assert status == 200


async def test_plain_token_accepted_unknown_and_missing_rejected(h):
    await h.register()
    status, _, _ = await h.call("GET", "/2.2.1/locations", plain=True)
    assert status == 200
    status, body, _ = await h.call("GET", "/2.2.1/locations", token="nope")
    assert status == 401
    async with h.http.get(h.base + "/2.2.1/locations") as resp:
        assert resp.status == 401


async def test_put_rotates_and_delete_unregisters(h):
    await h.register()
    old = h.token_c
    status, body, _ = await h.call("PUT", "/2.2.1/credentials", body=h.emsp.credentials())
    assert status == 200 and body["data"]["token"] != old
    status, _, _ = await h.call("GET", "/2.2.1/locations", token=old)
    assert status == 401
    h.token_c = body["data"]["token"]
    status, body, _ = await h.call("DELETE", "/2.2.1/credentials")
    assert status == 200 and body["status_code"] == 1000
    status, _, _ = await h.call("GET", "/2.2.1/locations")
    assert status == 401


async def test_put_and_delete_with_token_a_are_405(h):
    status, _, _ = await h.call("PUT", "/2.2.1/credentials", token=h.token_a, body=h.emsp.credentials())
    assert status == 405
    status, _, _ = await h.call("DELETE", "/2.2.1/credentials", token=h.token_a)
    assert status == 405


@pytest.mark.parametrize("problem, code", [("version", 3002), ("endpoints", 3003), ("unreachable", 3001)])
async def test_registration_fails_with_the_code_that_names_the_problem(h, problem, code):
    creds = h.emsp.credentials()
    if problem == "version":
        h.emsp.version = "2.1.1"
    elif problem == "endpoints":
        h.emsp.with_credentials = False
    else:
        creds["url"] = "http://127.0.0.1:9/emsp/versions"
    status, body, _ = await h.call("POST", "/2.2.1/credentials", token=h.token_a, body=creds)
    assert status == 400 and body["status_code"] == code, body
    # Nothing registered; token A still works for another attempt.
    status, _, _ = await h.call("GET", "/versions", token=h.token_a)
    assert status == 200


async def test_bad_credentials_body_is_2001(h):
    status, body, _ = await h.call("POST", "/2.2.1/credentials", token=h.token_a, raw=b"{not json")
    assert status == 400 and body["status_code"] == 2001
    status, body, _ = await h.call("POST", "/2.2.1/credentials", token=h.token_a, body={"token": "x", "roles": []})
    assert status == 400 and body["status_code"] == 2001 and "url" in body["status_message"]


async def test_registration_as_initiator(h, tmp_path):
    party = await h.cpo.register(f"{h.emsp.url}/versions", h.emsp.token_a)
    assert party.state == "registered" and party.outgoing_token == h.emsp.token_b
    # The eMSP now calls us with the token we offered (B) and is known by its roles.
    status, body, _ = await h.call("GET", "/2.2.1/locations", token=h.emsp.cpo_token)
    assert status == 200 and body["data"][0]["id"] == "in.test.site-1"
    # and receives the location push.
    await h.emsp.wait_for(lambda r: r[0] == "PUT" and r[1].startswith("locations/IN/URJ/"), "a location PUT")


async def test_registrations_survive_a_restart(h, tmp_path):
    await h.register()
    from protocols.ocpi.store import OcpiStore
    from protocols.ocpi.wire import token_hash

    store = OcpiStore.open(tmp_path / "ocpi.sqlite")
    try:
        party = store.party_by_hash(token_hash(h.token_c))
        assert party is not None and party.outgoing_token == h.emsp.token_b
        assert party.endpoint("sessions", "RECEIVER").endswith("/2.2.1/sessions")
    finally:
        store.close()
    assert (tmp_path / "ocpi.sqlite").stat().st_mode & 0o777 == 0o600


# ---------------------------------------------------------------------------- locations and tariffs
async def test_location_tree_validates_and_last_updated_bubbles_up(h):
    await h.register()
    status, body, headers = await h.call("GET", "/2.2.1/locations")
    assert headers["X-Total-Count"] == "1" and headers["X-Limit"] == "50"
    loc = body["data"][0]
    h.schemas.check(loc, "locations", "Location")
    connector = loc["evses"][0]["connectors"][0]
    assert connector["standard"] == "DOMESTIC_M" and connector["power_type"] == "AC_1_PHASE"
    h.clock.now += 500
    h.charger.set_status("OUTOFORDER")
    status, body, _ = await h.call("GET", f"/2.2.1/locations/{loc['id']}")
    h.schemas.check(body["data"], "locations", "Location")
    assert body["data"]["evses"][0]["status"] == "OUTOFORDER"
    assert body["data"]["last_updated"] == body["data"]["evses"][0]["last_updated"] == \
        body["data"]["evses"][0]["connectors"][0]["last_updated"] > loc["last_updated"]
    status, body, _ = await h.call("GET", f"/2.2.1/locations/{loc['id']}/EVSE-1")
    h.schemas.check(body["data"], "locations", "EVSE")
    status, body, _ = await h.call("GET", f"/2.2.1/locations/{loc['id']}/EVSE-1/1")
    h.schemas.check(body["data"], "locations", "Connector")
    for path in ("/2.2.1/locations/nowhere", f"/2.2.1/locations/{loc['id']}/EVSE-9",
                 f"/2.2.1/locations/{loc['id']}/EVSE-1/7"):
        status, body, _ = await h.call("GET", path)
        assert status == 404 and body["status_code"] == 2003


async def test_tariffs_carry_our_party(h, schemas):
    await h.register()
    _, body, _ = await h.call("GET", "/2.2.1/tariffs")
    schemas.check(body["data"][0], "tariffs", "Tariff")
    assert body["data"][0]["country_code"] == "IN" and body["data"][0]["party_id"] == "URJ"


async def test_routing_headers_and_bad_query(h):
    await h.register()
    status, body, _ = await h.call("GET", "/2.2.1/locations", headers={
        "OCPI-from-country-code": "IN", "OCPI-from-party-id": "EMS", "OCPI-to-country-code": "IN",
        "OCPI-to-party-id": "URJ"})
    assert status == 200
    status, body, _ = await h.call("GET", "/2.2.1/locations", headers={
        "OCPI-from-country-code": "NL", "OCPI-from-party-id": "XYZ"})
    assert status == 400 and body["status_code"] == 2001 and "OCPI-from" in body["status_message"]
    status, body, _ = await h.call("GET", "/2.2.1/locations", headers={
        "OCPI-to-country-code": "IN", "OCPI-to-party-id": "ABC"})
    assert status == 400 and body["status_code"] == 2001
    status, body, _ = await h.call("GET", "/2.2.1/sessions", params={"limit": "-1"})
    assert status == 400 and body["status_code"] == 2001 and "limit" in body["status_message"]
    status, body, _ = await h.call("GET", "/2.2.1/sessions", params={"date_from": "yesterday"})
    assert status == 400 and "date_from" in body["status_message"]
    status, body, _ = await h.call("GET", "/2.2.1/nothing")
    assert status == 404


# ---------------------------------------------------------------------------- commands, sessions, CDRs
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


async def test_whole_session_by_commands_with_pushes_and_cdr(h, schemas):
    await h.register()
    start = {"response_url": f"{h.emsp.url}/2.2.1/commands/START_SESSION/c1", "token": _token(),
             "location_id": "in.test.site-1", "evse_uid": "EVSE-1", "connector_id": "1",
             "authorization_reference": "ref-1"}
    assert (await _command(h, "START_SESSION", start, schemas))["result"] == "ACCEPTED"
    result = await h.emsp.wait_for(lambda r: r[1] == "commands/START_SESSION/c1", "the START result")
    schemas.check(result[0][2], "commands", "CommandResult")
    assert result[0][2]["result"] == "ACCEPTED"
    assert h.charger.calls[0][:2] == ("start", "ocpi") and h.charger.calls[0][3] == "RFID-1"
    # Replaying the same command answers the same and does not start a second session.
    assert (await _command(h, "START_SESSION", start, schemas))["result"] == "ACCEPTED"
    assert len([c for c in h.charger.calls if c[0] == "start"]) == 1

    await h.emsp.wait_for(lambda r: r[0] == "PATCH" and r[1] == "locations/IN/URJ/in.test.site-1/EVSE-1"
                          and r[2]["status"] == "CHARGING", "the EVSE status push")
    h.charger.charge("S1", 4200, 3600)
    _, body, _ = await h.call("GET", "/2.2.1/sessions")
    session = body["data"][0]
    schemas.check(session, "sessions", "Session")
    assert session["kwh"] == 4.2 and session["status"] == "ACTIVE" and session["auth_method"] == "COMMAND"
    assert session["cdr_token"]["uid"] == "RFID-1" and session["authorization_reference"] == "ref-1"
    assert session["total_cost"]["excl_vat"] == pytest.approx(52.5)

    stop = {"response_url": f"{h.emsp.url}/2.2.1/commands/STOP_SESSION/c2", "session_id": "S1"}
    assert (await _command(h, "STOP_SESSION", stop, schemas))["result"] == "ACCEPTED"
    await h.emsp.wait_for(lambda r: r[1] == "commands/STOP_SESSION/c2" and r[2]["result"] == "ACCEPTED",
                          "the STOP result")
    cdrs = await h.emsp.wait_for(lambda r: r[0] == "POST" and r[1] == "cdrs", "the CDR push")
    cdr = cdrs[0][2]
    schemas.check(cdr, "cdrs", "CDR")
    assert cdr["total_energy"] == 4.2 and cdr["signed_data"]["encoding_method"] == "OCMF"
    assert [v["nature"] for v in cdr["signed_data"]["signed_values"]] == ["Start", "End"]
    assert cdr["total_energy_cost"]["incl_vat"] == pytest.approx(61.95)
    sessions = await h.emsp.wait_for(lambda r: r[0] == "PUT" and r[1] == "sessions/IN/URJ/S1"
                                     and r[2]["status"] == "COMPLETED", "the finished session push")
    schemas.check(sessions[-1][2], "sessions", "Session")
    _, body, _ = await h.call("GET", "/2.2.1/cdrs")
    schemas.check(body["data"][0], "cdrs", "CDR")
    # Stopping a finished session again is refused without touching the charger.
    stop2 = dict(stop, response_url=f"{h.emsp.url}/2.2.1/commands/STOP_SESSION/c3")
    assert (await _command(h, "STOP_SESSION", stop2, schemas))["result"] == "REJECTED"
    assert len([c for c in h.charger.calls if c[0] == "stop"]) == 1


async def test_start_refused_by_charger_reports_evse_occupied(h, schemas):
    await h.register()
    h.charger.refuse_with = ServiceError.OCCUPIED
    start = {"response_url": f"{h.emsp.url}/2.2.1/commands/START_SESSION/x", "token": _token(),
             "location_id": "in.test.site-1"}
    await _command(h, "START_SESSION", start, schemas)
    result = await h.emsp.wait_for(lambda r: r[1].endswith("START_SESSION/x"), "the result")
    assert result[0][2]["result"] == "EVSE_OCCUPIED"


async def test_command_input_errors(h, schemas):
    await h.register()
    status, body, _ = await h.call("POST", "/2.2.1/commands/START_SESSION", body={
        "response_url": f"{h.emsp.url}/r", "token": _token(), "location_id": "elsewhere"})
    assert status == 200 and body["status_code"] == 1000, body
    assert body["data"]["result"] == "REJECTED" and "elsewhere" in body["data"]["message"][0]["text"]
    status, body, _ = await h.call("POST", "/2.2.1/commands/START_SESSION", body={
        "response_url": f"{h.emsp.url}/r2", "location_id": "in.test.site-1"})
    assert status == 400 and body["status_code"] == 2001 and "token" in body["status_message"]
    status, body, _ = await h.call("POST", "/2.2.1/commands/SELF_DESTRUCT", body={"response_url": "http://x/y"})
    assert status == 400 and body["status_code"] == 2001
    status, body, _ = await h.call("POST", "/2.2.1/commands/STOP_SESSION", raw=b"[1, 2")
    assert status == 400 and body["status_code"] == 2001
    status, body, _ = await h.call("POST", "/2.2.1/commands/STOP_SESSION", raw=b"{" + b" " * 70000 + b"}")
    assert status == 413 and body["status_code"] == 2001
    status, body, _ = await h.call("POST", "/2.2.1/commands/CANCEL_RESERVATION", body={
        "response_url": f"{h.emsp.url}/r4", "reservation_id": "r" * 37})
    assert status == 400 and body["status_code"] == 2001 and "reservation_id" in body["status_message"]
    reply = await _command(h, "STOP_SESSION", {"response_url": f"{h.emsp.url}/r3", "session_id": "nope"}, schemas)
    assert reply["result"] == "UNKNOWN_SESSION"
    assert h.charger.calls == []


async def test_reserve_cancel_and_unlock(h, schemas):
    await h.register()
    reserve = {"response_url": f"{h.emsp.url}/2.2.1/commands/RESERVE_NOW/r1", "token": _token(),
               "expiry_date": "2026-05-28T21:00:00Z", "reservation_id": "77", "location_id": "in.test.site-1",
               "evse_uid": "EVSE-1"}
    assert (await _command(h, "RESERVE_NOW", reserve, schemas))["result"] == "ACCEPTED"
    await h.emsp.wait_for(lambda r: r[1].endswith("RESERVE_NOW/r1") and r[2]["result"] == "ACCEPTED", "reserve")
    cancel = {"response_url": f"{h.emsp.url}/2.2.1/commands/CANCEL_RESERVATION/r2", "reservation_id": "77"}
    await _command(h, "CANCEL_RESERVATION", cancel, schemas)
    await h.emsp.wait_for(lambda r: r[1].endswith("CANCEL_RESERVATION/r2") and r[2]["result"] == "ACCEPTED", "cancel")
    cancel2 = dict(cancel, response_url=f"{h.emsp.url}/2.2.1/commands/CANCEL_RESERVATION/r3")
    await _command(h, "CANCEL_RESERVATION", cancel2, schemas)
    await h.emsp.wait_for(lambda r: r[1].endswith("/r3") and r[2]["result"] == "UNKNOWN_RESERVATION", "unknown")
    unlock = {"response_url": f"{h.emsp.url}/2.2.1/commands/UNLOCK_CONNECTOR/u1", "location_id": "in.test.site-1",
              "evse_uid": "EVSE-1", "connector_id": "1"}
    await _command(h, "UNLOCK_CONNECTOR", unlock, schemas)
    await h.emsp.wait_for(lambda r: r[1].endswith("/u1") and r[2]["result"] == "NOT_SUPPORTED", "unlock result")


async def test_start_session_is_not_sent_back_to_the_emsp_for_authorization(h, schemas):
    """The eMSP sending START_SESSION has authorized the token (OCPI 2.2.1): whatever its
    whitelist, the eMSP is not asked again, and the Session keeps the command's reference."""
    await h.register()
    h.emsp.authorize_answer = "BLOCKED"  # what it would answer, were it asked
    for n, whitelist in enumerate(("NEVER", "ALLOWED_OFFLINE", "ALWAYS")):
        sid = await _start_by_command(h, f"wl-{n}", token=_token(f"APP-{n}", whitelist),
                                      authorization_reference=f"emsp-ref-{n}")
        _, body, _ = await h.call("GET", "/2.2.1/sessions")
        session = next(x for x in body["data"] if x["id"] == sid)
        schemas.check(session, "sessions", "Session")
        assert session["cdr_token"]["uid"] == f"APP-{n}" and session["auth_method"] == "COMMAND"
        assert session["authorization_reference"] == f"emsp-ref-{n}"
        await h.charger.stop_session(sid)
    assert not [r for r in h.emsp.received if r[1].startswith("tokens/")]


async def test_reserve_now_is_not_sent_back_to_the_emsp_for_authorization(h, schemas):
    await h.register()
    h.emsp.authorize_answer = "BLOCKED"
    reserve = {"response_url": f"{h.emsp.url}/2.2.1/commands/RESERVE_NOW/n1", "token": _token("APP-R", "NEVER"),
               "expiry_date": "2026-05-28T21:00:00Z", "reservation_id": "88", "location_id": "in.test.site-1",
               "authorization_reference": "emsp-ref-r"}
    assert (await _command(h, "RESERVE_NOW", reserve, schemas))["result"] == "ACCEPTED"
    result = await h.emsp.wait_for(lambda r: r[1].endswith("RESERVE_NOW/n1"), "the RESERVE_NOW result")
    assert result[0][2]["result"] == "ACCEPTED", result[0][2]
    assert [c[0] for c in h.charger.calls] == ["reserve"] and h.charger.calls[0][4] == "APP-R"
    assert not [r for r in h.emsp.received if r[1].startswith("tokens/")]


async def test_start_and_reserve_refuse_tokens_not_the_callers_or_not_valid(h, schemas):
    """An eMSP cannot start or reserve with another party's token (a session billed to someone
    else's customer), nor with a token it marks not valid; refused at once, nothing runs."""
    await h.register()
    tokens = {"another eMSP's": _token("X-1", party="OTH"),
              "another country's": {**_token("X-2"), "country_code": "NL"},
              "not valid": _token("X-3", valid=False)}
    for n, (what, token) in enumerate(tokens.items()):
        start = {"response_url": f"{h.emsp.url}/2.2.1/commands/START_SESSION/t{n}", "token": token,
                 "location_id": "in.test.site-1", "evse_uid": "EVSE-1"}
        reply = await _command(h, "START_SESSION", start, schemas)
        assert reply["result"] == "REJECTED", what
        assert token["uid"] in reply["message"][0]["text"], reply
        reserve = {"response_url": f"{h.emsp.url}/2.2.1/commands/RESERVE_NOW/t{n}", "token": token,
                   "expiry_date": "2026-05-28T21:00:00Z", "reservation_id": f"t{n}", "location_id": "in.test.site-1"}
        assert (await _command(h, "RESERVE_NOW", reserve, schemas))["result"] == "REJECTED", what
    assert h.charger.calls == []
    await h.cpo.push_once()
    assert not [r for r in h.emsp.received if r[1].startswith(("commands/", "tokens/"))], \
        "a refused command gets no CommandResult and asks nobody"


async def test_evses_advertise_unlock_only_when_the_charger_can_unlock(h, schemas):
    """This charger's sockets have no cable lock (UNLOCK_CONNECTOR ends in NOT_SUPPORTED), so its
    EVSEs must not offer an unlock button to drivers."""
    await h.register()
    _, body, _ = await h.call("GET", "/2.2.1/locations")
    evse = body["data"][0]["evses"][0]
    assert evse["capabilities"] == ["REMOTE_START_STOP_CAPABLE", "RESERVABLE"]
    able = Renderer(service=h.charger, country_code="IN", party_id="URJ", can_unlock=True)
    evse = able.evse(h.charger.connectors())
    schemas.check(evse, "locations", "EVSE")
    assert "UNLOCK_CAPABLE" in evse["capabilities"]


# ---------------------------------------------------------------------------- privacy between parties
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


async def test_each_emsp_sees_receives_and_stops_only_its_own_sessions(h, schemas):
    """Roaming partners are competitors: sessions the site started itself (free vend, its
    allow-list cards, network customers) and another eMSP's sessions are never listed, pushed or
    stoppable, and a STOP_SESSION for one is answered exactly as for an unknown id."""
    await h.register()
    other, other_token = await _second_emsp(h)
    try:
        async def stop(caller_token, emsp, session_id):
            body = {"response_url": f"{emsp.url}/2.2.1/commands/STOP_SESSION/{session_id}", "session_id": session_id}
            return await _command(h, "STOP_SESSION", body, schemas, token=caller_token)

        ours = await _start_by_command(h, "ours")
        unknown = await stop(other_token, other, "S99")
        foreign = await stop(other_token, other, ours)
        assert foreign["result"] == unknown["result"] == "UNKNOWN_SESSION"
        assert foreign["message"][0]["text"].replace(ours, "S99") == unknown["message"][0]["text"]
        h.charger.charge(ours, 2000, 600)
        await h.charger.stop_session(ours)

        site_own = []
        for source, reference, uid in (("free_vend", "free-1", None), ("allow_list", "token-CARD-L", "CARD-L"),
                                       ("contract", "order-1", None)):
            s = await h.charger.start_session(source=source, reference=reference, token=uid)
            site_own.append(s.session_id)
            for caller_token, emsp in ((None, h.emsp), (other_token, other)):
                assert (await stop(caller_token, emsp, s.session_id))["result"] == "UNKNOWN_SESSION", source
            h.charger.charge(s.session_id, 1000, 600)
            await h.charger.stop_session(s.session_id)

        # A card of the second eMSP shown at the charger: that eMSP's session, not ours.
        status, _, _ = await h.call("PUT", "/2.2.1/tokens/IN/OTH/CARD-2", token=other_token,
                                    body=_token("CARD-2", party="OTH"))
        assert status == 201
        decision = await h.cpo.authorize("CARD-2")
        assert decision.allowed
        h.cpo.remember_authorization("card-2", decision)
        theirs = (await h.charger.start_session(source="ocpi", reference="card-2", token="CARD-2")).session_id
        assert (await stop(None, h.emsp, theirs))["result"] == "UNKNOWN_SESSION"
        h.charger.charge(theirs, 1000, 600)
        await h.charger.stop_session(theirs)
        assert [c[1] for c in h.charger.calls if c[0] == "stop"] == [ours, *site_own, theirs], \
            "only the charger's own stops ran"

        for caller_token, expected in ((None, ours), (other_token, theirs)):
            _, body, headers = await h.call("GET", "/2.2.1/sessions", token=caller_token)
            assert [x["id"] for x in body["data"]] == [expected] and headers["X-Total-Count"] == "1"
            _, body, headers = await h.call("GET", "/2.2.1/cdrs", token=caller_token)
            assert [c["session_id"] for c in body["data"]] == [expected] and headers["X-Total-Count"] == "1"

        await h.cpo.push_once()
        assert h.cpo.outbox.pending_count() == 0
        assert _sessions_pushed(h.emsp) == _cdrs_pushed(h.emsp) == {ours}
        assert _sessions_pushed(other) == _cdrs_pushed(other) == {theirs}
        # The EVSE's status is everyone's: it says the socket is busy, not whose session it is.
        # (A push carries the status at delivery, so how many CHARGING arrive depends on timing;
        # the first did arrive before the START result, queued after it.)
        for emsp in (h.emsp, other):
            statuses = [r[2]["status"] for r in emsp.received if r[0] == "PATCH" and r[1].startswith("locations/")]
            assert "CHARGING" in statuses and statuses[-1] == "AVAILABLE", statuses
    finally:
        await other.close()


async def test_a_queued_push_of_a_session_not_the_partys_is_dropped_at_delivery(h):
    """The outbox outlives the process: a Session or CDR push queued for the wrong eMSP (as an
    older version queued the site's own sessions for everyone) is dropped, not delivered."""
    await h.register()
    await h.emsp.wait_for(lambda r: r[0] == "PUT", "the initial location push")
    local = await h.charger.start_session(source="free_vend", reference="free-1")
    await h.charger.stop_session(local.session_id)
    (party,) = h.cpo.store.parties()
    session = h.cpo.render.session(local)
    cdr = h.cpo.render.cdr(local, h.charger.receipt(local.session_id))
    for kind, object_id, snapshot in (("session", local.session_id, session), ("cdr", cdr["id"], cdr)):
        h.cpo.outbox.enqueue(PUSH_TOPIC, json.dumps({"party": party.pk, "kind": kind, "id": object_id,
                                                     "snapshot": snapshot}))
    await h.cpo.push_once()
    assert h.cpo.outbox.pending_count() == 0
    assert _sessions_pushed(h.emsp) == set() and _cdrs_pushed(h.emsp) == set()


# ---------------------------------------------------------------------------- tokens
async def test_token_put_patch_get(h, schemas):
    await h.register()
    path = "/2.2.1/tokens/IN/EMS/RFID-9"
    status, body, _ = await h.call("PUT", path, body=_token("RFID-9"))
    assert status == 201 and body["status_code"] == 1000
    status, body, _ = await h.call("PUT", path, body=_token("RFID-9"))
    assert status == 200
    status, body, _ = await h.call("PATCH", path, body={"valid": False, "last_updated": "2026-01-02T00:00:00Z"})
    assert status == 200
    status, body, _ = await h.call("GET", path)
    schemas.check(body["data"], "tokens", "Token")
    assert body["data"]["valid"] is False
    status, body, _ = await h.call("GET", "/2.2.1/tokens/IN/EMS/NOPE")
    assert status == 404 and body["status_code"] == 2004
    status, body, _ = await h.call("PATCH", "/2.2.1/tokens/IN/EMS/NOPE", body={"last_updated": "2026-01-02T00:00:00Z"})
    assert status == 404 and body["status_code"] == 2004
    status, body, _ = await h.call("PUT", "/2.2.1/tokens/NL/ABC/X", body=_token("X"))
    assert status == 400 and body["status_code"] == 2001
    status, body, _ = await h.call("PUT", path, body={**_token("RFID-9"), "whitelist": "SOMETIMES"})
    assert status == 400 and "whitelist" in body["status_message"]
    status, body, _ = await h.call("GET", path)
    assert body["data"]["valid"] is False, "a refused PUT must not change the token"


async def test_whitelist_semantics_and_real_time_authorization(h):
    await h.register()
    for uid, whitelist in (("ALW", "ALWAYS"), ("OFF", "ALLOWED_OFFLINE"), ("NEV", "NEVER")):
        status, _, _ = await h.call("PUT", f"/2.2.1/tokens/IN/EMS/{uid}", body=_token(uid, whitelist))
        assert status == 201
    assert (await h.cpo.authorize("ALW")).allowed
    assert not [r for r in h.emsp.received if r[1].startswith("tokens")]
    decision = await h.cpo.authorize("NEV", evse_uid="EVSE-1")
    assert decision.allowed and decision.authorization_reference == "auth-ref-1"
    ask = h.emsp.received[-1]
    assert ask[1] == "tokens/NEV/authorize" and ask[3] == {"type": "RFID"} and ask[2]["evse_uids"] == ["EVSE-1"]
    # A local start after that decision carries the eMSP's token and authorization reference.
    h.cpo.remember_authorization("card-start-1", decision)
    s = await h.charger.start_session(source="allow_list", reference="card-start-1", token="NEV")
    _, body, _ = await h.call("GET", "/2.2.1/sessions")
    mine = [x for x in body["data"] if x["id"] == s.session_id][0]
    assert mine["cdr_token"]["uid"] == "NEV" and mine["auth_method"] == "AUTH_REQUEST"
    assert mine["authorization_reference"] == "auth-ref-1"
    await h.charger.stop_session(s.session_id)
    h.emsp.authorize_answer = "BLOCKED"
    assert not (await h.cpo.authorize("NEV")).allowed
    assert not (await h.cpo.authorize("UNKNOWN")).allowed
    # eMSP down: ALLOWED_OFFLINE falls back to allowed, NEVER is refused.
    await h.emsp.close()
    assert (await h.cpo.authorize("OFF")).allowed
    assert not (await h.cpo.authorize("NEV")).allowed
    await h.emsp.start()  # so the fixture can close it


# ---------------------------------------------------------------------------- pagination and pushes
async def test_pagination_links_and_date_filters(h, schemas):
    await h.register()
    for i in range(5):
        h.clock.now += 10
        await h.charger.stop_session(await _start_by_command(h, f"page-{i}"))
    # The site's own sessions in between are not the eMSP's: they are neither counted nor listed.
    local = await h.charger.start_session(source="free_vend", reference="local")
    await h.charger.stop_session(local.session_id)
    seen, url = [], "/2.2.1/sessions?limit=2"
    while url:
        status, body, headers = await h.call("GET", url)
        assert headers["X-Total-Count"] == "5" and headers["X-Limit"] == "2"
        for item in body["data"]:
            schemas.check(item, "sessions", "Session")
        seen += [s["id"] for s in body["data"]]
        link = headers.get("Link")
        url = link[1:link.index(">")] if link else None
        assert link is None or 'rel="next"' in link
    assert seen == ["S1", "S2", "S3", "S4", "S5"]
    _, body, headers = await h.call("GET", "/2.2.1/sessions", params={
        "date_from": "2026-05-28T20:27:00Z", "date_to": "2026-05-28T20:27:30Z"})
    assert [s["id"] for s in body["data"]] == ["S2", "S3", "S4"]
    _, body, headers = await h.call("GET", "/2.2.1/cdrs", params={"offset": "3", "limit": "10"})
    assert headers["X-Total-Count"] == "5" and len(body["data"]) == 2 and "Link" not in headers


async def test_pushes_retry_with_backoff_and_survive_outage(h):
    await h.register()
    await h.emsp.wait_for(lambda r: r[0] == "PUT", "the initial location push")
    await h.cpo.push_once()
    assert h.cpo.outbox.pending_count() == 0
    h.emsp.fail_pushes = 2
    h.charger.set_status("OUTOFORDER")
    await h.emsp.wait_for(lambda r: r[0] == "PATCH", "a first attempt")
    assert h.cpo.outbox.pending_count() >= 1
    # Backoff: the next attempt is due only later on the charger's clock.
    assert await h.cpo.push_once() == 0
    for _ in range(2):
        h.clock.now += 700
        await h.cpo.push_once()
    patches = [r for r in h.emsp.received if r[0] == "PATCH"]
    assert len(patches) == 3 and patches[-1][2]["status"] == "OUTOFORDER"
    assert h.cpo.outbox.pending_count() == 0


async def test_running_session_progress_is_pushed_without_notifications(h, schemas):
    """The facade announces state changes only; kWh of a running session still reach the eMSP."""
    await h.register()
    sid = await _start_by_command(h, "progress")
    await h.emsp.wait_for(lambda r: r[1] == f"sessions/IN/URJ/{sid}", "the first session push")
    h.charger.charge(sid, 1500, 30, notify=False)
    h.clock.now += 61
    pushes = await h.emsp.wait_for(lambda r: r[1] == f"sessions/IN/URJ/{sid}" and r[2]["kwh"] == 1.5,
                                   "a session push with 1.5 kWh")
    schemas.check(pushes[0][2], "sessions", "Session")


async def test_stop_of_unknown_session_when_the_facade_raises(h, schemas):
    """Regression: the runtime raises the journal's UnknownSession for unknown ids; that is a
    CommandResponse UNKNOWN_SESSION, not an HTTP 500."""
    from agent.journal import UnknownSession

    await h.register()

    def session(session_id):
        raise UnknownSession(f"unknown session {session_id!r}")

    h.charger.session = session
    reply = await _command(h, "STOP_SESSION", {"response_url": f"{h.emsp.url}/r", "session_id": "zzz"}, schemas)
    assert reply["result"] == "UNKNOWN_SESSION"


async def test_party_registered_beside_the_agent_gets_its_location_before_any_patch(h):
    """Regression: a party registered by ``urja ocpi register`` while the agent ran was sent an
    EVSE PATCH before the Location PUT that tells it the EVSE exists."""
    await h.register()
    await h.emsp.wait_for(lambda r: r[0] == "PUT", "the initial location push")
    await h.cpo.push_once()
    # As the CLI leaves it: the party is in the store, this process has not greeted it yet.
    h.cpo._known_parties.clear()
    h.emsp.received.clear()
    h.charger.set_status("OUTOFORDER")
    await h.emsp.wait_for(lambda r: r[0] == "PATCH", "the status PATCH")
    methods = [r[0] for r in h.emsp.received]
    assert "PUT" in methods and methods.index("PUT") < methods.index("PATCH"), methods


async def test_an_emsp_that_registers_again_keeps_its_sessions(h):
    await h.register()
    (party,) = h.cpo.store.parties()
    h.cpo.store.add_session_ref("order-77", owner_pk=party.pk, auth_method="COMMAND", authorization_reference=None,
                                now_s=h.clock(), cdr_token={"country_code": "IN", "party_id": "EMS", "uid": "RFID-1",
                                                            "type": "RFID", "contract_id": "IN-EMS-RFID-1"})
    s = await h.charger.start_session(source="ocpi", reference="order-77", token="RFID-1")
    _, body, _ = await h.call("GET", "/2.2.1/sessions")
    assert [x["id"] for x in body["data"]] == [s.session_id]
    # Registering again is proven with the current credentials (PUT), never claimed with a token A.
    token_a = h.cpo.create_token_a("again")
    status, body, _ = await h.call("POST", "/2.2.1/credentials", token=token_a, body=h.emsp.credentials())
    assert status == 405 and body["status_code"] == 2000, body
    status, body, _ = await h.call("PUT", "/2.2.1/credentials", body=h.emsp.credentials())
    assert status == 200, body
    h.token_c = body["data"]["token"]
    assert len(h.cpo.store.parties()) == 1
    _, body, _ = await h.call("GET", "/2.2.1/sessions")
    assert [x["id"] for x in body["data"]] == [s.session_id]
