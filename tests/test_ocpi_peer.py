"""The charger's OCPI 2.2.1 CPO side, driven from outside by an independent eMSP.

The charger is the real runtime on the simulated board (a pymodbus-served meter, a simulated
contactor and car); the eMSP (``tests.emsp_peer``) shares no code with ``protocols.ocpi`` and
checks every message against the official OpenAPI files. Each test ends by asserting that the
eMSP saw no violation and no unauthorized call.
"""
from __future__ import annotations

import asyncio
import itertools
import sys
from pathlib import Path

import pytest

from tests.emsp_peer.schemas import SPECS_DIR

if not (SPECS_DIR / "ocpi-2.2.1").is_dir():
    pytest.skip(f"OCPI specs folder missing: {SPECS_DIR / 'ocpi-2.2.1'}", allow_module_level=True)

from agent.bootstrap import open_runtime  # noqa: E402
from agent.clock import Clock  # noqa: E402
from agent.config import utc_offset_s  # noqa: E402
from agent.core.tariff import Period, price_periods  # noqa: E402
from protocols.ocpi.errors import OcpiError  # noqa: E402
from tests.emsp_peer import EmspPeer  # noqa: E402
from tests.emsp_peer.wire import format_dt, parse_dt  # noqa: E402
from tests.ocpi_support import start_cpo  # noqa: E402
from tests.support import sim_config, wait_until  # noqa: E402

SPEED = 20  # simulated seconds per real second: a few minutes of charging in a few real seconds


class Charger:
    def __init__(self, rt, cpo, versions_url, token_a):
        self.rt, self.cpo, self.versions_url, self.token_a = rt, cpo, versions_url, token_a

    @property
    def car(self):
        return self.rt.board.sim.car


@pytest.fixture
async def charger(tmp_path):
    cfg = sim_config(tmp_path, auth="network")
    async with open_runtime(cfg, clock=Clock(speed=SPEED)) as rt:
        base_url, token_a, cpo = await start_cpo(rt, tmp_path, clock=rt.now_s, push_retry_base_s=1.0,
                                                 push_retry_max_s=4.0, push_poll_s=0.05)
        try:
            yield Charger(rt, cpo, base_url + "/versions", token_a)
        finally:
            await cpo.close()


def _ids(prefix):
    counter = itertools.count(1)
    return lambda: f"{prefix}-{next(counter):04d}"


@pytest.fixture
async def peer():
    async with EmspPeer(new_token=_ids("emsp-token")) as p:
        yield p
        assert p.server.violations == [], p.server.violations
        assert p.server.unauthorized == [], p.server.unauthorized


async def _registered(peer, charger):
    await peer.register(charger.versions_url, charger.token_a)
    # Registration is followed by a full Location push (the charger announces itself).
    await peer.wait_until(lambda: peer.server.locations, what="initial Location push")
    (location,) = peer.server.locations.values()
    return location


# --- registration -------------------------------------------------------------------------------

async def test_emsp_registers_with_token_a_then_token_a_is_dead(charger, peer):
    creds = await peer.register(charger.versions_url, charger.token_a)
    assert creds["token"] != charger.token_a
    assert {(i, r) for i, r in peer.cpo_endpoints} >= {("locations", "SENDER"), ("tariffs", "SENDER"),
                                                       ("sessions", "SENDER"), ("cdrs", "SENDER"),
                                                       ("commands", "RECEIVER"), ("tokens", "RECEIVER")}
    # Token A was for registration only.
    dead = await peer.client.call("GET", charger.versions_url, interface="versions/interface", path="/versions",
                                  token=charger.token_a, expect_http=401)
    assert dead.status_code != 1000
    mine = await peer.client.call("GET", peer.endpoint("credentials"), interface="credentials/interface",
                                  path="/credentials", expect_http=200)
    assert mine.data["token"] == peer.client.token
    # A second POST from a registered party is refused with 405.
    again = await peer.client.call("POST", peer.endpoint("credentials"), interface="credentials/interface",
                                   path="/credentials", body=peer.server.credentials("another-token"),
                                   expect_http=405)
    assert again.status_code != 1000


