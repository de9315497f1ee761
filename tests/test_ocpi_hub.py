"""The charger behind an OCPI 2.2.1 hub: two eMSPs behind one hub plus one direct eMSP.

The hub (``tests.hub_peer``) registers once with role HUB and forwards its eMSPs' requests with
``OCPI-from-*`` naming them; the charger must act for the named eMSP alone, address its
Session, CDR and command-result pushes to the eMSP they belong to, and heed what the hub says
of its parties (hubclientinfo).
"""
from __future__ import annotations

import asyncio
import base64

import aiohttp
import pytest

import tests.ocpi_harness as base
from tests.hub_peer import HubPeer
from tests.ocpi_support import start_cpo

pytestmark = base.pytestmark
schemas = base.schemas  # the official-schema validator fixture
EMX, EMY, DIRECT = ("NL", "EMX"), ("NL", "EMY"), ("IN", "EMS")
LOCATION = "in.test.site-1"


def _auth(token: str) -> str:
    return "Token " + base64.b64encode(token.encode()).decode()


def _token(ids, uid):
    return {"country_code": ids[0], "party_id": ids[1], "uid": uid, "type": "RFID",
            "contract_id": f"{ids[0]}-{ids[1]}-{uid}", "issuer": "eMSP behind the hub", "valid": True,
            "whitelist": "ALLOWED", "last_updated": "2026-01-01T00:00:00Z"}


class Rig:
    def __init__(self, cpo, base_url, charger, hub, direct, http):
        self.cpo, self.base, self.charger, self.hub, self.direct, self.http = cpo, base_url, charger, hub, direct, http
        self.direct_token = None

    def url(self, path: str) -> str:
        return f"{self.base}/2.2.1{path}"

    async def via_hub(self, method, path, sender, **kw):
        return await self.hub.call(method, self.url(path), sender=sender, **kw)

    async def start(self, sender, uid) -> str:
        """A session the eMSP ``sender`` starts through the hub; returns the charger's session id."""
        before = self.charger.n
        body = {"response_url": f"{self.hub.url}/2.2.1/commands/START_SESSION/{uid}", "token": _token(sender, uid),
                "location_id": LOCATION}
        status, reply, _ = await self.via_hub("POST", "/commands/START_SESSION", sender, body=body)
        assert status == 200 and reply["data"]["result"] == "ACCEPTED", reply
        await self.wait(lambda: self.charger.n > before and self.hub.pushes(f"commands/START_SESSION/{uid}"),
                        f"START_SESSION result for {uid}")
        return f"S{self.charger.n}"

    async def wait(self, predicate, what, timeout_s=5.0):
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not predicate():
            assert loop.time() < deadline, f"never happened: {what}; hub got {self.hub.received}"
            await self.cpo.push_once()
            await asyncio.sleep(0)  # let the command task run: a yield, not a wait for time


@pytest.fixture
async def rig(tmp_path):
    clock = base.Clock()
    charger = base.FakeCharger(clock)
    base_url, token_a, cpo = await start_cpo(charger, tmp_path, clock=clock, push_poll_s=0.05, command_timeout_s=5)
    direct = await base.FakeEmsp().start()
    http = aiohttp.ClientSession()
    try:
        async with HubPeer() as hub:
            await hub.register(f"{base_url}/versions", token_a)
            r = Rig(cpo, base_url, charger, hub, direct, http)
            token_a2 = cpo.create_token_a("direct")
            status, body, _ = await hub.call("POST", r.url("/credentials"), token=token_a2,
                                             body=direct.credentials())
            assert status == 200, body
            r.direct_token = body["data"]["token"]
            yield r
    finally:
        await http.close()
        await cpo.close()
        await direct.close()


async def test_a_hub_forwards_location_token_and_command_requests_of_the_emsps_behind_it(rig):
    status, body, _ = await rig.via_hub("GET", "/locations", EMX)
    assert status == 200 and body["status_code"] == 1000 and body["data"][0]["id"] == LOCATION, body
    token = _token(EMX, "EMX-1")
    status, body, _ = await rig.via_hub("PUT", "/tokens/NL/EMX/EMX-1", EMX, body=token, params={"type": "RFID"})
    assert status == 201 and body["status_code"] == 1000, body
    session_id = await rig.start(EMX, "EMX-1")
    assert session_id == "S1"


async def test_a_broadcast_token_put_from_the_hub_is_accepted_for_a_party_behind_it(rig):
    token = _token(EMY, "EMY-7")
    status, body, _ = await rig.hub.call("PUT", rig.url("/tokens/NL/EMY/EMY-7"), body=token, params={"type": "RFID"})
    assert status == 201 and body["status_code"] == 1000, body
    status, body, _ = await rig.via_hub("GET", "/tokens/NL/EMY/EMY-7", EMY, params={"type": "RFID"})
    assert status == 200 and body["data"]["uid"] == "EMY-7"
    # An eMSP behind the hub manages its own tokens only.
    status, body, _ = await rig.via_hub("GET", "/tokens/NL/EMY/EMY-7", EMX, params={"type": "RFID"})
    assert body["status_code"] == 2001, body


