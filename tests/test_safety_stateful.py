"""Random event sequences against the supervisor; the safety invariant is checked after every step.

The model below is written from the invariant's wording, not from the supervisor's code: it
tracks only what must hold for the relay to be closed and fails the moment the relay is closed
while any of it does not.
"""
from __future__ import annotations

from hypothesis import HealthCheck, event, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from agent.core.auth import Authorization
from agent.core.errors import AgentError
from agent.core.safety import SafetySupervisor
from agent.core.session import (
    AuthGranted,
    AuthRevoked,
    CancelTimer,
    CloseRelay,
    Fault,
    LimitReached,
    LocalReset,
    MeterReading,
    OpenRelay,
    PilotChanged,
    RelayFeedback,
    ScheduleTimer,
    Session,
    SessionSettings,
    StopRequested,
    TimerFired,
)

METER_TIMEOUT_MS = 5000


class SupervisorMachine(RuleBasedStateMachine):
    mode = "pilot"

    @initialize()
    def start(self):
        self.session = Session(settings=SessionSettings(mode=self.mode, finish_hold_ms=5000),
                               cost=lambda e, t, i: e * 20 + t // 60000 + i // 60000)
        self.sup = SafetySupervisor(session=self.session)
        self.now = 0
        self.seq = 0
        self.relay = None
        self.timers = {}
        self.energy_wh = 1000
        self.pilot_state = "A"
        self.reading_ms = None
        self.latched = False
        self.auth = None          # the Authorization the model believes active
        self.first_close = None   # (time, energy) when the relay first closed under it
        self.pending_energy_wh = None  # the energy of a reading while its commands are applied
        self.commands_seen = 0
        # The gate can only act when called: time checks use the last instant it evaluated.
        self.checked_ms = 0

    # --- plumbing ---------------------------------------------------------------------------

    def _apply(self, out):
        for command in out:
            if self.commands_seen == 0:
                assert command == OpenRelay("boot"), "first command must open the relay"
            self.commands_seen += 1
            if isinstance(command, CloseRelay):
                assert self.relay is not True, "close while closed"
                self.relay = True
                if self.auth is not None and self.first_close is None:
                    # A close caused by a reading happens at that reading's energy, which the
                    # model has not stored yet while the commands are applied.
                    energy = self.pending_energy_wh if self.pending_energy_wh is not None else self.energy_wh
                    self.first_close = (self.now, energy)
            elif isinstance(command, OpenRelay):
                self.relay = False
            elif isinstance(command, ScheduleTimer):
                self.timers[command.timer_id] = command.at_ms
            elif isinstance(command, CancelTimer):
                self.timers.pop(command.timer_id, None)

    def _feed(self, event):
        state_before = self.session.state
        relay_before = self.sup.relay_closed
        try:
            out = self.sup.handle(event)
        except AgentError:
            assert self.session.state == state_before and self.sup.relay_closed == relay_before
            return False
        self.checked_ms = event.time_ms
        self._apply(out)
        return True

    def _advance(self, dt):
        self.now += dt

    def _end_auth(self):
        self.auth = None
        self.first_close = None

    # --- rules ------------------------------------------------------------------------------

    @rule(dt=st.integers(0, 3000),
          energy=st.none() | st.integers(1, 200),
          time_limit=st.none() | st.integers(1000, 60000),
          departure=st.none() | st.integers(1, 90000),
          money=st.none() | st.integers(1, 5000))
    def authorize(self, dt, energy, time_limit, departure, money):
        self._advance(dt)
        self.seq += 1
        auth = Authorization(auth_id="a%d" % self.seq, source="contract", token="t",
                             energy_limit_wh=energy, time_limit_ms=time_limit, money_limit_paise=money,
                             departure_ms=None if departure is None else self.now + departure)
        before = (self.auth, self.first_close)
        # The relay may close within this very call, so the model must know the grant first.
        self.auth, self.first_close = auth, None
        if not self._feed(AuthGranted(auth, self.now)):
            self.auth, self.first_close = before
        elif self.session.active_auth_id != auth.auth_id:
            self._end_auth()

    @rule(energy=st.none() | st.integers(5, 200), time_limit=st.none() | st.integers(2000, 60000))
    def plug_read_and_authorize(self, energy, time_limit):
        """A common happy path, so that many sequences reach a closed relay and go on from there."""
        if self.mode == "pilot":
            self.pilot_change(0, "C")
        self.reading(0, 0, 0, 0.0)
        self.authorize(0, energy, time_limit, None, None)

    @rule(dt=st.integers(0, 3000), current=st.booleans())
    def revoke(self, dt, current):
        self._advance(dt)
        auth_id = self.auth.auth_id if (current and self.auth is not None) else "nobody"
        if self._feed(AuthRevoked(auth_id, self.now)) and auth_id != "nobody":
            self._end_auth()

    @precondition(lambda self: self.mode == "pilot")
    @rule(dt=st.integers(0, 3000), state=st.sampled_from(["A", "B", "C", "D", "C", "C", "E", "F", "diode_fault"]))
    def pilot_change(self, dt, state):
        self._advance(dt)
        if self._feed(PilotChanged(state, self.now)):
            self.pilot_state = state
            if state in ("E", "F", "diode_fault"):
                self.latched = True
                self._end_auth()
            elif state == "A" and self.first_close is not None:
                self._end_auth()

    @rule(dt=st.integers(0, 3000), delta=st.integers(-2, 30), power=st.integers(0, 22000),
          current=st.floats(0, 45, allow_nan=False))
    def reading(self, dt, delta, power, current):
        self._advance(dt)
        energy = max(0, self.energy_wh + delta)
        self.pending_energy_wh = energy if self.reading_ms is None or energy >= self.energy_wh else None
        try:
            fed = self._feed(MeterReading(self.now, energy, power, (current, current / 2, 0.0)))
        finally:
            self.pending_energy_wh = None
        if fed:
            # The first reading ever has nothing to run backwards from.
            if self.reading_ms is not None and energy < self.energy_wh:
                self.latched = True
                self._end_auth()
            else:
                self.reading_ms = self.now
                self.energy_wh = energy

    @rule(dt=st.integers(0, 1000))
    def tick(self, dt):
        self._advance(dt)
        self._apply(self.sup.tick(self.now))
        self.checked_ms = self.now

    @precondition(lambda self: bool(self.timers))
    @rule(data=st.data())
    def fire_timer(self, data):
        timer_id = data.draw(st.sampled_from(sorted(self.timers)))
        at = self.timers.pop(timer_id)
        self.now = max(self.now, at)
        self._feed(TimerFired(timer_id, self.now))

    @rule(dt=st.integers(0, 3000), latch=st.booleans())
    def fault(self, dt, latch):
        self._advance(dt)
        if self._feed(Fault("driver_fault", self.now, latch=latch)):
            self.latched = self.latched or latch
            self._end_auth()

    @rule(dt=st.integers(0, 3000))
    def reset(self, dt):
        self._advance(dt)
        if self._feed(LocalReset(self.now)):
            self.latched = False

    @rule(dt=st.integers(0, 3000))
    def stop(self, dt):
        self._advance(dt)
        if self._feed(StopRequested(self.now)):
            self._end_auth()

    @rule(dt=st.integers(0, 3000))
    def limit(self, dt):
        self._advance(dt)
        if self._feed(LimitReached("external", self.now)):
            self._end_auth()

    @rule(dt=st.integers(0, 3000), closed=st.booleans())
    def feedback(self, dt, closed):
        self._advance(dt)
        self._feed(RelayFeedback(closed, self.now))

    # --- the invariant ----------------------------------------------------------------------

    @invariant()
    def relay_closed_only_when_safe(self):
        if not hasattr(self, "sup"):
            return
        assert self.relay == self.sup.relay_closed or (self.relay is None and not self.sup.relay_closed)
        if not self.relay:
            return
        event("relay closed under test")
        auth = self.auth
        assert auth is not None, "closed without an active authorization"
        assert self.session.active_auth_id == auth.auth_id
        assert not self.latched and self.sup.latched_fault is None, "closed with a latched fault"
        now = self.checked_ms
        assert self.reading_ms is not None and now - self.reading_ms <= METER_TIMEOUT_MS, "meter silent"
        if self.mode == "pilot":
            assert self.pilot_state in ("C", "D"), "closed with pilot %s" % self.pilot_state
        if auth.departure_ms is not None:
            assert now < auth.departure_ms, "closed past departure"
        start_ms, start_wh = self.first_close
        if auth.time_limit_ms is not None:
            assert now - start_ms < auth.time_limit_ms, "closed past time limit"
        if auth.energy_limit_wh is not None:
            assert self.energy_wh - start_wh < auth.energy_limit_wh, "closed past energy limit"


SupervisorMachine.TestCase.settings = settings(max_examples=300, stateful_step_count=40, deadline=None,
                                               suppress_health_check=[HealthCheck.too_slow])
TestPilotSupervisor = SupervisorMachine.TestCase


class SocketSupervisorMachine(SupervisorMachine):
    mode = "socket"


SocketSupervisorMachine.TestCase.settings = settings(max_examples=150, stateful_step_count=40, deadline=None,
                                                     suppress_health_check=[HealthCheck.too_slow])
TestSocketSupervisor = SocketSupervisorMachine.TestCase