async def test_credentials_update_and_unregister(charger, peer):
    await _registered(peer, charger)
    old_c = peer.client.token
    await peer.update_credentials()
    assert peer.client.token != old_c
    stale = await peer.client.call("GET", peer.endpoint("locations", "SENDER"), token=old_c, expect_http=401)
    assert stale.status_code != 1000
    assert await peer.pull("locations")
    reply = await peer.unregister()
    assert reply.status_code == 1000
    gone = await peer.client.call("GET", peer.endpoint("locations", "SENDER"), expect_http=401)
    assert gone.status_code != 1000
    put_again = await peer.client.call("PUT", peer.endpoint("credentials"), interface="credentials/interface",
                                       path="/credentials", body=peer.server.credentials("x"),
                                       expect_http=(401, 405))
    assert put_again.status_code != 1000


async def test_charger_registers_with_the_emsp(charger, peer):
    token_a = peer.issue_registration_token()
    await charger.cpo.register(peer.server.versions_url, token_a)
    assert peer.server.registered
    assert token_a not in peer.server.accepted
    # The charger now holds our token C and we hold its token B: both directions work.
    await peer.wait_until(lambda: peer.server.locations, what="initial Location push after registration")
    pulled = await peer.pull("locations")
    assert [loc["id"] for loc in pulled] == [loc["id"] for loc in peer.server.locations.values()]
    assert peer.server.token_forms == {"base64"}


async def test_charger_renews_its_credentials_with_the_emsp(charger, peer):
    """The charger's side of credentials PUT: new tokens both ways, the old ones dead."""
    token_a = peer.issue_registration_token()
    party = await charger.cpo.register(peer.server.versions_url, token_a)
    our_old_token = peer.client.token  # what the eMSP calls the charger with
    their_old_token = party.outgoing_token  # what the charger calls the eMSP with
    renewed = await charger.cpo.rotate(party.pk)
    assert renewed.pk == party.pk and renewed.outgoing_token != their_old_token
    assert renewed.outgoing_token in peer.server.accepted and their_old_token not in peer.server.accepted
    # The eMSP checked our versions with the new token while handling the PUT, and now uses it.
    assert peer.client.token != our_old_token
    assert await peer.pull("locations")
    stale = await peer.client.call("GET", peer.endpoint("locations", "SENDER"), token=our_old_token,
                                   expect_http=401)
    assert stale.status_code != 1000
    assert [p.pk for p in charger.cpo.store.parties(registered_only=False)] == [party.pk]
    # A partner that refuses the PUT leaves everything as it was.
    peer.server.registered = False
    with pytest.raises(OcpiError):
        await charger.cpo.rotate(party.pk)
    assert charger.cpo.store.party(party.pk).outgoing_token == renewed.outgoing_token
    assert [p.pk for p in charger.cpo.store.parties(registered_only=False)] == [party.pk]
    peer.server.registered = True
    assert await peer.pull("locations")


async def test_charger_registers_through_the_urja_command(tmp_path, charger, peer):
    """``urja ocpi register URL TOKEN_A`` run beside the serving charger, sharing its OCPI store."""
    site_file = Path(charger.rt.site.path)
    config = site_file.with_name("with-ocpi.toml")  # beside it: relative paths in it stay valid
    config.write_text(site_file.read_text() + f"""
[ocpi]
public_url = "{charger.cpo.base_url}"
store = "{tmp_path / 'ocpi.sqlite'}"
""")
    token_a = peer.issue_registration_token()
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tools.cli", "ocpi", "--config", str(config), "register",
        peer.server.versions_url, token_a, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    assert peer.server.registered and token_a not in peer.server.accepted
    seen, peer.server.violations[:] = list(peer.server.violations), []
    assert seen == [], seen
    # ``urja ocpi rotate N`` renews the tokens of that registration from the command line.
    pk = out.decode().split("registered: party ")[1].split()[0]
    old_token = peer.client.token
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tools.cli", "ocpi", "--config", str(config), "rotate", pk,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0 and "renewed" in out.decode(), err.decode()
    assert peer.client.token != old_token
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tools.cli", "ocpi", "--config", str(config), "rotate", "99",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 1 and "no registered partner 99" in err.decode()
    # The serving charger knows the new partner and pushes to it.
    charger.car.plug_in()
    await peer.wait_until(lambda: peer.server.pushes and any(p.module == "locations" for p in peer.server.pushes),
                          timeout_s=20, what="a Location push to the partner registered from the command line")
    assert await peer.pull("locations")


