"""The charging session: events in, commands out.

Why a pure state machine: the same logic must run on the Linux board, under MicroPython on a small
controller, in property tests and in benchmarks, and a session must be replayable from a journal.
So nothing here reads a clock, touches hardware or awaits: every event carries ``time_ms`` (an int
on one monotonic clock chosen by the runtime), and every effect is a command object the runtime
carries out. The relay commands a session emits are *requests*: only ``agent.core.safety`` decides
whether the relay closes (see ``SafetySupervisor``); the session never talks to the relay directly.

Two modes
---------
``pilot``: an IEC 61851 control pilot reports the car. State B means plugged, C or D means the car
asks for power. Current is offered (PWM duty) only while authorized and plugged; the relay is
requested when the car asks, released when it stops asking (C->B pauses, B->C resumes) and the
session ends when the car leaves (A).

``socket``: a plain socket outlet without a pilot. The relay is requested as soon as someone is
authorized; the car is considered plugged in once the current stays above ``plug_current_a`` for
``plug_hold_ms``, and finished once it stays below ``finish_current_a`` for ``finish_hold_ms``.
Without a pilot there is no way to see the car leave, so the session ends when the relay opens.

States and transitions
----------------------
=========================== ============================================ ===========================
state                       event                                        next state
=========================== ============================================ ===========================
idle / finished             pilot B, C or D                              plugged_waiting_for_auth
idle / finished             authorization granted                        authorized_waiting_for_car
                                                                         (socket: relay requested)
plugged_waiting_for_auth    authorization granted, pilot B               authorized_waiting_for_car
plugged_waiting_for_auth    authorization granted, pilot C or D          charging
plugged_waiting_for_auth    pilot A                                      idle
authorized_waiting_for_car  pilot C or D                                 charging
authorized_waiting_for_car  socket: current > plug threshold, held       charging
authorized_waiting_for_car  stop, revoke, limit (nothing delivered yet)  finished (socket) or
                                                                         idle / plugged_waiting...
authorized_waiting_for_car  plug timeout: no car (pilot A; socket: no    finished (socket) or idle
                            current) ``plug_timeout_ms`` after the grant
charging                    pilot C->B (pause)                           suspended_ev
charging                    socket: current < finish threshold           suspended_ev
charging                    safety gate withholds power (meter silent)   suspended_evse
suspended_ev                pilot B->C (resume)                          charging
suspended_ev                socket: current back above finish threshold  charging
suspended_ev                socket: current below threshold, held        finished
suspended_evse              safety gate permits again                    charging
charging / suspended_*      stop, revoke, limit, non-latching fault      finishing (pilot, car
                                                                         plugged) or finished
charging / suspended_*      pilot A (car left)                           finished
finishing                   pilot A (car left)                           finished
any                         pilot E, F, diode fault, latching fault      faulted
faulted                     local reset                                  idle or
                                                                         plugged_waiting_for_auth
=========================== ============================================ ===========================

``finished`` behaves like ``idle`` for what comes next; it stays visible so that status pages show
the last session's totals until something new happens.

Limits
------
Limits (energy, money, time, departure) are enforced predictively: after each meter reading the
session computes when the first limit will be reached from the measured power and emits
``ScheduleTimer(LIMIT_TIMER, at_ms)``; when that timer fires the session stops. This ends a
session within milliseconds of its limit instead of up to a whole meter poll late. Money uses the
injected cost function (``cost_paise(energy_wh, elapsed_ms, idle_ms)`` or an object with such a
method, owned by the tariff engine); it must be non-decreasing in each argument, which lets the
session find the crossing time by bisection without knowing the tariff.

Idle time
---------
Tariffs charge for parking: once the car has drawn power in a session, time counts as idle while
the relay is not requested (paused in B, finishing) or the last reading shows less than
``finish_current_a`` on every phase, until a reading shows it drawing again or the session ends.

Modules
-------
This module holds the state machine and keeps every name callers import from it. The rest is
in siblings: ``session_states`` (state, pilot and timer names, ``SessionError``),
``session_events``, ``session_commands``, ``session_settings``, ``session_limits`` (predictive
limits) and ``session_socket`` (socket-mode detection by current).
"""

