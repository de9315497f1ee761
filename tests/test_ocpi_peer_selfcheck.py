"""The independent eMSP checks itself: each of its conformance checks must be able to fail.

These run without the charger: the peer's server is exercised by its own client (both written
from the specification), and the client is pointed at small deliberately wrong servers to show
that every rule it enforces really trips.
"""
from __future__ import annotations

import itertools
import json

import aiohttp
import pytest
from aiohttp import web

from tests.emsp_peer.schemas import SPECS_DIR

if not (SPECS_DIR / "ocpi-2.2.1").is_dir():
    pytest.skip(f"OCPI specs folder missing: {SPECS_DIR / 'ocpi-2.2.1'}", allow_module_level=True)

from tests.emsp_peer import ConformanceError, EmspPeer, load_spec  # noqa: E402
from tests.emsp_peer.client import OcpiClient  # noqa: E402
from tests.emsp_peer.wire import format_dt, next_link, token_candidates  # noqa: E402

T0 = 1_767_225_600  # 2026-01-01T00:00:00Z


def _ids(prefix):
    counter = itertools.count(1)
    return lambda: f"{prefix}-{next(counter):04d}"


def _peer(**kw):
    return EmspPeer(clock=lambda: T0, new_id=_ids("id"), new_token=_ids("tok"), **kw)


async def _as_charger(peer: EmspPeer, token="charger-token", **kw) -> OcpiClient:
    """A client standing in for the charger, holding a token the peer issued to it."""
    peer.server.accepted[token] = "party"
    peer.server.registered = True
    return OcpiClient(http=peer.http, spec=peer.spec, token=token, new_id=_ids("req"), **kw)


SESSION = {
    "country_code": "IN", "party_id": "URJ", "id": "s-1", "start_date_time": "2026-01-01T00:00:00Z",
    "kwh": 0, "cdr_token": {"country_code": "IN", "party_id": "EMP", "uid": "t1", "type": "RFID",
                            "contract_id": "IN-EMP-t1"},
    "auth_method": "COMMAND", "location_id": "loc-1", "evse_uid": "evse-1", "connector_id": "1",
    "currency": "INR", "status": "ACTIVE", "last_updated": "2026-01-01T00:00:00Z",
}


async def test_missing_or_unknown_token_gets_401_and_is_recorded():
    async with _peer() as peer:
        client = await _as_charger(peer)
        for token in (None, "not-issued"):
            reply = await client.call("GET", peer.server.versions_url, interface="versions/interface",
                                      path="/versions", token=token, expect_http=401)
            assert reply.status_code == 2000
        assert len(peer.server.unauthorized) == 2
        ok = await client.call("GET", peer.server.versions_url, interface="versions/interface", path="/versions",
                               expect_http=200)
        assert ok.data == [{"version": "2.2.1", "url": peer.server.module_url}]


async def test_base64_and_plain_tokens_are_both_understood():
    async with _peer() as peer:
        encoded = await _as_charger(peer, encode_token=True)
        plain = await _as_charger(peer, encode_token=False)
        for client in (encoded, plain):
            await client.call("GET", peer.server.module_url, interface="versions/interface",
                              path="/versions/2.2.1", expect_http=200)
        assert peer.server.token_forms == {"base64", "plain"}
    assert [t for t, _ in token_candidates("Token " + "YWJj")] == ["abc", "YWJj"]
    assert token_candidates("Bearer abc") == [] and token_candidates(None) == []


async def test_tokens_sender_pages_follow_links_and_filters():
    async with _peer(page_limit=2) as peer:
        for i in range(5):
            peer.add_token(f"t{i}", last_updated_s=T0 + 60 * i)
        client = await _as_charger(peer)
        url = peer.server.module_url + "/tokens"
        every = await client.pull(url, interface="tokens/sender-interface", path="/tokens",
                                  id_of=lambda t: t["uid"])
        assert [t["uid"] for t in every] == ["t0", "t1", "t2", "t3", "t4"]
        window = await client.pull(url, interface="tokens/sender-interface", path="/tokens",
                                   params={"date_from": format_dt(T0 + 60), "date_to": format_dt(T0 + 240)},
                                   id_of=lambda t: t["uid"])
        assert [t["uid"] for t in window] == ["t1", "t2", "t3"]
        assert peer.server.violations == []


