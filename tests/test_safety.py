"""One test per timing rule of the safety gate, plus its configuration bounds."""
from __future__ import annotations

import pytest

from agent.core.auth import Authorization
from agent.core.errors import AgentError
from agent.core.safety import FaultPersists, SafetyConfigError, SafetySettings, SafetySupervisor
from agent.core.session import (
    AuthGranted,
    CloseRelay,
    Fault,
    JournalRecord,
    LocalReset,
    MeterReading,
    OpenRelay,
    PilotChanged,
    RelayFeedback,
    Session,
    SessionSettings,
)


def charging_rig(mode="pilot", **safety):
    """A supervisor with a car charging at 32 A offered, relay closed at t=1000."""
    session = Session(settings=SessionSettings(mode=mode, max_current_a=32))
    sup = SafetySupervisor(session=session, settings=SafetySettings(**safety))
    sup.handle(MeterReading(0, 5000, 0, 0.0))
    if mode == "pilot":
        sup.handle(PilotChanged("C", 500))
    out = sup.handle(AuthGranted(Authorization(auth_id="a1", source="allow_list", token="card"), 1000))
    assert out[-1] == CloseRelay("permitted") and sup.relay_closed
    return sup


def test_first_command_is_open_whatever_came_first():
    session = Session()
    sup = SafetySupervisor(session=session)
    out = sup.handle(PilotChanged("C", 0))
    assert out[0] == OpenRelay("boot")
    other = SafetySupervisor(session=Session())
    assert other.tick(5)[0] == OpenRelay("boot")
    assert SafetySupervisor(session=Session()).boot(0)[0] == OpenRelay("boot")


def test_session_relay_requests_never_reach_the_runtime():
    session = Session()
    sup = SafetySupervisor(session=session)
    sup.handle(PilotChanged("C", 0))
    # No meter reading yet: the session asks for power, the gate refuses.
    out = sup.handle(AuthGranted(Authorization(auth_id="a1", source="free_vend"), 10))
    assert session.relay_requested and not sup.relay_closed
    assert not any(isinstance(c, CloseRelay) for c in out)
    assert session.state == "suspended_evse"
    out = sup.handle(MeterReading(20, 1, 0, 0.0))
    assert out[-1] == CloseRelay("permitted") and session.state == "charging"


@pytest.mark.parametrize("state", ["B", "A"])
def test_pilot_leaving_c_opens_on_the_same_event(state):
    sup = charging_rig()
    out = sup.handle(PilotChanged(state, 1001))
    assert out[0] == OpenRelay("pilot_" + state) and not sup.relay_closed


@pytest.mark.parametrize("state", ["E", "F", "diode_fault"])
def test_pilot_error_states_open_at_once_and_latch(state):
    sup = charging_rig()
    out = sup.handle(PilotChanged(state, 1001))
    assert out[0] == OpenRelay("fault_pilot_" + state)
    assert sup.latched_fault == "pilot_" + state and sup.session.state == "faulted"
    # The fault stays latched even when the pilot recovers and someone re-authorizes.
    sup.handle(PilotChanged("C", 1100))
    with pytest.raises(AgentError, match="local reset"):
        sup.handle(AuthGranted(Authorization(auth_id="a2", source="free_vend"), 1200))
    sup.handle(MeterReading(1300, 5000, 0, 0.0))
    assert not sup.relay_closed
    sup.handle(LocalReset(1400))
    assert sup.latched_fault is None
    out = sup.handle(AuthGranted(Authorization(auth_id="a2", source="free_vend"), 1500))
    assert out[-1] == CloseRelay("permitted")


def test_overcurrent_opens_after_exactly_seven_seconds():
    sup = charging_rig()
    limit_a = 32 * 1.1 + 0.5  # 35.7 A
    sup.handle(MeterReading(2000, 5000, 8000, (limit_a + 0.1, 30.0, 30.0)))
    for t in range(3000, 9000, 1000):
        sup.handle(MeterReading(t, 5000, 8000, (36.0, 30.0, 30.0)))
    assert sup.tick(8999) == [] and sup.relay_closed
    out = sup.tick(9000)
    assert out[0] == OpenRelay("overcurrent") and not sup.relay_closed
    assert sup.latched_fault is None and sup.session.state == "finishing"