async def test_missing_unknown_and_plain_tokens(charger, peer):
    await _registered(peer, charger)
    url = peer.endpoint("locations", "SENDER")
    kw = dict(interface="locations/sender-interface", path="/locations")
    for token in (None, "never-issued"):
        reply = await peer.client.call("GET", url, token=token, expect_http=401, **kw)
        assert reply.status_code != 1000
    plain = await peer.client.call("GET", url, encode_token=False, expect_http=200, **kw)
    assert plain.status_code == 1000


# --- pulling ------------------------------------------------------------------------------------

async def test_pull_every_module_page_by_page(charger, peer):
    location = await _registered(peer, charger)
    for module in ("locations", "tariffs", "sessions", "cdrs"):
        assert await peer.pull(module, limit=1) == await peer.pull(module)
    (pulled,) = await peer.pull("locations")
    assert pulled["id"] == location["id"] and pulled["evses"]
    evse = pulled["evses"][0]
    connector = evse["connectors"][0]
    assert (await peer.get_location(pulled["id"])).data["id"] == pulled["id"]
    assert (await peer.get_location(pulled["id"], evse["uid"])).data["uid"] == evse["uid"]
    assert (await peer.get_location(pulled["id"], evse["uid"], connector["id"])).data["id"] == connector["id"]
    missing = await peer.get_location("no-such-location", expect_http=404)
    assert missing.status_code == 2003
    tariffs = await peer.pull("tariffs")
    assert [t["id"] for t in tariffs] == connector["tariff_ids"]
    assert tariffs[0]["currency"] == "INR"
    # date filters: nothing updated after "now", everything from long ago.
    now_s = charger.rt.now_s()
    assert await peer.pull("locations", date_from_s=now_s + 3600) == []
    assert await peer.pull("locations", date_from_s=now_s - 10 * 365 * 86400, date_to_s=now_s + 3600) == [pulled]


# --- a whole session ----------------------------------------------------------------------------

def _periods_for_engine(cdr: dict) -> list:
    """CDR charging periods back into the engine's integer units (Wh, s, mA, W)."""
    scale = {"ENERGY": ("energy_wh", 1000), "TIME": ("time_s", 3600), "PARKING_TIME": ("parking_s", 3600),
             "MIN_CURRENT": ("min_current_ma", 1000), "MAX_CURRENT": ("max_current_ma", 1000),
             "MIN_POWER": ("min_power_w", 1000), "MAX_POWER": ("max_power_w", 1000)}
    out = []
    for period in cdr["charging_periods"]:
        dims = {}
        for dim in period["dimensions"]:
            if dim["type"] in scale:
                name, factor = scale[dim["type"]]
                dims[name] = round(dim["volume"] * factor)
        out.append(Period.from_dict(int(parse_dt(period["start_date_time"])), dims))
    return out


async def _wait_energy(rt, session_id, energy_wh):
    """The runtime's own view, polled: the meter advances by itself, no event marks a given Wh."""
    await wait_until(lambda: (rt.session(session_id).energy_wh or 0) >= energy_wh, timeout_s=20,
                     what=f"{energy_wh} Wh metered")


async def _start_charging(peer, charger, location, uid="driver-1", reference="auth-0001"):
    evse = location["evses"][0]
    token = peer.add_token(uid)
    charger.car.plug_in()
    start = await peer.command("START_SESSION", {
        "token": token, "location_id": location["id"], "evse_uid": evse["uid"],
        "connector_id": evse["connectors"][0]["id"], "authorization_reference": reference})
    assert start.response["result"] == "ACCEPTED", start
    assert start.result["result"] == "ACCEPTED", start
    charger.car.request_power()
    return start


