"""Session behaviour in both modes, driven through the safety supervisor as the runtime does."""
from __future__ import annotations

import pytest

from agent.core.auth import Authorization
from agent.core.safety import SafetySupervisor
from agent.core.session import (
    FINISH_HOLD_TIMER,
    LIMIT_TIMER,
    PLUG_HOLD_TIMER,
    AuthGranted,
    AuthRevoked,
    CancelTimer,
    CloseRelay,
    Fault,
    JournalRecord,
    LimitReached,
    LocalReset,
    MeterReading,
    OpenRelay,
    PilotChanged,
    PublishStatus,
    ScheduleTimer,
    Session,
    SessionError,
    SessionSettings,
    SetOfferedCurrent,
    StopRequested,
    TimerFired,
)


class Rig:
    """Drives a supervisor like the runtime would: keeps the relay state and pending timers."""

    def __init__(self, mode="pilot", cost=None, **settings):
        self.session = Session(settings=SessionSettings(mode=mode, **settings), cost=cost)
        self.sup = SafetySupervisor(session=self.session)
        self.relay = None
        self.timers = {}
        self.log = []
        self.energy_wh = 10_000
        self.now = 0

    def feed(self, event):
        self.now = event.time_ms
        out = self.sup.handle(event)
        self._apply(out)
        return out

    def tick(self, now):
        self.now = now
        out = self.sup.tick(now)
        self._apply(out)
        return out

    def _apply(self, out):
        for command in out:
            self.log.append(command)
            if isinstance(command, CloseRelay):
                self.relay = True
            elif isinstance(command, OpenRelay):
                self.relay = False
            elif isinstance(command, ScheduleTimer):
                self.timers[command.timer_id] = command.at_ms
            elif isinstance(command, CancelTimer):
                self.timers.pop(command.timer_id, None)

    def reading(self, t, power_w=0, current_a=0.0, energy_wh=None):
        if energy_wh is not None:
            self.energy_wh = energy_wh
        return self.feed(MeterReading(t, self.energy_wh, power_w, (current_a, current_a, current_a)))

    def fire(self, timer_id):
        at = self.timers.pop(timer_id)
        return self.feed(TimerFired(timer_id, at))

    def records(self, name):
        return [c.data for c in self.log if isinstance(c, JournalRecord) and c.record == name]


def auth(auth_id="a1", **limits):
    return Authorization(auth_id=auth_id, source="contract", token="order-1", **limits)


def test_pilot_session_plug_authorize_charge_unplug():
    rig = Rig()
    rig.reading(0)
    rig.feed(PilotChanged("B", 100))
    assert rig.session.state == "plugged_waiting_for_auth"
    out = rig.feed(AuthGranted(auth(), 200))
    assert SetOfferedCurrent(32) in out and rig.relay is False
    assert rig.session.state == "authorized_waiting_for_car"
    out = rig.feed(PilotChanged("C", 300))
    assert out[-1] == CloseRelay("permitted") and rig.relay is True
    assert rig.session.state == "charging"
    for i in range(1, 4):
        rig.reading(300 + i * 1000, power_w=7400, current_a=32.0, energy_wh=10_000 + 2 * i)
    out = rig.feed(PilotChanged("A", 5000))
    assert out[0] == OpenRelay("pilot_A") and rig.relay is False
    assert rig.session.state == "finished"
    (end,) = rig.records("session_end")
    assert end["energy_wh"] == 6 and end["reason"] == "ev_disconnected" and end["elapsed_ms"] == 4700


def test_authorized_before_plug_then_car_arrives():
    rig = Rig()
    rig.reading(0)
    rig.feed(AuthGranted(auth(), 10))
    assert rig.session.state == "authorized_waiting_for_car" and rig.relay is False
    out = rig.feed(PilotChanged("B", 20))
    assert SetOfferedCurrent(32) in out
    rig.feed(PilotChanged("C", 30))
    assert rig.relay is True and rig.session.state == "charging"