from agent.core.session_commands import (
    CancelTimer,
    CloseRelay,
    Command,
    JournalRecord,
    OpenRelay,
    PublishStatus,
    ScheduleTimer,
    SetOfferedCurrent,
)
from agent.core.session_current import CurrentControl
from agent.core.session_events import (
    AuthGranted,
    AuthRevoked,
    CurrentLimit,
    Event,
    Fault,
    GateChanged,
    LimitReached,
    LocalReset,
    MeterReading,
    PilotChanged,
    RelayFeedback,
    StopRequested,
    TimerFired,
)
from agent.core.session_limits import SessionLimits
from agent.core.session_settings import SessionSettings
from agent.core.session_socket import SocketDetection
from agent.core.session_states import (
    AUTHORIZED_WAITING_FOR_CAR,
    CHARGING,
    FAULTED,
    FINISH_HOLD_TIMER,
    FINISHED,
    FINISHING,
    IDLE,
    LIMIT_TIMER,
    MODES,
    PILOT_STATES,
    PLUG_HOLD_TIMER,
    PLUG_TIMER,
    PLUGGED_WAITING_FOR_AUTH,
    STATES,
    SUSPENDED_EV,
    SUSPENDED_EVSE,
    SessionError,
)

__all__ = [
    "AUTHORIZED_WAITING_FOR_CAR", "CHARGING", "FAULTED", "FINISHED", "FINISHING", "FINISH_HOLD_TIMER", "IDLE",
    "LIMIT_TIMER", "MODES", "PILOT_STATES", "PLUGGED_WAITING_FOR_AUTH", "PLUG_HOLD_TIMER", "PLUG_TIMER", "STATES",
    "SUSPENDED_EV", "SUSPENDED_EVSE", "AuthGranted", "AuthRevoked", "CancelTimer", "CloseRelay", "Command",
    "CurrentLimit",
    "Event", "Fault", "GateChanged", "JournalRecord", "LimitReached", "LocalReset", "MeterReading", "OpenRelay",
    "PilotChanged", "PublishStatus", "RelayFeedback", "ScheduleTimer", "Session", "SessionError",
    "SessionSettings", "SetOfferedCurrent", "StopRequested", "TimerFired",
]