async def test_realtime_authorization_answers_as_configured():
    async with _peer() as peer:
        peer.add_token("good")
        peer.add_token("blocked")
        peer.server.authorize_answers["blocked"] = {"allowed": "BLOCKED"}
        client = await _as_charger(peer)
        base = peer.server.module_url + "/tokens"
        where = {"location_id": "loc-1", "evse_uids": ["evse-1"]}
        kw = dict(interface="tokens/sender-interface", path="/tokens/{token_uid}/authorize")
        good = await client.call("POST", f"{base}/good/authorize", body=where, expect_http=200, **kw)
        assert good.data["allowed"] == "ALLOWED" and good.data["location"] == where
        blocked = await client.call("POST", f"{base}/blocked/authorize", expect_http=200, **kw)
        assert blocked.data["allowed"] == "BLOCKED"
        unknown = await client.call("POST", f"{base}/nobody/authorize", expect_http=404, **kw)
        assert unknown.status_code == 2004
        assert [r["uid"] for r in peer.server.authorize_requests] == ["good", "blocked", "nobody"]


async def test_bad_push_is_refused_with_2001_and_changes_nothing():
    async with _peer() as peer:
        client = await _as_charger(peer)
        url = peer.server.module_url + "/sessions/IN/URJ/s-1"
        kw = dict(interface="sessions/receiver-interface", path="/sessions/{country_code}/{party_id}/{session_id}")
        broken = dict(SESSION, kwh="lots")
        reply = await client.call("PUT", url, body=broken, expect_http=400, **kw)
        assert reply.status_code == 2001
        malformed = await client.call("PUT", url, raw_body=b"{not json", expect_http=400, **kw)
        assert malformed.status_code == 2001
        assert peer.server.sessions == {} and len(peer.server.violations) == 2
        assert "kwh" in peer.server.violations[0]


async def test_session_patch_merges_and_appends_charging_periods():
    async with _peer() as peer:
        client = await _as_charger(peer)
        url = peer.server.module_url + "/sessions/IN/URJ/s-1"
        kw = dict(interface="sessions/receiver-interface", path="/sessions/{country_code}/{party_id}/{session_id}")
        period = {"start_date_time": "2026-01-01T00:00:00Z", "dimensions": [{"type": "ENERGY", "volume": 1.5}]}
        await client.call("PUT", url, body=dict(SESSION, charging_periods=[period]), expect_http=200, **kw)
        patch = {"kwh": 2.5, "charging_periods": [dict(period, start_date_time="2026-01-01T00:10:00Z")],
                 "last_updated": "2026-01-01T00:10:00Z"}
        await client.call("PATCH", url, body=patch, expect_http=200, **kw)
        stored = peer.server.sessions[("IN", "URJ", "s-1")]
        assert stored["kwh"] == 2.5 and len(stored["charging_periods"]) == 2
        stale = {"kwh": 1.0, "last_updated": "2025-12-31T23:00:00Z"}
        await client.call("PATCH", url, body=stale, expect_http=200, **kw)
        assert peer.server.out_of_order and peer.server.violations == []
        unknown = await client.call("PATCH", peer.server.module_url + "/sessions/IN/URJ/nope", body=patch,
                                    expect_http=404, **kw)
        assert unknown.status_code != 1000 and peer.server.violations


async def test_command_result_only_for_handed_out_urls():
    async with _peer() as peer:
        client = await _as_charger(peer)
        peer.server.expected_results["u-1"] = "START_SESSION"
        kw = dict(interface="commands/sender-interface", path="/commands/{command}/{uid}")
        base = peer.server.module_url + "/commands"
        await client.call("POST", f"{base}/START_SESSION/u-1", body={"result": "ACCEPTED"}, expect_http=200, **kw)
        assert peer.server.command_results["u-1"] == [{"result": "ACCEPTED"}] and peer.server.violations == []
        await client.call("POST", f"{base}/STOP_SESSION/u-2", body={"result": "ACCEPTED"}, expect_http=200, **kw)
        await client.call("POST", f"{base}/START_SESSION/u-1", body={"result": "FAILED"}, expect_http=200, **kw)
        assert len(peer.server.violations) == 2
        bad = await client.call("POST", f"{base}/START_SESSION/u-3", body={"result": "MAYBE"}, expect_http=400, **kw)
        assert bad.status_code == 2001


