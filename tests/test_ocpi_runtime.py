"""OCPI against the real runtime on the simulated board: a remote start, real energy from the
Modbus meter, a remote stop, and the CDR built from the signed receipt with its OCMF data."""
from __future__ import annotations

import base64
import contextlib

import aiohttp
import pytest

from agent.bootstrap import open_runtime
from agent.clock import Clock
from tests.ocpi_harness import SPECS, FakeEmsp, Schemas, _token
from tests.ocpi_support import start_cpo
from tests.support import sim_config, wait_until

pytestmark = pytest.mark.skipif(not SPECS.is_dir(), reason=f"OCPI 2.2.1 specs not found at {SPECS}")


@contextlib.asynccontextmanager
async def _registered_emsp(rt, tmp_path, emsp, schemas):
    """The charger's CPO served beside ``rt`` with ``emsp`` registered: ``(cpo, call, token)``,
    ``call`` speaking to the CPO as that eMSP (``token`` is what the CPO handed it)."""
    base, token_a, cpo = await start_cpo(rt, tmp_path / "ocpi", outbox=rt.journal, clock=rt.clock.wall_s,
                                         push_poll_s=0.05)
    http = aiohttp.ClientSession()
    try:
        call = _caller(http, base, schemas)
        status, body = await call("POST", "/2.2.1/credentials", token_a, emsp.credentials())
        assert status == 200, body
        yield cpo, call, body["data"]["token"]
    finally:
        await http.close()
        await cpo.close()


def _caller(http, base, schemas):
    """``call(method, path, token, body)`` as an eMSP calls the charger; every answer is an envelope."""
    async def call(method, path, token, body=None):
        headers = {"Authorization": "Token " + base64.b64encode(token.encode()).decode()}
        async with http.request(method, base + path, json=body, headers=headers) as resp:
            payload = await resp.json()
            schemas.envelope(payload)
            return resp.status, payload
    return call


async def test_remote_session_on_the_simulated_board_ends_in_a_signed_cdr(tmp_path):
    schemas = Schemas()
    cfg = sim_config(tmp_path, auth="network")
    emsp = await FakeEmsp().start()
    async with open_runtime(cfg, clock=Clock(speed=20)) as rt:
        async with _registered_emsp(rt, tmp_path, emsp, schemas) as (cpo, call, token):
            _, body = await call("GET", "/2.2.1/locations", token)
            location = body["data"][0]
            schemas.check(location, "locations", "Location")
            evse = location["evses"][0]
            assert evse["status"] == "AVAILABLE"

            car = rt.board.sim.car
            car.plug_in()
            start = {"response_url": f"{emsp.url}/2.2.1/commands/START_SESSION/1", "token": _token(),
                     "location_id": location["id"], "evse_uid": evse["uid"]}
            status, body = await call("POST", "/2.2.1/commands/START_SESSION", token, start)
            assert body["data"]["result"] == "ACCEPTED"
            result = await emsp.wait_for(lambda r: r[1] == "commands/START_SESSION/1", "the START result", 10)
            assert result[0][2]["result"] == "ACCEPTED", result
            car.request_power()
            await wait_until(lambda: rt.board.relay.closed, what="relay closed")
            await emsp.wait_for(lambda r: r[0] == "PATCH" and r[2].get("status") == "CHARGING", "CHARGING push", 10)
            await wait_until(lambda: (rt.sessions()[-1].energy_wh or 0) >= 20, timeout_s=20, what="20 Wh")
            _, body = await call("GET", "/2.2.1/sessions", token)
            session = body["data"][-1]
            schemas.check(session, "sessions", "Session")
            assert session["status"] == "ACTIVE" and session["cdr_token"]["uid"] == "RFID-1"

            stop = {"response_url": f"{emsp.url}/2.2.1/commands/STOP_SESSION/2", "session_id": session["id"]}
            status, body = await call("POST", "/2.2.1/commands/STOP_SESSION", token, stop)
            assert body["data"]["result"] == "ACCEPTED"
            await emsp.wait_for(lambda r: r[1] == "commands/STOP_SESSION/2" and r[2]["result"] == "ACCEPTED",
                                "the STOP result", 10)
            car.unplug()
            cdrs = await emsp.wait_for(lambda r: r[0] == "POST" and r[1] == "cdrs", "the CDR", 15)
            cdr = cdrs[0][2]
            schemas.check(cdr, "cdrs", "CDR")
            receipt = rt.receipt(session["id"])
            assert cdr["total_energy"] == receipt["energy_wh"] / 1000 > 0
            assert round(cdr["total_cost"]["incl_vat"] * 100) == receipt["cost_paise"]["total"]
            assert cdr["signed_data"]["encoding_method"] == "OCMF"
            ocmf = base64.b64decode(cdr["signed_data"]["signed_values"][0]["signed_data"]).decode()
            assert ocmf == receipt["ocmf"]
            assert cdr["session_id"] == session["id"] and cdr["auth_method"] == "COMMAND"
            _, body = await call("GET", "/2.2.1/cdrs", token)
            schemas.check(body["data"][0], "cdrs", "CDR")
    await emsp.close()


