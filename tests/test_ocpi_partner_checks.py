"""What a roaming partner checks first: takeover-proof registration, tokens without nulls,
command and header answers as OCPI 2.2.1 words them, and a log line that says what was wrong.
"""
from __future__ import annotations

import logging

from aiohttp import web

import tests.ocpi_harness as base

pytestmark = base.pytestmark
h = base.h  # the served charger and a registered-able eMSP (fixture)
schemas = base.schemas


async def test_a_token_a_cannot_take_over_another_partners_registration(h):
    await h.register()
    s = await base._start_by_command(h, "mine")
    intruder = h.cpo.create_token_a("someone else")
    status, body, _ = await h.call("POST", "/2.2.1/credentials", token=intruder, body=h.emsp.credentials())
    assert status == 405 and body["status_code"] == 2000 and "IN*EMS" in body["status_message"], body
    _, body, _ = await h.call("GET", "/2.2.1/sessions")
    assert [x["id"] for x in body["data"]] == [s], "the registered eMSP was locked out"


async def test_a_registered_party_cannot_claim_another_partys_ids_by_put(h):
    await h.register()
    other = await base.FakeEmsp(party_id="OTH").start()
    try:
        token_a = h.cpo.create_token_a("other")
        status, body, _ = await h.call("POST", "/2.2.1/credentials", token=token_a, body=other.credentials())
        assert status == 200, body
        claim = dict(other.credentials(), roles=h.emsp.roles())
        status, body, _ = await h.call("PUT", "/2.2.1/credentials", token=body["data"]["token"], body=claim)
        assert status == 405 and "IN*EMS" in body["status_message"], body
    finally:
        await other.close()


async def test_credentials_naming_the_chargers_own_versions_url_are_refused(h):
    await h.register()
    mine = dict(h.emsp.credentials(), url=f"{h.base}/versions", token="fresh-token-for-us")
    status, body, _ = await h.call("PUT", "/2.2.1/credentials", body=mine)
    assert status == 400 and body["status_code"] == 2001 and "own API" in body["status_message"], body
    status, body, _ = await h.call("GET", "/2.2.1/locations")
    assert status == 200, "the eMSP must keep its registration"


async def test_get_token_renders_no_null_where_the_schema_has_none(h, schemas):
    await h.register()
    token = dict(base._token("NULLY"), visual_number=None, group_id=None)
    status, body, _ = await h.call("PUT", "/2.2.1/tokens/IN/EMS/NULLY", body=token)
    assert status == 201, body
    _, body, _ = await h.call("GET", "/2.2.1/tokens/IN/EMS/NULLY")
    assert "visual_number" not in body["data"] and None not in body["data"].values(), body
    schemas.check(body["data"], "tokens", "Token")


async def test_start_session_for_an_unknown_location_is_a_rejected_command_response(h, schemas):
    await h.register()
    reply = await base._command(h, "START_SESSION", {"response_url": f"{h.emsp.url}/r", "token": base._token(),
                                                     "location_id": "elsewhere"}, schemas)
    assert reply["result"] == "REJECTED"


async def test_charging_preferences_are_answered_not_possible(h):
    await h.register()
    s = await base._start_by_command(h, "prefs")
    status, body, _ = await h.call("PUT", f"/2.2.1/sessions/{s}/charging_preferences",
                                   body={"profile_type": "FAST", "energy_need": 10})
    assert status == 200 and body["status_code"] == 1000 and body["data"] == "NOT_POSSIBLE", body
    status, body, _ = await h.call("PUT", "/2.2.1/sessions/nope/charging_preferences", body={"profile_type": "FAST"})
    assert status == 404 and body["status_code"] == 2001


async def test_request_ids_that_are_not_uuids_are_refused_and_not_echoed(h, caplog):
    await h.register()
    status, body, headers = await h.call("GET", "/2.2.1/locations", headers={"X-Request-ID": "r-1"})
    assert status == 400 and body["status_code"] == 2001 and "X-Request-ID" in body["status_message"]
    assert headers["X-Request-ID"] != "r-1"
    with caplog.at_level(logging.WARNING, logger="urja.ocpi"):
        status, _, headers = await h.call("GET", "/2.2.1/tariffs")
    assert status == 200 and headers["X-Request-ID"]
    assert any("without X-Request-ID" in r.getMessage() for r in caplog.records)


async def test_an_authorization_answered_with_a_list_is_logged_as_such(h):
    await h.register()
    await h.call("PUT", "/2.2.1/tokens/IN/EMS/RT-1", body=base._token("RT-1", whitelist="NEVER"))
    async def answer_with_a_list(request):
        return base.FakeEmsp.ok([{"allowed": "ALLOWED"}])

    app = web.Application()
    app.router.add_post("/tokens/{uid}/authorize", answer_with_a_list)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        (party,) = h.cpo.store.parties()
        url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/tokens"
        endpoints = [e for e in party.endpoints if e["identifier"] != "tokens"]
        h.cpo.store.update_party(party.pk, endpoints=endpoints + [{"identifier": "tokens", "role": "SENDER",
                                                                   "url": url}], now_s=h.clock())
        decision = await h.cpo.authorize("RT-1")
    finally:
        await runner.cleanup()
    assert not decision.allowed
    assert "JSON array" in decision.reason and "AuthorizationInfo" in decision.reason, decision.reason