async def test_an_emsp_behind_a_hub_sees_stops_and_is_sent_only_its_own_sessions_and_cdrs(rig):
    sx = await rig.start(EMX, "X-1")
    rig.charger.charge(sx, 1000, 600)
    await rig.charger.stop_session(sx)
    sy = await rig.start(EMY, "Y-1")
    for sender, own in ((EMX, sx), (EMY, sy)):
        _, body, _ = await rig.via_hub("GET", "/sessions", sender)
        assert [s["id"] for s in body["data"]] == [own], (sender, body)
    _, body, _ = await rig.via_hub("GET", "/cdrs", EMX)
    assert [c["session_id"] for c in body["data"]] == [sx]
    _, body, _ = await rig.via_hub("GET", "/cdrs", EMY)
    assert body["data"] == []
    # The direct eMSP sees none of the hub's sessions; EMY cannot stop EMX's.
    async with rig.http.get(rig.url("/sessions"), headers={"Authorization": _auth(rig.direct_token)}) as resp:
        assert (await resp.json())["data"] == []
    stop = {"response_url": f"{rig.hub.url}/2.2.1/commands/STOP_SESSION/y", "session_id": sy}
    _, body, _ = await rig.via_hub("POST", "/commands/STOP_SESSION", EMX, body=stop)
    assert body["data"]["result"] == "UNKNOWN_SESSION"
    # Pushes through the hub name the eMSP they belong to.
    await rig.wait(lambda: rig.hub.pushes("cdrs") and len({r.path for r in rig.hub.pushes("sessions")}) == 2,
                   "the session and CDR pushes")
    for push in rig.hub.pushes("sessions"):
        assert push.to == (EMX if push.path.endswith(sx) else EMY), push
        assert push.sender == ("IN", "URJ")
    assert [p.to for p in rig.hub.pushes("cdrs")] == [EMX]
    assert {p.to for p in rig.hub.pushes("commands")} == {EMX, EMY}


async def test_location_pushes_to_a_hub_are_broadcasts_addressed_to_the_hub(rig):
    await rig.wait(lambda: rig.hub.pushes("locations"), "the initial location push")
    assert {p.to for p in rig.hub.pushes("locations")} == {rig.hub.ids}


async def test_a_party_the_hub_reports_suspended_may_not_speak_and_gets_no_pushes(rig):
    sy = await rig.start(EMY, "Y-2")
    status, body, _ = await rig.hub.client_info(*EMY, "SUSPENDED", last_updated="2026-02-01T00:00:00Z")
    assert status in (200, 201) and body["status_code"] == 1000, body
    status, body, _ = await rig.hub.call("GET", f"{rig.hub.endpoints[('hubclientinfo', 'RECEIVER')]}/NL/EMY")
    assert body["data"]["status"] == "SUSPENDED"
    status, body, _ = await rig.via_hub("GET", "/sessions", EMY)
    assert body["status_code"] == 2001 and "SUSPENDED" in body["status_message"], body
    rig.hub.received.clear()
    rig.charger.charge(sy, 500, 300)
    await rig.charger.stop_session(sy)
    await rig.cpo.push_once()
    assert not rig.hub.pushes("sessions") and not rig.hub.pushes("cdrs"), rig.hub.received
    status, body, _ = await rig.via_hub("GET", "/locations", EMX)
    assert body["status_code"] == 1000


async def test_hubclientinfo_is_taken_only_from_a_hub(rig):
    url = rig.url("/hubclientinfo/NL/EMX")
    info = {"country_code": "NL", "party_id": "EMX", "role": "EMSP", "status": "SUSPENDED",
            "last_updated": "2026-01-01T00:00:00Z"}
    async with rig.http.put(url, json=info, headers={"Authorization": _auth(rig.direct_token)}) as resp:
        assert resp.status == 403 and (await resp.json())["status_code"] == 2000
    status, body, _ = await rig.via_hub("GET", "/locations", EMX)
    assert body["status_code"] == 1000


async def test_responses_carry_the_routing_headers_back_to_the_requester(rig):
    _, _, headers = await rig.via_hub("GET", "/locations", EMX)
    assert (headers["OCPI-to-country-code"], headers["OCPI-to-party-id"]) == EMX
    assert (headers["OCPI-from-country-code"], headers["OCPI-from-party-id"]) == ("IN", "URJ")
    _, body, headers = await rig.via_hub("GET", "/locations/nowhere", EMY)
    assert body["status_code"] == 2003
    assert (headers["OCPI-to-country-code"], headers["OCPI-to-party-id"]) == EMY
    async with rig.http.get(rig.url("/locations/nowhere"),
                            headers={"Authorization": _auth(rig.direct_token)}) as resp:
        assert resp.status == 404
        assert (resp.headers["OCPI-to-country-code"], resp.headers["OCPI-to-party-id"]) == DIRECT
        assert (resp.headers["OCPI-from-country-code"], resp.headers["OCPI-from-party-id"]) == ("IN", "URJ")
    # Configuration modules carry none.
    async with rig.http.get(f"{rig.base}/versions", headers={"Authorization": _auth(rig.direct_token)}) as resp:
        assert "OCPI-to-party-id" not in resp.headers