def test_pause_resume_counts_idle_time():
    rig = Rig()
    rig.reading(0)
    rig.feed(PilotChanged("C", 10))
    rig.feed(AuthGranted(auth(), 20))
    assert rig.relay is True
    rig.reading(1000, power_w=7400, current_a=32.0, energy_wh=10_002)
    out = rig.feed(PilotChanged("B", 1500))
    assert out[0] == OpenRelay("pilot_B") and rig.session.state == "suspended_ev"
    rig.reading(2000)
    rig.feed(PilotChanged("C", 4500))
    assert rig.relay is True and rig.session.state == "charging"
    rig.reading(5000, power_w=7400, current_a=32.0, energy_wh=10_004)
    # Idle from the pause until a reading shows the car drawing again (the 2000 ms reading said 0 A).
    assert rig.session.idle_ms(5000) == 3500
    # Car stays in C but stops drawing: idle again from that reading.
    rig.reading(6000, power_w=0, current_a=0.0)
    rig.reading(7000, power_w=0, current_a=0.0)
    assert rig.session.idle_ms(7000) == 4500
    rig.feed(StopRequested(8000, reason="user"))
    assert rig.session.state == "finishing" and rig.relay is False
    rig.feed(PilotChanged("A", 20_000))
    (end,) = rig.records("session_end")
    assert end["idle_ms"] == 3500 + 14_000 and end["reason"] == "user"


def test_idle_not_counted_before_the_car_ever_drew_power():
    rig = Rig()
    rig.reading(0)
    rig.feed(PilotChanged("C", 10))
    rig.feed(AuthGranted(auth(), 20))
    rig.reading(1000, current_a=0.0)
    rig.feed(PilotChanged("B", 2000))
    rig.feed(PilotChanged("A", 9000))
    (end,) = rig.records("session_end")
    assert end["idle_ms"] == 0


def test_predictive_energy_stop_lands_between_polls():
    rig = Rig()
    rig.reading(0)
    rig.feed(PilotChanged("C", 0))
    rig.feed(AuthGranted(auth(energy_limit_wh=100), 0))
    # 7200 W = 2 Wh per second; 100 Wh after 50 s.
    t = 0
    while LIMIT_TIMER not in rig.timers or rig.timers[LIMIT_TIMER] > t + 1000:
        t += 1000
        e_exact = 10_000 + 2 * t // 1000
        rig.reading(t, power_w=7200, current_a=31.3, energy_wh=e_exact)
    assert rig.timers[LIMIT_TIMER] == 50_000
    assert rig.relay is True
    out = rig.fire(LIMIT_TIMER)
    assert out[0] == OpenRelay("limit_energy")
    assert rig.session.stop_reason == "limit_energy"


def test_energy_limit_overrun_on_reading_stops_at_once():
    rig = Rig()
    rig.reading(0)
    rig.feed(PilotChanged("C", 0))
    rig.feed(AuthGranted(auth(energy_limit_wh=10), 0))
    out = rig.reading(1000, power_w=7200, current_a=31.3, energy_wh=10_011)
    assert out[0] == OpenRelay("limit_energy")


