"""OCPI 2.2.1 CPO side over real HTTP: commands, sessions and CDRs, tokens, pushes, privacy between eMSPs.

The harness (the CPO beside a small eMSP, schema checks) is ``tests/ocpi_harness.py``.
"""
from __future__ import annotations

# The harness's fixtures (h, schemas) are imported by name, which pyflakes reads as redefinition.
# ruff: noqa: F811
import json

import pytest

from agent.service import ServiceError
from protocols.ocpi.commands import COMMAND_REPLAY_MAX, COMMAND_REPLAY_S
from protocols.ocpi.cpo import PUSH_TOPIC
from protocols.ocpi.mapping import Renderer
from tests.ocpi_harness import (  # noqa: F401 - h and schemas are fixtures, pytestmark applies here
    _cdrs_pushed,
    _command,
    _second_emsp,
    _sessions_pushed,
    _start_by_command,
    _token,
    h,
    pytestmark,
    schemas,
)


# ---------------------------------------------------------------------------- commands, sessions, CDRs
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


async def test_another_command_body_to_a_used_response_url_is_checked_and_run(h, schemas):
    await h.register()
    url = f"{h.emsp.url}/2.2.1/commands/START_SESSION/fixed"
    start = {"response_url": url, "token": _token(), "location_id": "in.test.site-1", "evse_uid": "EVSE-1",
             "connector_id": "1"}
    assert (await _command(h, "START_SESSION", start, schemas))["result"] == "ACCEPTED"
    await h.emsp.wait_for(lambda r: r[1] == "commands/START_SESSION/fixed", "the START result")
    # The same URL with a location this charger does not have: checked, not answered from the first.
    elsewhere = dict(start, location_id="elsewhere")
    assert (await _command(h, "START_SESSION", elsewhere, schemas))["result"] == "REJECTED"
    # The first body again is a replay: the first answer, no second start.
    assert (await _command(h, "START_SESSION", start, schemas))["result"] == "ACCEPTED"
    assert len([c for c in h.charger.calls if c[0] == "start"]) == 1
    # Another token to the same URL is a new command and reaches the charger.
    other = dict(start, token=_token("RFID-2"))
    await _command(h, "START_SESSION", other, schemas)
    assert len([c for c in h.charger.calls if c[0] == "start"]) == 2


async def test_the_same_command_body_to_a_fixed_response_url_is_a_replay_only_for_an_hour(h, schemas):
    await h.register()
    url = f"{h.emsp.url}/2.2.1/commands/START_SESSION/fixed"
    start = {"response_url": url, "token": _token(), "location_id": "in.test.site-1", "evse_uid": "EVSE-1",
             "connector_id": "1"}
    assert (await _command(h, "START_SESSION", start, schemas))["result"] == "ACCEPTED"
    await h.emsp.wait_for(lambda r: r[1] == "commands/START_SESSION/fixed", "the START result")
    await h.charger.stop_session(f"S{h.charger.n}")
    h.clock.now += COMMAND_REPLAY_S - 1
    assert (await _command(h, "START_SESSION", start, schemas))["result"] == "ACCEPTED"
    assert len([c for c in h.charger.calls if c[0] == "start"]) == 1  # still a replay
    h.clock.now += 2
    assert (await _command(h, "START_SESSION", start, schemas))["result"] == "ACCEPTED"
    await h.emsp.wait_for(lambda r: len([c for c in h.charger.calls if c[0] == "start"]) == 2,
                          "the second START to reach the charger")


async def test_the_replay_memory_keeps_only_the_newest_commands(h):
    store = h.cpo.store
    for i in range(COMMAND_REPLAY_MAX + 5):
        store.record_command(f"d{i}", owner_pk=1, command="UNLOCK_CONNECTOR", response={"result": "ACCEPTED"},
                             now_s=1000.0 + i, forget_before_s=0.0, keep=COMMAND_REPLAY_MAX)
    assert store.command_count() == COMMAND_REPLAY_MAX
    assert store.command_response("d4") is None and store.command_response("d5") is not None
    store.record_command("late", owner_pk=1, command="UNLOCK_CONNECTOR", response={"result": "ACCEPTED"},
                         now_s=1000.0 + COMMAND_REPLAY_MAX + 5 + COMMAND_REPLAY_S,
                         forget_before_s=1000.0 + COMMAND_REPLAY_MAX + 5, keep=COMMAND_REPLAY_MAX)
    assert store.command_count() == 1