async def test_whole_session_driven_over_ocpi(charger, peer):
    rt, car = charger.rt, charger.car
    location = await _registered(peer, charger)
    await _start_charging(peer, charger, location)
    # The session is pushed once it exists ...
    active = await peer.wait_until(
        lambda: [s for s in peer.server.sessions.values() if s["status"] == "ACTIVE"],
        timeout_s=10, what="an ACTIVE session pushed")
    session = active[0]
    assert session["cdr_token"]["uid"] == "driver-1" and session["cdr_token"]["type"] == "RFID"
    assert session["authorization_reference"] == "auth-0001"
    assert session["auth_method"] == "COMMAND"
    assert session["location_id"] == location["id"]
    # ... and can be pulled while the meter counts.
    await _wait_energy(rt, session["id"], 50)
    pulled = {s["id"]: s for s in await peer.pull("sessions")}
    assert pulled[session["id"]]["status"] == "ACTIVE" and pulled[session["id"]]["kwh"] >= 0.05
    # The EVSE went CHARGING on the eMSP's copy of the Location.
    await peer.wait_until(lambda: peer.server.locations[("IN", "URJ", location["id"])]["evses"][0]["status"]
                          == "CHARGING", what="EVSE status CHARGING pushed")
    stop = await peer.command("STOP_SESSION", {"session_id": session["id"]})
    assert stop.response["result"] == "ACCEPTED" and stop.result["result"] == "ACCEPTED", stop
    car.unplug()
    cdrs = await peer.wait_until(lambda: list(peer.server.cdrs.values()), timeout_s=20, what="the CDR")
    cdr = cdrs[0]
    assert cdr["session_id"] == session["id"] and cdr["authorization_reference"] == "auth-0001"
    final = await peer.wait_until(
        lambda: peer.server.sessions[("IN", "URJ", session["id"])]["status"] == "COMPLETED"
        and peer.server.sessions[("IN", "URJ", session["id"])], what="the COMPLETED session")
    # Energy: the meter's own readings, as the runtime recorded them.
    view = rt.session(session["id"])
    assert cdr["total_energy"] == pytest.approx(view.energy_wh / 1000, abs=1e-9)
    assert final["kwh"] == pytest.approx(cdr["total_energy"], abs=1e-9)
    receipt = rt.receipt(session["id"])
    assert receipt is not None
    # Cost: recomputed from the CDR's own periods with the tariff the charger publishes.
    (tariff,) = await peer.pull("tariffs")
    offset = utc_offset_s(rt.site.place.timezone, parse_dt(cdr["start_date_time"]))
    engine = price_periods(tariff, _periods_for_engine(cdr), utc_offset_s=offset,
                           start_s=int(parse_dt(cdr["start_date_time"])))
    assert cdr["total_cost"]["excl_vat"] == pytest.approx(engine.total_excl_u / 10_000, abs=1e-9)
    assert cdr["total_cost"]["incl_vat"] == pytest.approx(engine.total_incl_u / 10_000, abs=1e-9)
    assert cdr["total_energy"] == pytest.approx(engine.energy_wh / 1000, abs=1e-9)
    assert round(cdr["total_cost"]["incl_vat"] * 100) == view.cost.total_paise
    # The CDR can be pulled too, identical to the pushed one.
    assert [c for c in await peer.pull("cdrs") if c["id"] == cdr["id"]] == [cdr]


async def test_session_progress_is_pushed_while_charging(charger, peer):
    location = await _registered(peer, charger)
    await _start_charging(peer, charger, location)
    # 60 simulated seconds is the CPO's push interval; allow four of them.
    await peer.wait_until(lambda: [s for s in peer.server.sessions.values() if s["kwh"] > 0],
                          timeout_s=240 / SPEED, what="a session push with kWh above 0 while charging")