def test_overcurrent_window_restarts_when_current_drops():
    sup = charging_rig()
    sup.handle(MeterReading(2000, 5000, 8000, 36.0))
    sup.handle(MeterReading(8000, 5000, 8000, 35.7))  # at the limit is not over it
    sup.handle(MeterReading(8500, 5000, 8000, 36.0))
    sup.handle(MeterReading(12_000, 5000, 8000, 36.0))
    sup.handle(MeterReading(15_000, 5000, 8000, 36.0))
    assert sup.tick(15_499) == [] and sup.relay_closed
    assert sup.tick(15_500)[0] == OpenRelay("overcurrent")


def test_overcurrent_settings_are_configurable_within_bounds():
    sup = charging_rig(overcurrent_margin_pct=0, overcurrent_extra_a=0, overcurrent_hold_ms=2000)
    sup.handle(MeterReading(2000, 5000, 8000, 32.5))
    sup.handle(MeterReading(3000, 5000, 8000, 32.5))
    assert sup.tick(4000)[0] == OpenRelay("overcurrent")


def test_meter_timeout_opens_after_five_seconds():
    sup = charging_rig()
    sup.handle(MeterReading(1000, 5000, 7000, 30.0))
    assert sup.tick(6000) == [] and sup.relay_closed
    out = sup.tick(6001)
    assert out[0] == OpenRelay("meter_timeout")
    assert sup.session.state == "suspended_evse"
    out = sup.handle(MeterReading(6500, 5001, 7000, 30.0))
    assert out[-1] == CloseRelay("permitted") and sup.session.state == "charging"


def test_weld_detected_by_feedback_after_settle_time():
    sup = charging_rig()
    sup.handle(RelayFeedback(True, 1050))
    sup.handle(PilotChanged("B", 2000))
    assert not sup.relay_closed
    sup.handle(RelayFeedback(True, 2100))
    assert sup.tick(3999) == [] and sup.latched_fault is None
    sup.tick(4000)
    assert sup.latched_fault == "relay_welded" and sup.session.state == "faulted"
    assert "feedback still closed" in sup.latched_detail
    # Only a local reset clears it, and not while the weld persists: refused, nothing changes.
    with pytest.raises(FaultPersists, match="relay_welded persists .*feedback") as info:
        sup.handle(LocalReset(4100))
    assert info.value.code == "fault-persists"
    sup.tick(4150)
    assert sup.latched_fault == "relay_welded" and sup.session.state == "faulted"
    sup.handle(RelayFeedback(False, 4200))
    out = sup.handle(LocalReset(4300))
    assert JournalRecord("fault_reset", {"code": "relay_welded", "time_ms": 4300}) in out
    sup.tick(4400)
    assert sup.latched_fault is None and sup.session.state != "faulted"


def test_weld_detected_by_current_after_open():
    sup = charging_rig()
    sup.handle(PilotChanged("B", 2000))
    # A reading inside the settle time may still show the current decaying: not a weld.
    sup.handle(MeterReading(3000, 5001, 7000, 30.0))
    assert sup.latched_fault is None
    out = sup.handle(MeterReading(4000, 5002, 7000, 30.0))
    assert sup.latched_fault == "relay_welded"
    assert any(isinstance(c, JournalRecord) and c.data.get("code") == "relay_welded" for c in out)


def test_a_reading_taken_before_the_open_but_handled_late_is_no_weld():
    """The weld check goes by when the meter was read, not when the event was handled.

    A reading taken while the contacts were still closed can queue behind the open (the
    dispatcher busy closing the session) and be handled after the settle time; it shows the
    current from before the open and proves nothing about the contacts.
    """
    sup = charging_rig()
    sup.handle(PilotChanged("B", 2000))  # the relay opens at 2000 ms
    out = sup.handle(MeterReading(4500, 5001, 7000, 30.0, read_ms=1990))  # read before the open
    assert sup.latched_fault is None and not any(isinstance(c, JournalRecord) and c.record == "fault" for c in out)
    out = sup.handle(MeterReading(4600, 5002, 7000, 30.0, read_ms=3900))  # read inside the settle time
    assert sup.latched_fault is None
    assert sup.tick(5000) == [] and sup.latched_fault is None
    # The same current in a reading *taken* after the settle time is a weld, handled late or not.
    out = sup.handle(MeterReading(6000, 5003, 7000, 30.0, read_ms=4000))
    assert sup.latched_fault == "relay_welded"
    assert any(isinstance(c, JournalRecord) and c.data.get("code") == "relay_welded" for c in out)
    assert sup.latched_detail == "30.0 A measured 2000 ms after the relay was opened"
    # While it still flows, a local reset is refused; once a later reading shows none, it clears.
    with pytest.raises(FaultPersists, match="30.0 A still flows"):
        sup.handle(LocalReset(6100))
    sup.handle(MeterReading(7000, 5003, 0, 0.0, read_ms=7000))
    sup.handle(LocalReset(7100))
    assert sup.latched_fault is None


