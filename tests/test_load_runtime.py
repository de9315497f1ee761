"""The load manager in the running agent: a simulated grid meter, the real Modbus client, the car."""
from __future__ import annotations

import pytest

from agent.bootstrap import open_runtime
from agent.clock import Clock
from board.profile import load_profile
from drivers.configfile import ConfigError
from tests.support import sim_config, wait_until

pytestmark = pytest.mark.runtime

LOAD = """
[load]
limit_a = 20
margin_pct = 0
hysteresis_a = 0
safe_current_a = 6
grid_timeout_ms = 3000
"""


def test_the_grid_meter_table_is_read_and_its_errors_name_the_key(tmp_path):
    profile = load_profile("sim-grid")
    assert profile.grid_meter.backend == "sim" and profile.grid_meter.options["house_scale"] == 0.5
    assert ("grid meter", "sim: model=sdm630, house_scale=0.5, house_start_h=18.0, house_seed=1, timeout_ms=500, "
            "retries=2") in profile.summary()
    bad = tmp_path / "bad.toml"
    text = load_profile("sim-grid").path.read_text()
    bad.write_text(text.replace("house_scale = 0.5", "house_scal = 0.5"))
    with pytest.raises(ConfigError) as info:
        load_profile(bad)
    assert info.value.key == "grid_meter.house_scal"
    rtu = tmp_path / "rtu.toml"
    rtu.write_text(text.replace('[grid_meter]\nbackend = "sim"\nmodel = "sdm630"\nhouse_scale = 0.5\nhouse_start_h = 18.0',
                                '[grid_meter]\nbackend = "modbus-rtu"\nmodel = "sdm630"\ndevice = "/dev/ttyS1"\n'
                                'unit_id = 0'))
    with pytest.raises(ConfigError) as info:
        load_profile(rtu)
    assert info.value.key == "grid_meter.unit_id"


@pytest.mark.asyncio
async def test_a_step_in_the_house_lowers_the_offer_within_two_seconds_of_the_reading_that_shows_it(tmp_path):
    cfg = sim_config(tmp_path, auth="free_vend", board="sim-grid", extra_toml=LOAD)
    clock = Clock(speed=10)
    async with open_runtime(cfg, clock=clock) as rt:
        pilot = rt.board.pilot
        grid = rt.board.grid_sim
        grid.house = _Flat(1.0)
        car = rt.board.sim.car
        car.plug_in()
        await wait_until(lambda: rt.core.session_id is not None, what="free-vend authorization")
        car.request_power()
        await wait_until(lambda: rt.board.relay.closed and pilot.draw_a == 16, what="charging at 16 A")
        assert rt.load_status()["shares_a"] == {"1": 19.0} and rt.safety.limit_a == 19.0
        step_ms = clock.monotonic_ms()
        grid.extra_a = [9.0, 0.0, 0.0]  # 2 kW more on phase 1: 20 - 10 leaves the car 10 A
        await wait_until(lambda: pilot.offered_current_a == 10, what="the offer lowered", timeout_s=5)
        assert clock.monotonic_ms() - step_ms <= 2000 + rt.config.meter_poll_ms
        await wait_until(lambda: pilot.draw_a == 10, what="the car following")
        status = rt.load_status()
        assert status["mode"] == "grid" and status["shares_a"] == {"1": 10.0}
        assert status["house_a"][0] == pytest.approx(10.0, abs=0.2)
        # The grid meter goes silent: after its timeout the safe current holds.
        grid.server.silent = True
        await wait_until(lambda: pilot.offered_current_a == 6, what="the safe current", timeout_s=10)
        assert rt.load_status()["mode"] == "fallback"


class _Flat:
    """A house that draws the same on every phase, all day."""

    def __init__(self, amps: float):
        self.amps = amps

    def current_a(self, t_s: float) -> tuple[float, ...]:
        return (self.amps, self.amps, self.amps)


@pytest.mark.asyncio
async def test_a_grid_meter_on_the_same_link_shares_the_meters_bus_and_reads_its_own_unit(tmp_path):
    from board.build import build_board
    from drivers.meter.simserver import SimMeterServer

    charger = SimMeterServer("sdm120", unit_id=1)
    site = SimMeterServer("sdm630", unit_id=2, serial_number="20000002")
    charger.add_neighbour(site)
    port = await charger.start_tcp("127.0.0.1", 0)
    try:
        charger.current_a = 7.0
        site.current_a = [12.0, 3.0, 4.0]
        profile = tmp_path / "shared.toml"
        profile.write_text(f"""
[board]
name = "shared"
max_current_a = 15
phases = 1
[meter]
backend = "modbus-tcp"
model = "sdm120"
host = "127.0.0.1"
port = {port}
unit_id = 1
[relay]
backend = "sim"
fail_safe = "simulated"
[pilot]
backend = "none"
[grid_meter]
backend = "modbus-tcp"
model = "sdm630"
host = "127.0.0.1"
port = {port}
unit_id = 2
""")
        async with build_board(profile) as board:
            assert board.grid_meter.bus is board.meter.bus
            own, whole = await board.meter.read(), await board.grid_meter.read()
            assert own.current_a == (7.0,)
            assert whole.current_a == (12.0, 3.0, 4.0) and whole.serial == "20000002"
    finally:
        await charger.stop()


@pytest.mark.asyncio
async def test_a_load_table_on_a_board_without_a_grid_meter_is_refused_naming_the_table(tmp_path):
    cfg = sim_config(tmp_path, auth="free_vend", board="sim", extra_toml=LOAD)
    with pytest.raises(ConfigError) as info:
        async with open_runtime(cfg, clock=Clock(speed=10)):
            pass
    assert info.value.key == "load" and "grid_meter" in str(info.value)