# --- pushes survive an outage -------------------------------------------------------------------

def _failed_pushes(cpo) -> int:
    return sum(1 for entry in cpo.outbox.due(cpo._clock() + 86400, 500) if entry.attempts > 0)


async def test_pushes_survive_an_emsp_outage(charger, peer):
    rt = charger.rt
    location = await _registered(peer, charger)
    start = await _start_charging(peer, charger, location)
    active = await peer.wait_until(lambda: [s for s in peer.server.sessions.values() if s["status"] == "ACTIVE"],
                                   what="ACTIVE session")
    sid = active[0]["id"]
    await _wait_energy(rt, sid, 20)
    await peer.server.go_down()
    # While the eMSP is away the session ends: a CommandResult, a COMPLETED session, an EVSE status
    # change and a CDR all have to wait in the charger's outbox.
    stop = await peer.command("STOP_SESSION", {"session_id": sid}, wait=False)
    assert stop.response["result"] == "ACCEPTED", stop
    charger.car.unplug()
    await wait_until(lambda: rt.receipt(sid) is not None, timeout_s=20, what="the charger's receipt")
    await wait_until(lambda: _failed_pushes(charger.cpo) >= 2, timeout_s=20, what="pushes failing during the outage")
    seen = len(peer.server.pushes)
    await peer.server.go_up()
    result = await peer.wait_result(stop, timeout_s=20)
    assert result["result"] == "ACCEPTED"
    cdrs = await peer.wait_until(lambda: list(peer.server.cdrs.values()), timeout_s=20, what="the CDR after the outage")
    await peer.wait_until(lambda: peer.server.sessions[("IN", "URJ", sid)]["status"] == "COMPLETED",
                          timeout_s=20, what="the COMPLETED session after the outage")
    assert len(peer.server.pushes) > seen
    # Nothing lost: what was pushed equals what the charger serves now.
    pulled_sessions = {s["id"]: s for s in await peer.pull("sessions")}
    assert peer.server.sessions[("IN", "URJ", sid)]["kwh"] == pulled_sessions[sid]["kwh"]
    assert pulled_sessions[sid]["status"] == "COMPLETED"
    assert [c["id"] for c in await peer.pull("cdrs")] == [c["id"] for c in cdrs]
    (pulled_location,) = await peer.pull("locations")
    await peer.wait_until(
        lambda: peer.server.locations[("IN", "URJ", location["id"])]["evses"][0]["status"]
        == pulled_location["evses"][0]["status"], timeout_s=20, what="EVSE status caught up")
    assert peer.server.out_of_order == []
    assert start.result["result"] == "ACCEPTED"


# --- the other commands -------------------------------------------------------------------------

async def test_reserve_cancel_and_unlock(charger, peer):
    location = await _registered(peer, charger)
    evse = location["evses"][0]
    token = peer.add_token("driver-2")
    expiry = format_dt(charger.rt.now_s() + 3600)
    reserve = await peer.command("RESERVE_NOW", {"token": token, "expiry_date": expiry, "reservation_id": "r-1",
                                                 "location_id": location["id"], "evse_uid": evse["uid"]})
    assert reserve.response["result"] == "ACCEPTED" and reserve.result["result"] == "ACCEPTED", reserve
    await peer.wait_until(lambda: peer.server.locations[("IN", "URJ", location["id"])]["evses"][0]["status"]
                          == "RESERVED", what="EVSE status RESERVED pushed")
    cancel = await peer.command("CANCEL_RESERVATION", {"reservation_id": "r-1"})
    assert cancel.response["result"] == "ACCEPTED" and cancel.result["result"] == "ACCEPTED", cancel
    await peer.wait_until(lambda: peer.server.locations[("IN", "URJ", location["id"])]["evses"][0]["status"]
                          == "AVAILABLE", what="EVSE status AVAILABLE pushed")
    again = await peer.command("CANCEL_RESERVATION", {"reservation_id": "r-1"})
    assert (again.response["result"], (again.result or {}).get("result")) in (
        ("ACCEPTED", "UNKNOWN_RESERVATION"), ("REJECTED", None)), again
    unlock = await peer.command("UNLOCK_CONNECTOR", {"location_id": location["id"], "evse_uid": evse["uid"],
                                                     "connector_id": evse["connectors"][0]["id"]})
    # The simulated socket has no cable lock.
    assert unlock.response["result"] in ("ACCEPTED", "NOT_SUPPORTED"), unlock
    if unlock.response["result"] == "ACCEPTED":
        assert unlock.result["result"] == "NOT_SUPPORTED", unlock


