"""Several boards share one site's limit over MQTT on a real local broker (mosquitto)."""
from __future__ import annotations

import pytest

from agent.bootstrap import open_runtime
from agent.clock import Clock
from agent.load.federation import FollowerShares, RemoteBoards
from agent.load.manager import ConnectorSpec, LoadManager
from agent.load.settings import LoadSettings
from drivers.configfile import ConfigError
from tests.support import sim_config, wait_until
from tools.broker import Broker, find_mosquitto

MANAGER = """
[load]
limit_a = 25
margin_pct = 0
hysteresis_a = 0

[load_share]
role = "manager"
broker = "{url}"
site = "home"
board = "main"
period_ms = 200
timeout_ms = 1000
"""
FOLLOWER = """
[load_share]
role = "follower"
broker = "{url}"
site = "home"
board = "garage"
period_ms = 200
timeout_ms = 1000
safe_share_a = 6
"""


def test_a_follower_keeps_the_managers_share_while_fresh_then_its_safe_share():
    follower = FollowerShares(safe_share_a=6.0, timeout_ms=1000)
    assert follower.current(["1"], 0) == {"1": 6.0}
    follower.received({"1": 14.0}, 100)
    assert follower.current(["1"], 1100) == {"1": 14.0}
    assert follower.current(["1"], 1101) == {"1": 6.0}


def test_the_manager_budgets_a_followers_connectors_and_forgets_a_silent_one():
    lm = LoadManager(settings=LoadSettings(limit_a=20, phases=1, margin_pct=0, hysteresis_a=0),
                     connectors=[ConnectorSpec(connector_id="1", kind="pilot", max_current_a=16)])
    boards = RemoteBoards(lm, timeout_ms=1000)
    lm.demand("1", True, 0)
    boards.state("garage", [{"id": "1", "kind": "pilot", "max_current_a": 16, "phases": [0], "wants": True,
                             "current_a": 0.0}], 0)
    lm.grid_reading((2.0,), 460, 100)
    assert lm.last.limits_a == {"1": 12.0, "garage/1": 6.0} and boards.shares("garage") == {"1": 6.0}
    assert boards.expire(1000) == []
    assert boards.expire(1001) == ["garage"]
    assert lm.grid_reading((2.0,), 460, 1200).limits_a == {"1": 16.0, "garage/1": 0.0}
    with pytest.raises(ValueError):
        boards.state("x", [{"id": "1", "kind": "bicycle", "max_current_a": 16, "phases": [0], "wants": True,
                            "current_a": 0.0}], 0)


def test_the_load_share_table_is_checked_when_the_configuration_is_read(tmp_path):
    table = FOLLOWER.format(url="mqtt://127.0.0.1:1883").replace("timeout_ms = 1000", "timeout_ms = 500")
    with pytest.raises(ConfigError) as info:  # 500 ms is not two periods of 400
        sim_config(tmp_path, extra_toml=table.replace("period_ms = 200", "period_ms = 400"))
    assert info.value.key == "load_share.timeout_ms" and "at least 800" in str(info.value)


@pytest.mark.broker
@pytest.mark.runtime
@pytest.mark.asyncio
async def test_a_follower_board_charges_on_the_managers_share_and_falls_back_when_the_manager_goes(tmp_path):
    if find_mosquitto() is None:
        pytest.skip("mosquitto is not installed (apt install mosquitto)")
    with Broker(tmp_path) as broker:
        main_cfg = sim_config(tmp_path, site_id="in.test.main", board="sim-grid",
                              extra_toml=MANAGER.format(url=broker.url))
        garage_cfg = sim_config(tmp_path, site_id="in.test.garage", extra_toml=FOLLOWER.format(url=broker.url))
        async with open_runtime(garage_cfg, clock=Clock(speed=1)) as garage:
            pilot = garage.board.pilot
            car = garage.board.sim.car
            car.plug_in()
            await wait_until(lambda: garage.core.session_id is not None, what="free-vend authorization")
            car.request_power()
            # No manager yet: the safe share.
            await wait_until(lambda: pilot.offered_current_a == 6, what="the safe share", timeout_s=5)
            main = open_runtime(main_cfg, clock=Clock(speed=1))
            site = await main.__aenter__()
            try:
                grid = site.board.grid_sim
                grid.house = _Flat(3.0)
                grid._draws = lambda: [pilot.draw_a] * 3  # the garage is on the same supply
                # 25 A less 3 A of house: the garage is offered 22 A and its car takes its 16 A.
                await wait_until(lambda: pilot.offered_current_a == 22 and pilot.draw_a == 16,
                                 what="the manager's share", timeout_s=10)
                assert "garage" in site.load_status()["followers"]
                grid.extra_a = [12.0, 0.0, 0.0]  # 15 A of house leaves the garage 10 A
                await wait_until(lambda: pilot.offered_current_a == 10, what="a lower share", timeout_s=10)
            finally:
                await main.__aexit__(None, None, None)
            went_s = garage.clock.monotonic_s()
            await wait_until(lambda: pilot.offered_current_a == 6, what="the safe share again", timeout_s=5)
            # Within the timeout and one period of the last share.
            assert garage.clock.monotonic_s() - went_s <= 1.0 + 0.2 + 0.3


class _Flat:
    def __init__(self, amps: float):
        self.amps = amps

    def current_a(self, t_s: float):
        return (self.amps, self.amps, self.amps)