async def test_outage_refuses_connections_then_serves_on_the_same_port():
    async with _peer() as peer:
        client = await _as_charger(peer)
        url = peer.server.versions_url
        await peer.server.go_down()
        with pytest.raises(aiohttp.ClientConnectionError):
            await client.call("GET", url)
        await peer.server.go_up()
        reply = await client.call("GET", url, interface="versions/interface", path="/versions", expect_http=200)
        assert reply.status_code == 1000


def test_schema_validation_rejects_what_the_spec_forbids():
    spec = load_spec()
    ref = spec.schema_ref("sessions", "Session")
    assert spec.errors(ref, SESSION) == []
    assert spec.errors(ref, dict(SESSION, last_updated="2026-01-01T05:30:00+05:30"))  # UTC only
    assert spec.errors(ref, dict(SESSION, status="RUNNING"))
    assert spec.errors(ref, {k: v for k, v in SESSION.items() if k != "cdr_token"})
    assert spec.errors(ref, dict(SESSION, country_code="IND"))
    cdr_token = dict(SESSION["cdr_token"], type="PIGEON")
    assert spec.errors(ref, dict(SESSION, cdr_token=cdr_token))


def test_next_link_parsing():
    assert next_link('<http://a/x?offset=2&limit=2>; rel="next"') == "http://a/x?offset=2&limit=2"
    assert next_link('<http://a/p>; rel="prev", <http://a/n>; rel=next') == "http://a/n"
    assert next_link('<http://a/p>; rel="prev"') is None and next_link(None) is None


# --- the client's checks trip on wrong servers -----------------------------------------------
TARIFF = {"country_code": "IN", "party_id": "URJ", "id": "flat", "currency": "INR",
          "elements": [{"price_components": [{"type": "ENERGY", "price": 18.0, "step_size": 1}]}],
          "last_updated": "2026-01-01T00:00:00Z"}


def _wrong_app(kind: str) -> web.Application:
    async def handler(request: web.Request):
        body = {"status_code": 1000, "timestamp": "2026-01-01T00:00:00Z", "data": []}
        headers = {"X-Request-ID": request.headers["X-Request-ID"],
                   "X-Correlation-ID": request.headers["X-Correlation-ID"],
                   "X-Total-Count": "0", "X-Limit": "10"}
        if kind == "no-echo":
            del headers["X-Request-ID"]
        elif kind == "server-error":
            return web.Response(status=500, text="boom", headers=headers)
        elif kind == "bad-timestamp":
            body["timestamp"] = "yesterday"
        elif kind == "bad-count":
            headers["X-Total-Count"] = "3"
        elif kind == "no-limit":
            del headers["X-Limit"]
        elif kind == "bad-object":
            body["data"] = [{"id": "x"}]
            headers["X-Total-Count"] = "1"
        elif kind == "not-json":
            return web.Response(status=200, text="<html>", headers=headers)
        elif kind == "endless":
            headers["Link"] = f'<http://{request.host}/tariffs>; rel="next"'
            body["data"] = [TARIFF]
        return web.Response(status=200, text=json.dumps(body), headers=headers, content_type="application/json")

    app = web.Application()
    app.router.add_get("/tariffs", handler)
    return app


@pytest.mark.parametrize("kind, words", [
    ("no-echo", "X-Request-ID"), ("server-error", "server error"), ("bad-timestamp", "timestamp"),
    ("bad-count", "X-Total-Count"), ("no-limit", "X-Limit"), ("bad-object", "violates"),
    ("not-json", "not JSON"), ("endless", "twice"),
])
async def test_client_rejects_wrong_servers(kind, words):
    runner = web.AppRunner(_wrong_app(kind), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    try:
        async with aiohttp.ClientSession() as http:
            client = OcpiClient(http=http, spec=load_spec(), token="t", new_id=_ids("r"))
            with pytest.raises(ConformanceError, match=words):
                await client.pull(f"http://127.0.0.1:{port}/tariffs", interface="tariffs/sender-interface",
                                  path="/tariffs")
    finally:
        await runner.cleanup()