async def test_stop_of_an_unknown_session_answers_unknown_session(charger, peer):
    await _registered(peer, charger)
    unknown = await peer.command("STOP_SESSION", {"session_id": "no-such-session"})
    assert unknown.response["result"] == "UNKNOWN_SESSION", unknown


async def test_start_on_an_occupied_evse_is_refused(charger, peer):
    location = await _registered(peer, charger)
    await _start_charging(peer, charger, location)
    second = await peer.command("START_SESSION", {"token": peer.add_token("driver-3"),
                                                  "location_id": location["id"]})
    assert (second.response["result"], (second.result or {}).get("result")) in (
        ("ACCEPTED", "EVSE_OCCUPIED"), ("REJECTED", None)), second
    assert len(charger.rt.sessions()) == 1


def _receipts(rt) -> list:
    """Session ids whose receipt was issued, in order (the charger's own event, no polling)."""
    seen = []
    rt.add_listener(lambda kind, obj: seen.append(obj[0]) if kind == "receipt" else None)
    return seen


async def _session_by_command(peer, charger, location, uid) -> str:
    """A session the eMSP starts over OCPI (so it is that eMSP's), charging; returns its id."""
    charger.car.plug_in()
    start = await peer.command("START_SESSION", {"token": peer.add_token(uid), "location_id": location["id"],
                                                 "evse_uid": location["evses"][0]["uid"]})
    assert start.result["result"] == "ACCEPTED", start
    charger.car.request_power()
    await wait_until(lambda: charger.rt.board.relay.closed, what=f"relay closed for {uid}")
    return charger.rt.core.session_id


async def test_sessions_and_cdrs_page_by_page_with_date_filters(charger, peer):
    rt = charger.rt
    location = await _registered(peer, charger)
    receipts = _receipts(rt)
    ours = []
    for n in range(3):
        sid = await _session_by_command(peer, charger, location, f"pager-{n}")
        ours.append(sid)
        stop = await peer.command("STOP_SESSION", {"session_id": sid})
        assert stop.result["result"] == "ACCEPTED", stop
        charger.car.unplug()
        await wait_until(lambda sid=sid: sid in receipts, what=f"receipt {n}")
    # A network customer's session in between is the site's, not the eMSP's: not counted, not listed.
    charger.car.plug_in()
    view = await rt.start_session(source="contract", reference="order-1")
    charger.car.request_power()
    await wait_until(lambda: rt.board.relay.closed, what="relay closed for the network customer")
    await rt.stop_session(view.session_id)
    charger.car.unplug()
    await wait_until(lambda: view.session_id in receipts, what="the network session's receipt")
    assert len(rt.sessions()) == 4
    sessions = await peer.pull("sessions", limit=1)
    assert len(sessions) == 3 and sorted(s["id"] for s in sessions) == sorted(ours)
    cdrs = await peer.pull("cdrs", limit=2)
    assert sorted(c["session_id"] for c in cdrs) == sorted(s["id"] for s in sessions)
    # date_from is inclusive, date_to exclusive, both on last_updated.
    stamps = sorted(parse_dt(s["last_updated"]) for s in sessions)
    later = await peer.pull("sessions", date_from_s=stamps[1], limit=1)
    assert {s["id"] for s in later} == {s["id"] for s in sessions if parse_dt(s["last_updated"]) >= int(stamps[1])}
    earlier = await peer.pull("sessions", date_to_s=stamps[1], limit=1)
    assert {s["id"] for s in earlier} == {s["id"] for s in sessions if parse_dt(s["last_updated"]) < int(stamps[1])}
    # CDRs pushed and pulled are the same objects.
    await peer.wait_until(lambda: len(peer.server.cdrs) == 3, what="three CDR pushes")
    assert sorted(peer.server.cdrs.values(), key=lambda c: c["id"]) == sorted(cdrs, key=lambda c: c["id"])