class Session(SessionLimits, SocketDetection, CurrentControl):
    """One connector's sessions, one after another.

    ``cost`` is the tariff engine's ``cost_paise(energy_wh, elapsed_ms, idle_ms) -> int`` (or an
    object with that method); it is needed only for money limits and cost in status messages.
    ``new_session_id`` makes session ids (injected so journals and tests are deterministic).
    """

    def __init__(self, *, settings=None, cost=None, new_session_id=None):
        self.settings = settings if settings is not None else SessionSettings()
        if not isinstance(self.settings, SessionSettings):
            raise SessionError("settings must be a SessionSettings", code="bad-config", key="settings")
        if cost is not None and not callable(cost):
            method = getattr(cost, "cost_paise", None)
            if method is None or not callable(method):
                raise SessionError("cost must be a callable or have a cost_paise method",
                                   code="bad-config", key="cost")
            cost = method
        self._cost_fn = cost
        self._counter = 0
        self._new_session_id = new_session_id if new_session_id is not None else self._next_counter_id
        self.pilot_mode = self.settings.mode == "pilot"
        self.state = IDLE
        self.pilot = "A" if self.pilot_mode else None
        self.last_summary = None
        self._now_ms = 0
        self._gate_ok = True
        self._fault_code = None
        # Last reading.
        self._reading_ms = None
        self._energy_wh = None
        self._power_w = 0
        self._current_a = 0.0
        self._init_current()
        self._clear_session()

    def _next_counter_id(self):
        self._counter += 1
        return "s%d" % self._counter

    def _clear_session(self):
        self._auth = None
        self._auth_active = False
        self.session_id = None
        self.relay_requested = False
        self._start_ms = None
        self._start_energy_wh = None
        self._idle_ms = 0
        self._idle_since_ms = None
        self._has_drawn = False
        self._above_since_ms = None
        self._below_since_ms = None
        self._timers = {}
        self._stop_reason = None

    # --- queries used by the supervisor and the runtime -------------------------------------

    @property
    def active_auth_id(self):
        """The authorization that currently lets power flow, or None once the session stops."""
        if self._auth is not None and self._auth_active:
            return self._auth.auth_id
        return None

    @property
    def authorization(self):
        return self._auth

    @property
    def stop_reason(self):
        """Why the running (or just finished) session stopped; None while it runs."""
        if self._stop_reason is not None:
            return self._stop_reason
        if self.state == FINISHED and self.last_summary is not None:
            return self.last_summary["reason"]
        return None

    @property
    def busy(self):
        return self._auth is not None or self.state == FAULTED

    def delivered_wh(self):
        if self._start_energy_wh is None or self._energy_wh is None:
            return 0
        delivered = self._energy_wh - self._start_energy_wh
        return delivered if delivered > 0 else 0

    def idle_ms(self, now_ms):
        if self._idle_since_ms is None:
            return self._idle_ms
        return self._idle_ms + (now_ms - self._idle_since_ms)

    def elapsed_ms(self, now_ms):
        if self._start_ms is None:
            return 0
        return now_ms - self._start_ms

    def cost_paise(self, now_ms):
        if self._cost_fn is None or self._start_ms is None:
            return None
        return self._cost(self.delivered_wh(), self.elapsed_ms(now_ms), self.idle_ms(now_ms))

    def snapshot(self, now_ms):
        """Status for publishers and status pages; totals of the running session."""
        auth = self._auth
        return {
            "state": self.state,
            "session_id": self.session_id,
            "auth_id": auth.auth_id if auth is not None else None,
            "source": auth.source if auth is not None else None,
            "pilot": self.pilot,
            "energy_wh": self.delivered_wh(),
            "cost_paise": self.cost_paise(now_ms),
            "elapsed_ms": self.elapsed_ms(now_ms),
            "idle_ms": self.idle_ms(now_ms),
            "stop_reason": self._stop_reason,
            "fault": self._fault_code,
            "last_session": self.last_summary if self.state == FINISHED else None,
        }

    # --- event entry point --------------------------------------------------------------------

    def validate(self, event):
        """Raise ``SessionError`` if ``event`` cannot apply now; changes nothing either way."""
        if not isinstance(event, Event):
            raise SessionError("not an event: %r" % (event,), code="bad-event")
        if event.time_ms < self._now_ms:
            raise SessionError("%s at %d ms is older than the last event at %d ms"
                               % (type(event).__name__, event.time_ms, self._now_ms),
                               code="time-backwards", field="time_ms")
        if getattr(self, "_on_" + event.kind, None) is None:
            raise SessionError("event kind %r is not handled by the session" % event.kind, code="bad-event")
        self._check(event)

    def handle(self, event):
        """Apply one event; returns the commands it causes. Invalid events change nothing."""
        self.validate(event)
        handler = getattr(self, "_on_" + event.kind)
        before = self.state
        out = []
        self._now_ms = event.time_ms
        handler(event, out)
        if self.state != before:
            out.append(PublishStatus(self.snapshot(event.time_ms)))
        return out

    def _check(self, event):
        """Refuse events that cannot apply before anything is changed."""
        kind = event.kind
        if kind == "auth_granted":
            auth = event.auth
            if self.state == FAULTED:
                raise SessionError("cannot authorize %s: charger faulted (%s); a local reset is needed"
                                   % (auth.auth_id, self._fault_code), code="session-faulted")
            if self._auth is not None:
                raise SessionError("cannot authorize %s: session %s already holds %s"
                                   % (auth.auth_id, self.session_id, self._auth.auth_id), code="session-busy")
            if auth.money_limit_paise is not None and self._cost_fn is None:
                raise SessionError("authorization %s has a money limit but no cost function was given"
                                   % auth.auth_id, code="no-tariff")
            if auth.departure_ms is not None and auth.departure_ms <= event.time_ms:
                raise SessionError("authorization %s departs at %d ms, which has passed"
                                   % (auth.auth_id, auth.departure_ms), code="auth-expired")
        elif kind == "auth_revoked":
            if self._auth is None or self._auth.auth_id != event.auth_id:
                raise SessionError("cannot revoke %s: not the active authorization" % event.auth_id,
                                   code="unknown-authorization", auth_id=event.auth_id)
        elif kind == "pilot_changed":
            if not self.pilot_mode:
                raise SessionError("pilot event in socket mode: this connector has no control pilot",
                                   code="bad-event", field="state")

    # --- handlers -----------------------------------------------------------------------------

    def _on_auth_granted(self, event, out):
        now = event.time_ms
        auth = event.auth
        self._clear_session()
        self._fault_code = None
        self._auth = auth
        self._auth_active = True
        self.session_id = self._new_session_id()
        out.append(JournalRecord("authorized", {"session_id": self.session_id, "auth_id": auth.auth_id,
                                                "source": auth.source, "time_ms": now,
                                                "limits": auth.limits()}))
        if not self.pilot_mode:
            self.state = AUTHORIZED_WAITING_FOR_CAR
            out.append(SetOfferedCurrent(self.offered_a()))
            self._open(now, out)
            self._wait_for_car(now, out)
            return
        if self.pilot in ("B", "C", "D"):
            out.append(SetOfferedCurrent(self.offered_a()))
        if self.pilot in ("C", "D"):
            self._start_charging(now, out)
        else:
            self.state = AUTHORIZED_WAITING_FOR_CAR
            if self.pilot == "A":
                self._wait_for_car(now, out)

    def _on_auth_revoked(self, event, out):
        # After a stop the session is only waiting for the car to leave; nothing left to revoke.
        if self._auth_active:
            self._stop(event.reason, event.time_ms, out)

    def _on_stop_requested(self, event, out):
        if self._auth is not None and self._auth_active:
            self._stop(event.reason, event.time_ms, out)
        if event.finish and self.state == FINISHING:
            self._finish(self._stop_reason or event.reason, event.time_ms, out)

    def _on_limit_reached(self, event, out):
        if self._auth is not None and self._auth_active:
            self._stop("limit_" + str(event.limit), event.time_ms, out)

    def _on_fault(self, event, out):
        now = event.time_ms
        if event.latch:
            if self.state == FAULTED:
                return
            self._fault_code = event.code
            self._drop_power(out)
            if self._start_ms is not None:
                self._stop_reason = event.code
                self._finish(event.code, now, out)
            self._clear_session()
            self.state = FAULTED
            return
        if self._auth is not None and self._auth_active:
            self._stop(event.code, now, out)

    def _on_local_reset(self, event, out):
        if self.state != FAULTED:
            return
        self._fault_code = None
        self.state = PLUGGED_WAITING_FOR_AUTH if self.pilot in ("B", "C", "D") else IDLE
        out.append(JournalRecord("fault_cleared", {"time_ms": event.time_ms}))

    def _on_relay_feedback(self, event, out):
        return

    def _on_gate_changed(self, event, out):
        self._gate_ok = event.permitted
        if not event.permitted and self.state == CHARGING:
            self.state = SUSPENDED_EVSE
        elif event.permitted and self.state == SUSPENDED_EVSE and not self.load_paused:
            self.state = CHARGING

    def _on_pilot_changed(self, event, out):
        now = event.time_ms
        new = event.state
        self.pilot = new
        if new in ("E", "F", "diode_fault"):
            # The supervisor latches these too; the session does not wait for it.
            self._on_fault(Fault("pilot_" + new, now, latch=True), out)
            return
        state = self.state
        if state == FAULTED:
            return
        if new == "A":
            if state in (CHARGING, SUSPENDED_EV, SUSPENDED_EVSE, FINISHING):
                self._drop_power(out)
                reason = self._stop_reason or "ev_disconnected"
                self._finish(reason, now, out)
            elif state == PLUGGED_WAITING_FOR_AUTH:
                self.state = IDLE
            elif state == AUTHORIZED_WAITING_FOR_CAR:
                out.append(SetOfferedCurrent(0))
                self._wait_for_car(now, out)
            return
        # B, C or D: a car is there.
        if state in (IDLE, FINISHED):
            self.state = PLUGGED_WAITING_FOR_AUTH
        elif state == AUTHORIZED_WAITING_FOR_CAR:
            self._cancel(PLUG_TIMER, out)
            out.append(SetOfferedCurrent(self.offered_a()))
            if new in ("C", "D"):
                self._start_charging(now, out)
        elif state in (CHARGING, SUSPENDED_EVSE) and new == "B":
            self.state = SUSPENDED_EV
            self.relay_requested = False
            out.append(OpenRelay("ev_paused"))
            self._update_idle(now)
        elif state == SUSPENDED_EV and new in ("C", "D"):
            self._start_charging(now, out)

    def _on_meter_reading(self, event, out):
        now = event.time_ms
        self._reading_ms = now
        self._energy_wh = event.energy_wh
        self._power_w = event.power_w
        self._current_a = event.max_current_a
        if self._start_ms is not None and self._start_energy_wh is None:
            self._start_energy_wh = event.energy_wh
        if self.relay_requested and self._current_a >= self.settings.finish_current_a and self._start_ms is not None:
            self._has_drawn = True
        if not self.pilot_mode:
            self._socket_holds(now, out)
        self._update_idle(now)
        if self.relay_requested and self._auth_active:
            due = self.limit_due(now)
            if due is not None:
                self._stop("limit_" + due, now, out)
            else:
                self._plan_limits(now, out)

    def _on_timer_fired(self, event, out):
        now = event.time_ms
        at_ms = self._timers.get(event.timer_id)
        if at_ms is None or now < at_ms:
            return
        del self._timers[event.timer_id]
        if event.timer_id == PLUG_TIMER:
            if self.state == AUTHORIZED_WAITING_FOR_CAR and self._auth_active and not self._has_drawn \
                    and (not self.pilot_mode or self.pilot == "A"):
                self._stop("plug_timeout", now, out)
        elif event.timer_id == LIMIT_TIMER:
            due = self.limit_due(now)
            if due is not None:
                self._stop("limit_" + due, now, out)
            elif self._auth_active:
                self._plan_limits(now, out)
        elif not self.pilot_mode:
            self._socket_holds(now, out)
            self._update_idle(now)

    # --- mechanics ----------------------------------------------------------------------------

    def _open(self, now, out):
        """Start counting the session: energy, elapsed time and limits from here."""
        if self._start_ms is not None:
            return
        self._start_ms = now
        self._start_energy_wh = self._energy_wh
        self.relay_requested = True
        out.append(CloseRelay("session"))
        out.append(JournalRecord("session_start", {"session_id": self.session_id, "time_ms": now,
                                                   "meter_wh": self._energy_wh}))
        self._plan_limits(now, out)

    def _wait_for_car(self, now, out):
        """The authorization lapses if no car comes (plugs in; socket: draws) within the timeout."""
        self._schedule(PLUG_TIMER, now + self.settings.plug_timeout_ms, out)

    def _start_charging(self, now, out):
        self._cancel(PLUG_TIMER, out)
        if self._start_ms is None:
            self._open(now, out)
        elif not self.relay_requested:
            self.relay_requested = True
            out.append(CloseRelay("ev_resumed"))
        self.state = self._running_state()
        self._update_idle(now)

    def _drop_power(self, out):
        self.relay_requested = False
        out.append(OpenRelay("session"))
        if self.pilot_mode:
            out.append(SetOfferedCurrent(0))

    def _stop(self, reason, now, out):
        """End the charging part: open, stop offering; the car may stay parked (idle counts)."""
        self._auth_active = False
        self._stop_reason = reason
        self._drop_power(out)
        self._cancel(LIMIT_TIMER, out)
        self._update_idle(now)
        out.append(JournalRecord("session_stop", {"session_id": self.session_id, "reason": reason,
                                                  "time_ms": now}))
        if self.pilot_mode and self.pilot in ("B", "C", "D") and self._start_ms is not None:
            self.state = FINISHING
            return
        if self._start_ms is None:
            # Nothing was ever delivered: the authorization lapses without a session record.
            self._clear_session()
            self.state = PLUGGED_WAITING_FOR_AUTH if self.pilot in ("B", "C", "D") else IDLE
            return
        self._finish(reason, now, out)

    def _finish(self, reason, now, out):
        self._update_idle(now)
        if self._idle_since_ms is not None:
            self._idle_ms += now - self._idle_since_ms
            self._idle_since_ms = None
        summary = {
            "session_id": self.session_id,
            "auth_id": self._auth.auth_id if self._auth is not None else None,
            "reason": reason,
            "start_ms": self._start_ms,
            "end_ms": now,
            "energy_wh": self.delivered_wh(),
            "elapsed_ms": now - self._start_ms,
            "idle_ms": self._idle_ms,
            "cost_paise": self.cost_paise(now),
            "meter_start_wh": self._start_energy_wh,
            "meter_end_wh": self._energy_wh,
        }
        for timer_id in list(self._timers):
            self._cancel(timer_id, out)
        out.append(JournalRecord("session_end", summary))
        self.last_summary = summary
        self._clear_session()
        self.state = FINISHED

    def _cancel(self, timer_id, out):
        if timer_id in self._timers:
            del self._timers[timer_id]
            out.append(CancelTimer(timer_id))

    def _schedule(self, timer_id, at_ms, out):
        if self._timers.get(timer_id) != at_ms:
            self._timers[timer_id] = at_ms
            out.append(ScheduleTimer(timer_id, at_ms))

    def _is_idle(self):
        if self._start_ms is None or not self._has_drawn or self.load_paused:
            return False
        if not self.relay_requested or self.state == SUSPENDED_EVSE:
            return True
        return self._current_a < self.settings.finish_current_a

    def _update_idle(self, now):
        idle = self._is_idle()
        if idle and self._idle_since_ms is None:
            self._idle_since_ms = now
        elif not idle and self._idle_since_ms is not None:
            self._idle_ms += now - self._idle_since_ms
            self._idle_since_ms = None
