"""A board with several connectors: one session per connector, one site limit over them all."""
from __future__ import annotations

import asyncio

import pytest

from agent.bootstrap import open_runtime
from agent.clock import Clock
from board.profile import load_profile
from drivers.configfile import ConfigError
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
    assert set(by_connector) == {"1", "2", "3"}
    # Above 3.3 kW only while a switch takes effect: one grid reading (1 s) plus the reaction (2 s).
    longest_ms = run_ms = 0
    for (t0, w0), (t1, _) in zip(seen, seen[1:], strict=False):
        run_ms = run_ms + (t1 - t0) if w0 > LIMIT_KW * 1000 else 0
        longest_ms = max(longest_ms, run_ms)
    assert len(seen) > 100
    assert longest_ms <= 3000, longest_ms