async def test_site_config_ocpi_table_serves_versions_from_the_runtime(tmp_path):
    """``[ocpi]`` in urja.toml: the runtime serves OCPI; a token A from the store is accepted."""
    import aiohttp

    from agent.bootstrap import open_runtime
    from agent.clock import Clock
    from tests.support import sim_config

    cfg = sim_config(tmp_path, auth="network", extra_toml='\n[ocpi]\nlisten = "127.0.0.1:0"\n')
    async with open_runtime(cfg, clock=Clock(speed=5)) as rt:
        assert rt.bindings['ocpi'] is not None
        token = rt.bindings['ocpi'].cpo.create_token_a("test")
        url = f"http://127.0.0.1:{rt.bindings['ocpi'].port}/ocpi/versions"
        async with aiohttp.ClientSession() as http:
            async with http.get(url) as r:
                assert r.status == 401
            async with http.get(url, headers={"Authorization": f"Token {token}"}) as r:
                assert r.status == 200, await r.text()
                body = await r.json()
                assert body["status_code"] == 1000
                assert any(v["version"] == "2.2.1" for v in body["data"])


async def test_a_card_at_the_charger_is_authorized_by_its_emsp_in_real_time(tmp_path):
    """An eMSP's RFID card shown at the charger: whitelist NEVER means the eMSP is asked, and
    the session it allows is reported to that eMSP under that token."""
    from agent.service import ServiceError
    from tests.ocpi_harness import _token

    cfg = sim_config(tmp_path, auth="network")
    emsp = await FakeEmsp().start()
    async with open_runtime(cfg, clock=Clock(speed=20)) as rt:
        async with _registered_emsp(rt, tmp_path, emsp, Schemas()) as (cpo, call, token):
            status, _ = await call("PUT", "/2.2.1/tokens/IN/EMS/CARD-7", token, _token("CARD-7", "NEVER"))
            assert status == 201

            # Unknown to everyone: refused without a session.
            with pytest.raises(ServiceError, match="no eMSP knows it") as info:
                await rt.present_token("CARD-0")
            assert info.value.code == ServiceError.REJECTED

            # The eMSP blocks the card: refused, and it was asked.
            emsp.authorize_answer = "BLOCKED"
            with pytest.raises(ServiceError, match="eMSP says BLOCKED"):
                await rt.present_token("CARD-7")
            assert rt.core.session_id is None

            emsp.authorize_answer = "ALLOWED"
            rt.board.sim.car.plug_in()
            view = await rt.present_token("CARD-7")
            asked = [r for r in emsp.received if r[1] == "tokens/CARD-7/authorize"]
            assert len(asked) == 2 and asked[-1][2]["evse_uids"] == [f"{cfg.site_id}-1"]
            assert view.source == "ocpi" and rt.core.session_id == view.session_id
            _, body = await call("GET", "/2.2.1/sessions", token)
            session = [s for s in body["data"] if s["id"] == view.session_id][0]
            assert session["cdr_token"]["uid"] == "CARD-7" and session["auth_method"] == "AUTH_REQUEST"
            assert session["authorization_reference"] == "auth-ref-1"
            await rt.stop_session(view.session_id)
        # Once the OCPI side is gone its cards are unknown again.
        with pytest.raises(ServiceError, match="no eMSP knows it"):
            await rt.present_token("CARD-7")
    await emsp.close()