def test_predictive_money_stop_uses_injected_cost():
    calls = []

    def cost_paise(energy_wh, elapsed_ms, idle_ms):
        calls.append((energy_wh, elapsed_ms, idle_ms))
        # 20 paise per Wh plus 1 paisa per second of session.
        return energy_wh * 20 + elapsed_ms // 1000

    rig = Rig(cost=cost_paise)
    rig.reading(0)
    rig.feed(PilotChanged("C", 0))
    rig.feed(AuthGranted(auth(money_limit_paise=2000), 0))
    t = 0
    while LIMIT_TIMER not in rig.timers or rig.timers[LIMIT_TIMER] > t + 1000:
        t += 1000
        rig.reading(t, power_w=7200, current_a=31.3, energy_wh=10_000 + 2 * t // 1000)
    # energy(t) = 2 Wh/s; cost = 20 paise/Wh + 1 paisa/s: the bisection finds the first ms at
    # which the projected cost reaches the limit.
    at = rig.timers[LIMIT_TIMER]
    assert cost_paise(2 * t // 1000 + 7200 * (at - t) // 3_600_000, at, 0) >= 2000
    assert cost_paise(2 * t // 1000 + 7200 * (at - 1 - t) // 3_600_000, at - 1, 0) < 2000
    assert 48_000 <= at <= 50_000
    out = rig.fire(LIMIT_TIMER)
    assert out[0] == OpenRelay("limit_money")


def test_money_limit_without_cost_function_is_refused():
    rig = Rig()
    rig.reading(0)
    with pytest.raises(SessionError, match="no cost function"):
        rig.feed(AuthGranted(auth(money_limit_paise=100), 10))
    assert rig.session.state == "idle" and not rig.session.busy


def test_time_limit_and_departure_are_planned_at_start():
    rig = Rig()
    rig.reading(0)
    rig.feed(PilotChanged("C", 100))
    rig.feed(AuthGranted(auth(time_limit_ms=60_000), 1000))
    assert rig.timers[LIMIT_TIMER] == 61_000
    for t in range(2000, 61_000, 1000):
        rig.reading(t, power_w=3000, current_a=13.0)
    assert rig.relay is True
    assert rig.fire(LIMIT_TIMER)[0] == OpenRelay("limit_time")

    rig = Rig()
    rig.reading(0)
    rig.feed(PilotChanged("C", 100))
    rig.feed(AuthGranted(auth(departure_ms=30_000, time_limit_ms=60_000), 1000))
    assert rig.timers[LIMIT_TIMER] == 30_000
    for t in range(2000, 30_000, 1000):
        rig.reading(t, power_w=3000, current_a=13.0)
    assert rig.fire(LIMIT_TIMER)[0] == OpenRelay("limit_departure")


def test_departure_in_the_past_is_refused():
    rig = Rig()
    with pytest.raises(SessionError, match="has passed"):
        rig.feed(AuthGranted(auth(departure_ms=5), 10))


def test_revoke_and_busy():
    rig = Rig()
    rig.reading(0)
    rig.feed(PilotChanged("C", 0))
    rig.feed(AuthGranted(auth(), 10))
    with pytest.raises(SessionError, match="already holds a1"):
        rig.feed(AuthGranted(auth("a2"), 20))
    with pytest.raises(SessionError, match="not the active authorization"):
        rig.feed(AuthRevoked("zz", 30))
    assert rig.relay is True
    out = rig.feed(AuthRevoked("a1", 40))
    assert out[0] == OpenRelay("revoked") and rig.session.state == "finishing"


def test_stop_before_charging_lapses_without_session_record():
    rig = Rig()
    rig.reading(0)
    rig.feed(PilotChanged("B", 0))
    rig.feed(AuthGranted(auth(), 10))
    rig.feed(StopRequested(20))
    assert rig.session.state == "plugged_waiting_for_auth"
    assert rig.records("session_end") == [] and not rig.session.busy


def test_latched_fault_ends_session_and_needs_local_reset():
    rig = Rig()
    rig.reading(0)
    rig.feed(PilotChanged("C", 0))
    rig.feed(AuthGranted(auth(), 10))
    out = rig.feed(Fault("rcd_trip", 500))
    assert out[0] == OpenRelay("fault_rcd_trip") and rig.session.state == "faulted"
    assert rig.records("session_end")[0]["reason"] == "rcd_trip"
    with pytest.raises(SessionError, match="faulted"):
        rig.feed(AuthGranted(auth("a2"), 600))
    rig.feed(LocalReset(700))
    assert rig.session.state == "plugged_waiting_for_auth"
    rig.feed(AuthGranted(auth("a2"), 800))
    assert rig.relay is True


def test_socket_mode_relay_closes_on_authorization_and_detects_plug_and_finish():
    rig = Rig(mode="socket", max_current_a=16)
    rig.reading(0)
    out = rig.feed(AuthGranted(auth(), 100))
    assert out[-1] == CloseRelay("permitted") and rig.session.state == "authorized_waiting_for_car"
    rig.reading(1000, current_a=0.0)
    rig.reading(2000, power_w=2300, current_a=10.0, energy_wh=10_000)
    assert rig.timers[PLUG_HOLD_TIMER] == 4000
    rig.reading(3000, power_w=2300, current_a=10.0, energy_wh=10_001)
    assert rig.session.state == "authorized_waiting_for_car"
    rig.fire(PLUG_HOLD_TIMER)
    assert rig.session.state == "charging" and rig.records("ev_detected")
    rig.reading(5000, power_w=2300, current_a=10.0, energy_wh=10_002)
    rig.reading(6000, power_w=10, current_a=0.1, energy_wh=10_003)
    assert rig.session.state == "suspended_ev" and rig.timers[FINISH_HOLD_TIMER] == 66_000
    # A blip above the threshold restarts the hold.
    rig.reading(7000, power_w=500, current_a=2.0, energy_wh=10_003)
    assert rig.session.state == "charging" and FINISH_HOLD_TIMER not in rig.timers
    for t in range(8000, 68_000, 1000):
        rig.reading(t, power_w=0, current_a=0.05)
    assert rig.relay is True
    out = rig.reading(68_000, power_w=0, current_a=0.05)
    assert out[0] == OpenRelay("ev_finished") and rig.session.state == "finished"
    (end,) = rig.records("session_end")
    assert end["idle_ms"] == 1000 + 60_000 and end["energy_wh"] == 3


def test_socket_mode_plug_hold_needs_sustained_current():
    rig = Rig(mode="socket")
    rig.reading(0)
    rig.feed(AuthGranted(auth(), 0))
    rig.reading(1000, current_a=1.0)
    rig.reading(2000, current_a=0.3)
    assert PLUG_HOLD_TIMER not in rig.timers
    rig.reading(2500, current_a=1.0)
    rig.reading(4500, current_a=1.0)
    assert rig.session.state == "charging"


def test_socket_mode_rejects_pilot_events():
    rig = Rig(mode="socket")
    with pytest.raises(SessionError, match="no control pilot"):
        rig.feed(PilotChanged("C", 0))


def test_socket_mode_stop_and_limit():
    rig = Rig(mode="socket")
    rig.reading(0)
    rig.feed(AuthGranted(auth(energy_limit_wh=5), 0))
    rig.reading(1000, power_w=3600, current_a=16.0, energy_wh=10_001)
    rig.reading(3000, power_w=3600, current_a=16.0, energy_wh=10_003)
    assert rig.session.state == "charging"
    assert rig.timers[LIMIT_TIMER] == 5000
    out = rig.fire(LIMIT_TIMER)
    assert out[0] == OpenRelay("limit_energy") and rig.session.state == "finished"


def test_external_limit_reached_event_stops():
    rig = Rig()
    rig.reading(0)
    rig.feed(PilotChanged("C", 0))
    rig.feed(AuthGranted(auth(), 0))
    out = rig.feed(LimitReached("tariff", 100))
    assert out[0] == OpenRelay("limit_tariff")


def test_status_published_on_state_change():
    rig = Rig(cost=lambda e, t, i: e * 10)
    rig.reading(0)
    out = rig.feed(PilotChanged("B", 5))
    (status,) = [c.status for c in out if isinstance(c, PublishStatus)]
    assert status["state"] == "plugged_waiting_for_auth" and status["pilot"] == "B"


@pytest.mark.parametrize("bad", [
    lambda: MeterReading(0, -1, 0, 0),
    lambda: MeterReading(0, 1.5, 0, 0),
    lambda: MeterReading(0, 1, float("nan"), 0),
    lambda: MeterReading(0, 1, 0, (1, 2, 3, 4)),
    lambda: PilotChanged("G", 0),
    lambda: Fault("", 0),
])
def test_bad_events_are_refused_with_named_field(bad):
    with pytest.raises(SessionError) as info:
        bad()
    assert info.value.code == "bad-event"


def test_time_going_backwards_is_refused_without_change():
    rig = Rig()
    rig.reading(1000)
    with pytest.raises(SessionError, match="older than the last event"):
        rig.feed(PilotChanged("B", 999))
    assert rig.session.state == "idle"


@pytest.mark.parametrize("key,value", [("mode", "wifi"), ("max_current_a", 5), ("finish_hold_ms", 10),
                                       ("finish_current_a", 1.0), ("plug_hold_ms", 2.5)])
def test_bad_session_settings_name_the_key(key, value):
    with pytest.raises(SessionError) as info:
        SessionSettings(**{key: value})
    assert info.value.details["key"] == key and key in str(info.value)


def test_revoke_after_stop_keeps_the_first_stop_reason():
    rig = Rig()
    rig.reading(0)
    rig.feed(PilotChanged("C", 0))
    rig.feed(AuthGranted(auth(), 10))
    rig.feed(StopRequested(20, reason="app"))
    assert rig.feed(AuthRevoked("a1", 30)) == []
    rig.feed(PilotChanged("A", 40))
    assert [r["reason"] for r in rig.records("session_stop")] == ["app"]
    assert rig.records("session_end")[0]["reason"] == "app"