async def test_sessions_stay_with_the_emsp_they_belong_to(charger, peer):
    """Two eMSPs on one charger, and a network customer: each eMSP pulls, receives and may stop
    only the sessions it started; the others' are answered as unknown, never shown or pushed."""
    rt = charger.rt
    location = await _registered(peer, charger)
    receipts = _receipts(rt)
    async with EmspPeer(party_id="EM2", new_token=_ids("second-token")) as second:
        await second.register(charger.versions_url, charger.cpo.create_token_a("second"))
        await second.wait_until(lambda: second.server.locations, what="the second eMSP's Location push")

        async def refused_stop(emsp, sid):
            outcome = await emsp.command("STOP_SESSION", {"session_id": sid})
            assert outcome.response["result"] == "UNKNOWN_SESSION", outcome

        first = await _session_by_command(peer, charger, location, "driver-a")
        await refused_stop(second, first)
        assert (await peer.command("STOP_SESSION", {"session_id": first})).result["result"] == "ACCEPTED"
        charger.car.unplug()
        await wait_until(lambda: first in receipts, what="the first eMSP's receipt")

        charger.car.plug_in()
        network = (await rt.start_session(source="contract", reference="order-x")).session_id
        charger.car.request_power()
        await wait_until(lambda: rt.board.relay.closed, what="relay closed for the network customer")
        for emsp in (peer, second):
            await refused_stop(emsp, network)
        await rt.stop_session(network)
        charger.car.unplug()
        await wait_until(lambda: network in receipts, what="the network session's receipt")

        other = await _session_by_command(second, charger, location, "driver-b")
        await refused_stop(peer, other)
        assert (await second.command("STOP_SESSION", {"session_id": other})).result["result"] == "ACCEPTED"
        charger.car.unplug()
        await wait_until(lambda: other in receipts, what="the second eMSP's receipt")

        for emsp, own in ((peer, first), (second, other)):
            assert [s["id"] for s in await emsp.pull("sessions")] == [own]
            assert [c["session_id"] for c in await emsp.pull("cdrs")] == [own]
        # Everything queued has been delivered; then nothing of another's reached either eMSP.
        await wait_until(lambda: not charger.cpo.outbox.due(rt.now_s() + 86400, 500, topic_prefix="ocpi/"),
                         timeout_s=20, what="every OCPI push delivered")
        for emsp, own in ((peer, first), (second, other)):
            assert {key[2] for key in emsp.server.sessions} == {own}
            assert {c["session_id"] for c in emsp.server.cdrs.values()} == {own}
            assert [e["status"] for e in emsp.server.locations[("IN", "URJ", location["id"])]["evses"]] == \
                [rt.connectors()[0].status]
        assert second.server.violations == [] and second.server.unauthorized == []


async def test_session_stopped_before_any_energy_is_closed(charger, peer):
    location = await _registered(peer, charger)
    evse = location["evses"][0]
    charger.car.plug_in()
    start = await peer.command("START_SESSION", {"token": peer.add_token("driver-4"), "location_id": location["id"],
                                                 "evse_uid": evse["uid"]})
    assert start.result["result"] == "ACCEPTED", start
    (sid,) = [s.session_id for s in charger.rt.sessions()]
    stop = await peer.command("STOP_SESSION", {"session_id": sid})
    assert stop.result["result"] == "ACCEPTED", stop
    charger.car.unplug()
    await peer.wait_until(lambda: peer.server.sessions.get(("IN", "URJ", sid), {}).get("status")
                          in ("COMPLETED", "INVALID"), timeout_s=5, what="the stopped session closed")
