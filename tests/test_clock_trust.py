"""The clock: known synchronised or not from the system's own signals, followed when corrected,
and no selling while it cannot be trusted (free vend and allow-listed cards still charge)."""
from __future__ import annotations

import logging
import time

import pytest

from agent import clock_hold
from agent.bootstrap import open_runtime
from agent.clock import Clock
from agent.service import ServiceError
from agent.timesync import FLOOR_S, ClockTrust
from protocols.signing._codec import parse_time
from protocols.signing.agency import read_agency_public_key
from protocols.signing.receipt import verify_receipt
from tests.support import sim_config, wait_until

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


def _times(receipt: dict) -> tuple[int, int]:
    return (parse_time(receipt["start"]["time"], field="start"), parse_time(receipt["stop"]["time"], field="stop"))


async def _charge_to_the_limit(rt) -> str:
    car = rt.board.sim.car
    car.plug_in()  # free vend: plugging in starts the session
    await wait_until(lambda: rt.core.session_id is not None, what="free-vend authorization")
    sid = rt.core.session_id
    car.request_power()
    await wait_until(lambda: rt.core.stop_reason == "limit_energy", timeout_s=30, what="energy limit")
    car.unplug()
    await wait_until(lambda: rt.clock_status().held_receipts == 1 or rt.receipt(sid), what="the session's end")
    return sid


@pytest.mark.runtime
async def test_a_session_on_an_untrusted_clock_is_held_then_signed_with_true_times_once_synchronised(tmp_path):
    ahead = {"s": 400 * DAY_S}  # booted 400 days ahead
    synced = {"now": False}
    wall = lambda: time.time() + ahead["s"]  # noqa: E731
    trust = ClockTrust(kernel=lambda: synced["now"], flag_path=tmp_path / "no-flag", wall=wall)
    clock = Clock(speed=60, wall=wall)
    cfg = sim_config(tmp_path, default_limit_wh=100)
    events = []
    async with open_runtime(cfg, clock=clock, clock_trust=trust) as rt:
        rt.add_listener(lambda kind, obj: events.append((kind, obj)))
        true_before_s = clock.wall_s() - ahead["s"]
        sid = await _charge_to_the_limit(rt)
        true_ended_s = clock.wall_s() - ahead["s"]
        assert rt.receipt(sid) is None and not [e for e in events if e[0] == "receipt"]
        view = rt.session(sid)
        assert view.status == "COMPLETED" and view.energy_wh >= 95  # ended at once, not at the next boot
        assert rt.clock_status().held_receipts == 1
        (clock_health,) = [h for h in rt.health() if h.part == "clock"]
        assert clock_health.ok is False and "1 receipts held until it is synchronised" in clock_health.detail
        ahead["s"] = 0  # NTP steps the clock back to the true time
        synced["now"] = True
        rt._check_clock()
        receipt = rt.receipt(sid)
        assert receipt is not None and rt.clock_status().held_receipts == 0
        verify_receipt(receipt, agency_public_key=read_agency_public_key(cfg.agency_key), require_ocmf=True)
        start_s, stop_s = _times(receipt)
        assert true_before_s - 2 <= start_s <= stop_s <= true_ended_s + 2
        assert parse_time(receipt["issued_at"], field="issued_at") <= clock.wall_s() + 1
        assert [obj.trusted for kind, obj in events if kind == "clock"] == [True]
        assert [obj.session_id for kind, obj in events if kind == "receipt"] == [sid]
        assert rt.session(sid).stop_s == pytest.approx(stop_s, abs=1)


@pytest.mark.runtime
async def test_a_held_receipt_is_not_signed_by_a_later_boot_that_cannot_date_it(tmp_path, monkeypatch, caplog):
    caplog.set_level(logging.ERROR, logger="urja.runtime")
    wall = lambda: time.time() + 730 * DAY_S  # noqa: E731
    cfg = sim_config(tmp_path, default_limit_wh=100)
    untrusted = ClockTrust(kernel=lambda: False, flag_path=tmp_path / "no-flag", wall=wall)
    async with open_runtime(cfg, clock=Clock(speed=60, wall=wall), clock_trust=untrusted) as rt:
        sid = await _charge_to_the_limit(rt)
        assert rt.receipt(sid) is None
    monkeypatch.setattr(clock_hold, "read_boot_id", lambda: "another-boot")
    trusted = ClockTrust(kernel=lambda: True, flag_path=tmp_path / "no-flag")
    async with open_runtime(cfg, clock=Clock(speed=60), clock_trust=trusted) as rt:
        assert rt.clock_trusted and rt.receipt(sid) is None  # neither reconcile nor the release signs it
        assert rt.clock_status().held_receipts == 1
    assert any(f"session {sid}: its times were taken on an unsynchronised clock in an earlier boot" in r.getMessage()
               for r in caplog.records)