async def test_the_sites_own_sessions_are_not_reported_to_an_emsp(tmp_path):
    """A free-vend session on the simulated board is the site's business: a registered eMSP
    sees the EVSE busy and free again, but neither pulls nor receives the session or its CDR."""
    cfg = sim_config(tmp_path)  # free vend
    emsp = await FakeEmsp().start()
    async with open_runtime(cfg, clock=Clock(speed=20)) as rt:
        async with _registered_emsp(rt, tmp_path, emsp, Schemas()) as (cpo, call, token):
            receipts = []
            rt.add_listener(lambda kind, obj: receipts.append(obj[0]) if kind == "receipt" else None)

            car = rt.board.sim.car
            car.plug_in()  # free vend: plugging in starts the session
            await wait_until(lambda: rt.core.session_id is not None, what="the free-vend session")
            view = rt.session(rt.core.session_id)
            assert view.source == "free_vend"
            car.request_power()
            await wait_until(lambda: rt.board.relay.closed, what="relay closed")
            await emsp.wait_for(lambda r: r[0] == "PATCH" and r[2].get("status") == "CHARGING", "CHARGING push", 10)
            stop = {"response_url": f"{emsp.url}/2.2.1/commands/STOP_SESSION/1", "session_id": view.session_id}
            _, body = await call("POST", "/2.2.1/commands/STOP_SESSION", token, stop)
            assert body["data"]["result"] == "UNKNOWN_SESSION"
            await rt.stop_session(view.session_id)
            car.unplug()
            await wait_until(lambda: view.session_id in receipts, timeout_s=15, what="the receipt")
            for module in ("sessions", "cdrs"):
                status, body = await call("GET", f"/2.2.1/{module}", token)
                assert status == 200 and body["data"] == [], (module, body)
            await wait_until(lambda: not cpo.outbox.due(rt.now_s() + 86400, 500, topic_prefix="ocpi/"),
                             timeout_s=15, what="every OCPI push delivered")
            assert not [r for r in emsp.received if r[1].startswith(("sessions", "cdrs", "commands"))]
            statuses = [r[2]["status"] for r in emsp.received if r[0] == "PATCH"]
            assert "CHARGING" in statuses, statuses
    await emsp.close()


async def test_the_cdr_of_a_session_closed_by_a_restart_reaches_its_emsp(tmp_path):
    """The boot closes a session the last run left open before OCPI starts listening: the CDR
    must still be pushed to the eMSP whose session it was."""
    from tests.ocpi_harness import _token

    cfg = sim_config(tmp_path, auth="network")
    emsp = await FakeEmsp().start()
    try:
        async with open_runtime(cfg, clock=Clock(speed=20)) as rt:
            async with _registered_emsp(rt, tmp_path, emsp, Schemas()) as (cpo, call, token):
                rt.board.sim.car.plug_in()
                start = {"response_url": f"{emsp.url}/2.2.1/commands/START_SESSION/1", "token": _token(),
                         "location_id": cfg.site_id, "evse_uid": f"{cfg.site_id}-1"}
                _, body = await call("POST", "/2.2.1/commands/START_SESSION", token, start)
                assert body["data"]["result"] == "ACCEPTED"
                rt.board.sim.car.request_power()
                await wait_until(lambda: rt.board.relay.closed, what="relay closed")
                sid = rt.core.session_id
            # leaving now is what a crash leaves: the session stays open in the journal
        assert not [r for r in emsp.received if r[1] == "cdrs"]
        async with open_runtime(cfg, clock=Clock(speed=20)) as rt:
            assert rt.receipt(sid) is not None  # the boot closed it
            _, _, cpo = await start_cpo(rt, tmp_path / "ocpi", outbox=rt.journal, clock=rt.clock.wall_s,
                                        push_poll_s=0.05)
            try:
                cdrs = await emsp.wait_for(lambda r: r[0] == "POST" and r[1] == "cdrs", "the CDR", 15)
                assert cdrs[0][2]["session_id"] == sid
            finally:
                await cpo.close()
    finally:
        await emsp.close()