def test_a_read_time_after_the_event_time_counts_as_the_event_time():
    sup = charging_rig()
    sup.handle(PilotChanged("B", 2000))
    # A clock disagreement must not make a reading look later than it was handled.
    sup.handle(MeterReading(3000, 5001, 7000, 30.0, read_ms=9000))
    assert sup.latched_fault is None


@pytest.mark.parametrize("state", ["E", "diode_fault"])
def test_a_pilot_fault_is_not_reset_while_the_pilot_still_reports_it(state):
    sup = charging_rig()
    sup.handle(PilotChanged(state, 1500))
    assert sup.latched_detail == "control pilot reported " + state
    with pytest.raises(FaultPersists, match="pilot still reports " + state):
        sup.handle(LocalReset(1600))
    assert sup.latched_fault == "pilot_" + state and sup.session.state == "faulted"
    sup.handle(PilotChanged("A", 1700))
    sup.handle(LocalReset(1800))
    assert sup.latched_fault is None and sup.session.state == "idle"


def test_no_weld_when_current_stops():
    sup = charging_rig()
    sup.handle(PilotChanged("B", 2000))
    sup.handle(MeterReading(4000, 5001, 0, 0.0))
    sup.handle(RelayFeedback(False, 4100))
    sup.tick(10_000)
    assert sup.latched_fault is None


def test_energy_register_going_backwards_latches():
    sup = charging_rig()
    sup.handle(MeterReading(2000, 5010, 7000, 30.0))
    out = sup.handle(MeterReading(3000, 5009, 7000, 30.0))
    assert out[0] == OpenRelay("fault_meter_energy_backwards")
    assert sup.latched_fault == "meter_energy_backwards"


def test_external_latching_fault_opens():
    sup = charging_rig()
    out = sup.handle(Fault("rcd_trip", 2000))
    assert out[0] == OpenRelay("fault_rcd_trip") and sup.latched_fault == "rcd_trip"


def test_socket_mode_has_no_pilot_condition():
    sup = charging_rig(mode="socket")
    assert sup.permitted(1000) == (True, None)


def test_relay_hook_sees_every_relay_command():
    seen = []
    session = Session()
    sup = SafetySupervisor(session=session)
    sup.on_relay_command = seen.append
    sup.handle(MeterReading(0, 1, 0, 0.0))
    sup.handle(PilotChanged("C", 1))
    sup.handle(AuthGranted(Authorization(auth_id="a", source="free_vend"), 2))
    sup.handle(PilotChanged("B", 3))
    assert seen == [OpenRelay("boot"), CloseRelay("permitted"), OpenRelay("pilot_B")]


@pytest.mark.parametrize("key,value", [
    ("meter_timeout_ms", 60_000), ("meter_timeout_ms", 0), ("overcurrent_margin_pct", 50),
    ("overcurrent_extra_a", -1), ("overcurrent_hold_ms", 30_000), ("weld_settle_ms", 10),
    ("weld_current_a", 50), ("overcurrent_hold_ms", 7000.5),
])
def test_unsafe_settings_are_rejected_naming_key_and_range(key, value):
    with pytest.raises(SafetyConfigError) as info:
        SafetySettings(**{key: value})
    low, high, _ = SafetySettings.RANGES[key]
    assert info.value.details == {"key": key, "allowed": (low, high)}
    assert key in str(info.value) and str(high) in str(info.value)
    assert info.value.code == "unsafe-config"


def test_unknown_setting_in_table_is_rejected():
    with pytest.raises(SafetyConfigError, match="meter_timout_ms"):
        SafetySettings.from_dict({"meter_timout_ms": 4000}, source="board.toml [safety]")
    assert SafetySettings.from_dict({"meter_timeout_ms": 4000}).meter_timeout_ms == 4000
