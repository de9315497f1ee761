"""The clock: known synchronised or not from the system's own signals, followed when corrected,
and no selling while it cannot be trusted (free vend and allow-listed cards still charge)."""
from __future__ import annotations

import logging

import pytest

from agent.bootstrap import open_runtime
from agent.clock import Clock
from agent.service import ServiceError
from agent.timesync import FLOOR_S, ClockTrust
from tests.support import sim_config

DAY_S = 86400
NOW_S = FLOOR_S + 300 * DAY_S


class FakeTime:
    def __init__(self, wall_s: float):
        self.wall_s = wall_s
        self.mono_s = 1000.0

    def wall(self) -> float:
        return self.wall_s

    def monotonic(self) -> float:
        return self.mono_s


def test_a_clock_730_days_behind_is_not_trusted_whatever_the_flags_say(tmp_path):
    flag = tmp_path / "synchronized"
    flag.touch()
    trust = ClockTrust(kernel=lambda: True, flag_path=flag, wall=lambda: NOW_S - 730 * DAY_S)
    trusted, reason = trust.check()
    assert not trusted and "has not been set" in reason


def test_the_kernel_and_timesyncd_decide_when_the_time_is_plausible(tmp_path):
    flag = tmp_path / "synchronized"
    unsynced = ClockTrust(kernel=lambda: False, flag_path=flag, wall=lambda: NOW_S)
    assert unsynced.check() == (False, "not synchronised (the kernel reports its clock unsynchronised, "
                                       "no timesyncd flag)")
    assert ClockTrust(kernel=lambda: True, flag_path=flag, wall=lambda: NOW_S).check()[0]
    assert not ClockTrust(kernel=lambda: None, flag_path=flag, wall=lambda: NOW_S).check()[0]
    flag.touch()
    assert unsynced.check() == (True, "synchronised (systemd-timesyncd)")
    assert ClockTrust(required=False, kernel=lambda: False, wall=lambda: 0).check()[0]


def test_the_runtime_clock_follows_a_correction_after_boot():
    t = FakeTime(NOW_S + 400 * DAY_S)  # booted 400 days ahead
    clock = Clock(wall=t.wall, monotonic=t.monotonic)
    t.mono_s += 60
    t.wall_s += 60
    assert clock.wall_s() == NOW_S + 400 * DAY_S + 60
    t.wall_s = NOW_S  # NTP steps the clock back
    t.mono_s += 1
    assert clock.wall_s() == NOW_S
    fast = Clock(speed=60, wall=t.wall, monotonic=t.monotonic)
    t.mono_s += 10
    t.wall_s += 10
    assert fast.wall_s() == NOW_S + 600  # simulated time still runs 60x


@pytest.mark.runtime
async def test_an_untrusted_clock_refuses_sales_but_free_vend_still_charges(tmp_path, caplog):
    caplog.set_level(logging.INFO, logger="urja.runtime")
    synced = {"now": False}
    trust = ClockTrust(kernel=lambda: synced["now"], flag_path=tmp_path / "no-flag")
    cfg = sim_config(tmp_path, auth="network")
    async with open_runtime(cfg, clock=Clock(speed=30), clock_trust=trust) as rt:
        assert rt.clock_trusted is False and "not synchronised" in rt.clock_reason
        for source in ("ocpi", "contract"):
            with pytest.raises(ServiceError, match="clock is not trusted"):
                await rt.start_session(source=source, reference="r1", token="TOKEN-1", energy_limit_wh=100)
        assert rt.core.session_id is None
        view = await rt.start_session(source="allow_list", reference="r2", token="DEMO-RFID-0001")
        assert view.session_id is not None
        synced["now"] = True
        rt._check_clock()
        assert rt.clock_trusted is True
    lines = [r.getMessage() for r in caplog.records if r.name == "urja.runtime"]
    assert any(line.startswith("clock not trusted: not synchronised") for line in lines)
    assert any(line.startswith("clock: synchronised (the kernel's NTP state)") for line in lines)
