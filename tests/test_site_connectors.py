"""A board with several connectors: one session per connector, one site limit over them all."""
from __future__ import annotations

import asyncio

import pytest

from agent.bootstrap import open_runtime
from agent.clock import Clock
from board.profile import load_profile
from drivers.configfile import ConfigError
from protocols.signing.agency import read_agency_public_key
from protocols.signing.receipt import verify_receipt
from tests.support import sim_config
from tools.sim_site import SimDriver

pytestmark = pytest.mark.runtime

LIMIT_KW = 3.3
LOAD = f"""
[load]
limit_kw = {LIMIT_KW}
fairness = "equal_share"
rotation_s = 60
"""


def test_a_profile_names_its_connectors_each_with_its_own_drivers(tmp_path):
    profile = load_profile("sim-bharat3")
    assert [c.connector_id for c in profile.connectors] == ["1", "2", "3"]
    assert [c.supply_phases for c in profile.connectors] == [(0,), (1,), (2,)]
    assert all(c.board.pilot.backend == "none" and c.board.phases == 1 for c in profile.connectors)
    twin = load_profile("sim-twin-type2")
    assert [c.supply_phases for c in twin.connectors] == [(0, 1, 2), (0, 1, 2)]
    text = profile.path.read_text()
    for bad, key in ((text.replace('id = "2"', 'id = "1"'), "connector[1].id"),
                     (text.replace("phase = 3", "phase = 4"), "connector[2].phase"),
                     (text + '\n[relay]\nbackend = "sim"\n', "relay")):
        path = tmp_path / "bad.toml"
        path.write_text(bad)
        with pytest.raises(ConfigError) as info:
            load_profile(path)
        assert info.value.key == key


@pytest.mark.asyncio
async def test_three_socket_outlets_charge_three_cars_under_a_shared_limit_never_above_it_beyond_the_bound(tmp_path):
    cfg = sim_config(tmp_path, auth="free_vend", board="sim-bharat3", default_limit_wh=60, extra_toml=LOAD)
    seen: list[tuple[int, float]] = []  # (clock ms, site power W) at every grid meter read
    async with open_runtime(cfg, clock=Clock(speed=30)) as site:
        grid = site.runtimes[0].board.grid_sim
        refresh = grid.refresh

        def record() -> None:
            refresh()
            seen.append((site.clock.monotonic_ms(), grid.server.power_w))

        grid.refresh = record
        assert [c.connector_id for c in site.connectors()] == ["1", "2", "3"]
        assert [c.evse_uid for c in site.connectors()] == [f"{cfg.site_id}-{i}" for i in (1, 2, 3)]
        drivers = [SimDriver(rt, park_s=30, tell=lambda t: None, error=AssertionError, charge_kw=0.3)
                   for rt in site.runtimes]
        receipts = await asyncio.gather(*(d.visit() for d in drivers))
        status = site.load_status()
        sessions = {v.session_id: v for v in site.sessions()}
    assert status["limit_kw"] == LIMIT_KW and set(status["shares_a"]) == {"1", "2", "3"}
    by_connector = {}
    for receipt in receipts:
        sid = receipt["receipt_id"].removeprefix("rcpt-")
        by_connector[sessions[sid].connector_id] = receipt
        assert receipt["energy_wh"] >= 55
        cid = sessions[sid].connector_id
        assert receipt["evse"] == {"uid": f"{cfg.site_id}-{cid}", "connector_id": cid}
        assert f'"CI":"{cfg.site_id}-{cid}"' in receipt["ocmf"]
        verify_receipt(receipt, agency_public_key=read_agency_public_key(cfg.agency_key), require_ocmf=True)
    assert set(by_connector) == {"1", "2", "3"}
    # Above 3.3 kW only while a switch takes effect: one grid reading (1 s) plus the reaction (2 s).
    longest_ms = run_ms = 0
    for (t0, w0), (t1, _) in zip(seen, seen[1:], strict=False):
        run_ms = run_ms + (t1 - t0) if w0 > LIMIT_KW * 1000 else 0
        longest_ms = max(longest_ms, run_ms)
    assert len(seen) > 100
    assert longest_ms <= 3000, longest_ms


@pytest.mark.asyncio
async def test_twin_type2_connectors_share_the_limit_equally_and_each_offers_its_share(tmp_path):
    from tests.support import wait_until

    load = '\n[load]\nlimit_a = 25\nmargin_pct = 0\nhysteresis_a = 0\nfairness = "equal_share"\n'
    cfg = sim_config(tmp_path, auth="free_vend", board="sim-twin-type2", extra_toml=load)
    async with open_runtime(cfg, clock=Clock(speed=10)) as site:
        grid = site.runtimes[0].board.grid_sim
        grid.house = _Flat(3.0)
        for rt in site.runtimes:
            rt.board.sim.car.plug_in()
        await wait_until(lambda: all(rt.core.session_id for rt in site.runtimes), what="both authorized")
        for rt in site.runtimes:
            rt.board.sim.car.request_power()
        # 25 A less 3 A of house: 11 A each, on every phase.
        await wait_until(lambda: [rt.board.pilot.draw_a for rt in site.runtimes] == [11, 11], what="11 A each",
                         timeout_s=20)
        assert site.load_status()["shares_a"] == {"1": 11.0, "2": 11.0}
        ids = {v.connector_id for v in site.sessions() if v.status == "ACTIVE"}
        assert ids == {"1", "2"}
        await site.stop_session(site.runtimes[1].core.session_id)
        await wait_until(lambda: site.runtimes[0].board.pilot.draw_a == 16, what="the first car takes what is free",
                         timeout_s=20)


class _Flat:
    def __init__(self, amps: float):
        self.amps = amps

    def current_a(self, t_s: float):
        return (self.amps, self.amps, self.amps)
