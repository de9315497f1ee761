"""The safety gate: the only thing that ever closes the relay.

Why it is separate from the session: the session decides what the user is owed; this module
decides what is safe, and it must stay right even when the session, a driver or the network is
wrong. The runtime feeds every event to ``SafetySupervisor.handle`` (never to the session
directly) and calls ``tick(now_ms)`` every few tens of milliseconds; the supervisor forwards events
to the session, swallows the session's relay requests, and emits ``CloseRelay`` only while all of
these hold, re-checked on every event and every tick:

* an authorization is active (granted, not revoked, not stopped) and within its limits;
* the meter gave a valid reading no more than ``meter_timeout_ms`` ago;
* the control pilot (when the connector has one) is in C or D;
* no fault is latched.

When any stops holding, ``OpenRelay`` is the first command of the batch returned by the very call
that saw it, so the pilot C->B / C->A rule of IEC 61851 (open within 100 ms) is met in-process by
construction. Pilot states E and F, a diode fault, a welded contactor and a meter whose energy
register runs backwards latch a fault that only ``LocalReset`` clears, and only once the condition
is gone: a reset while the pilot still reports the error, the contactor's mirror still reads closed
or current still flows with the relay open is refused (``FaultPersists``) and changes nothing. Each
latch is journaled with a ``detail`` line for the technician. Current above the offered
current + ``overcurrent_margin_pct`` + ``overcurrent_extra_a`` for ``overcurrent_hold_ms`` stops the
session (not latched: the next car may be fine).

The site's share (``CurrentLimit``, from the load manager) is enforced here too, not only in the
session: an offered current above the share is cut down to it, and overcurrent is judged against
the ceiling in force, which after a reduction stays at the former offer for ``ev_reaction_ms``
(IEC 61851-1 gives the car 5 s to follow a new duty cycle), so a car that obeys is never stopped
and one that does not is stopped ``overcurrent_hold_ms`` later. Below 6 A power may not flow: a
socket outlet opens at once, a pilot connector once the car has had its reaction time to stop
drawing (a contactor opened under load wears; the pilot offers nothing meanwhile).

Whatever the supervisor was told before, the first command it ever returns is ``OpenRelay("boot")``:
after a restart nobody knows what state the contactor was left in.
"""

from agent.core.errors import AgentError
from agent.core.session import (
    CloseRelay,
    Fault,
    GateChanged,
    JournalRecord,
    LimitReached,
    OpenRelay,
    Session,
    SetOfferedCurrent,
)
from agent.core.session_current import offer_for


class SafetyConfigError(AgentError):
    code = "unsafe-config"


class FaultPersists(AgentError):
    """A local reset came while the latched condition is still there; the latch stays."""

    code = "fault-persists"


def _bounded(name, value, low, high, integer):
    kinds = (int,) if integer else (int, float)
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise SafetyConfigError("safety setting %s must be %s in [%s, %s], got %r"
                                % (name, "an int" if integer else "a number", low, high, value),
                                key=name, allowed=(low, high))
    if value < low or value > high:
        raise SafetyConfigError("safety setting %s = %s is unsafe; allowed range [%s, %s]" % (name, value, low, high),
                                key=name, allowed=(low, high))
    return value


class SafetySettings:
    """Thresholds of the gate; each is bounded so no configuration can make the charger unsafe.

    The ranges: a meter silent for more than 10 s cannot be trusted to see an overload; an
    overload tolerance beyond +20 % + 2 A or 10 s outlasts what cables are rated for; a weld check
    needs at least 50 ms for the contacts to part and should not wait more than 5 s to shout; a
    car is given at most the 5 s IEC 61851-1 allows it to follow a lower offer.
    """

    __slots__ = ("meter_timeout_ms", "overcurrent_margin_pct", "overcurrent_extra_a", "overcurrent_hold_ms",
                 "weld_settle_ms", "weld_current_a", "ev_reaction_ms")

    RANGES = {
        "meter_timeout_ms": (500, 10000, True),
        "overcurrent_margin_pct": (0, 20, False),
        "overcurrent_extra_a": (0, 2, False),
        "overcurrent_hold_ms": (1000, 10000, True),
        "weld_settle_ms": (50, 5000, True),
        "weld_current_a": (0.2, 5, False),
        "ev_reaction_ms": (1000, 5000, True),
    }

    def __init__(self, *, meter_timeout_ms=5000, overcurrent_margin_pct=10, overcurrent_extra_a=0.5,
                 overcurrent_hold_ms=7000, weld_settle_ms=2000, weld_current_a=1.0, ev_reaction_ms=5000):
        ranges = self.RANGES
        self.meter_timeout_ms = _bounded("meter_timeout_ms", meter_timeout_ms, *ranges["meter_timeout_ms"])
        self.overcurrent_margin_pct = _bounded("overcurrent_margin_pct", overcurrent_margin_pct,
                                               *ranges["overcurrent_margin_pct"])
        self.overcurrent_extra_a = _bounded("overcurrent_extra_a", overcurrent_extra_a,
                                            *ranges["overcurrent_extra_a"])
        self.overcurrent_hold_ms = _bounded("overcurrent_hold_ms", overcurrent_hold_ms,
                                            *ranges["overcurrent_hold_ms"])
        self.weld_settle_ms = _bounded("weld_settle_ms", weld_settle_ms, *ranges["weld_settle_ms"])
        self.weld_current_a = _bounded("weld_current_a", weld_current_a, *ranges["weld_current_a"])
        self.ev_reaction_ms = _bounded("ev_reaction_ms", ev_reaction_ms, *ranges["ev_reaction_ms"])

    @classmethod
    def from_dict(cls, values, source="safety settings"):
        """Build from a parsed config table; unknown keys are refused, naming the allowed ones."""
        if not isinstance(values, dict):
            raise SafetyConfigError("%s must be a table of settings" % source, key=source)
        for key in values:
            if key not in cls.RANGES:
                raise SafetyConfigError("%s: unknown safety setting %r; allowed: %s"
                                        % (source, key, ", ".join(sorted(cls.RANGES))),
                                        key=key, allowed=tuple(sorted(cls.RANGES)))
        return cls(**values)


class SafetySupervisor:
    """Wraps one ``Session``; the runtime talks only to this object."""

    def __init__(self, *, session, settings=None):
        if not isinstance(session, Session):
            raise AgentError("session must be an agent.core.session.Session", code="bad-config")
        self.settings = settings if settings is not None else SafetySettings()
        if not isinstance(self.settings, SafetySettings):
            raise SafetyConfigError("settings must be a SafetySettings", key="settings")
        self.session = session
        self.pilot_present = session.pilot_mode
        self._booted = False
        self._now_ms = 0
        self.relay_closed = False
        self._opened_ms = None
        self._pilot = "A" if self.pilot_present else None
        self._reading_ms = None
        self._energy_wh = None
        self._current_a = 0.0
        # When the current in ``_current_a`` was measured (the meter's read time, which may be
        # well before the event is handled when events queue up).
        self._current_read_ms = None
        self._feedback_closed = None
        self.latched_fault = None
        self.latched_detail = None
        self._over_since_ms = None
        self._offered_a = session.settings.max_current_a
        # Former, higher offers still in force: [until_ms, current_a] while the car adjusts.
        self._former_offers = []
        self._limit_a = None
        self._paused_since_ms = None
        self._auth = None
        self._first_close_ms = None
        self._gate_told = True
        # Optional synchronous observer of every relay command, for measurement and watchdogs.
        self.on_relay_command = None

    # --- public -----------------------------------------------------------------------------

    def boot(self, now_ms):
        """Force the relay open before anything else; harmless if called again."""
        out = []
        if not self._booted:
            self._boot(out, now_ms)
        return out

    def handle(self, event):  # noqa: C901
        """Feed one event; returns the commands to carry out, in order, relay first."""
        session = self.session
        session.validate(event)
        kind = event.kind
        if kind == "local_reset" and self.latched_fault is not None:
            # Refused before anything changes: the latch, the session and the clock stay as they were.
            persists = self._still_there(self.latched_fault)
            if persists is not None:
                raise FaultPersists("local reset refused: fault %s persists (%s)" % (self.latched_fault, persists),
                                    fault=self.latched_fault)
        out = []
        if not self._booted:
            self._boot(out, event.time_ms)
        now = event.time_ms
        self._now_ms = now
        latched = None
        energy_before_wh = self._energy_wh
        if kind == "pilot_changed":
            self._pilot = event.state
            if event.state in ("E", "F", "diode_fault"):
                latched = "pilot_" + event.state
        elif kind == "meter_reading":
            latched = self._on_reading(event, now)
        elif kind == "relay_feedback":
            self._feedback_closed = event.closed
            latched = self._weld_check(now)
        elif kind == "fault":
            if event.latch and self.latched_fault is None:
                self._latch(event.code, event.detail or "reported by the charger: " + event.code, now, out)
        elif kind == "current_limit":
            self._limit_a = event.limit_a
            if offer_for(event.limit_a, session.settings.max_current_a) > 0:
                self._paused_since_ms = None
            elif self._paused_since_ms is None:
                self._paused_since_ms = now
        elif kind == "local_reset":
            if self.latched_fault is not None:
                out.append(JournalRecord("fault_reset", {"code": self.latched_fault, "time_ms": now}))
            self.latched_fault = None
            self.latched_detail = None
            self._over_since_ms = None
        if latched is not None and self.latched_fault is not None:
            latched = None
        if latched is not None:
            # Latch before the session runs so the gate below can never close on this event.
            if latched == "meter_energy_backwards":
                detail = "energy register read %d Wh after %d Wh" % (event.energy_wh, energy_before_wh)
            elif latched == "relay_welded":
                detail = self._weld_detail(now)
            else:
                detail = "control pilot reported " + event.state
            self._latch(latched, detail, now, out)
        session_out = session.handle(event)
        if kind == "auth_granted" and session.active_auth_id == event.auth.auth_id:
            self._auth = event.auth
            self._first_close_ms = None
        if latched is not None:
            session_out.extend(session.handle(Fault(latched, now, latch=True)))
        self._settle(now, out, session_out)
        return out

    def tick(self, now_ms):
        """The timer half of the supervision: staleness, overload windows, weld checks, limits.

        A tick older than the last event is evaluated at the last event's time: time never runs
        backwards inside the gate.
        """
        out = []
        if not self._booted:
            self._boot(out, now_ms)
        now = now_ms if now_ms > self._now_ms else self._now_ms
        self._now_ms = now
        session_out = []
        latched = self._weld_check(now) if self.latched_fault is None else None
        if latched is not None:
            self._latch(latched, self._weld_detail(now), now, out)
            session_out.extend(self.session.handle(Fault(latched, now, latch=True)))
        self._settle(now, out, session_out)
        return out

    def permitted(self, now_ms):
        """(True, None) when power may flow now, else (False, reason); the session's wish aside."""
        if self.latched_fault is not None:
            return False, "fault_" + self.latched_fault
        if self.pilot_present and self._pilot not in ("C", "D"):
            return False, "pilot_" + str(self._pilot)
        if self._meter_stale(now_ms):
            return False, "meter_timeout"
        if self._paused_for_site(now_ms):
            return False, "current_limit"
        session = self.session
        if self._auth is None or session.active_auth_id != self._auth.auth_id:
            return False, "not_authorized"
        if self._own_limit_due(now_ms) is not None or session.limit_due(now_ms) is not None:
            return False, "limit"
        return True, None

    @property
    def limit_a(self):
        """The site's share in force for this connector (amps), or None when none was given."""
        return self._limit_a

    def status(self, now_ms):
        ok, reason = self.permitted(now_ms)
        return {
            "relay_closed": self.relay_closed,
            "permitted": ok,
            "reason": reason,
            "latched_fault": self.latched_fault,
            "latched_detail": self.latched_detail,
            "pilot": self._pilot,
            "meter_age_ms": None if self._reading_ms is None else now_ms - self._reading_ms,
            "limit_a": self._limit_a,
            "ceiling_a": self._ceiling_a(now_ms),
        }

    # --- mechanics --------------------------------------------------------------------------

    def _latch(self, code, detail, now, out):
        self.latched_fault = code
        self.latched_detail = detail
        out.append(JournalRecord("fault", {"code": code, "detail": detail, "time_ms": now, "latched": True}))

    def _still_there(self, code):
        """Why the latched condition is still present as far as the gate can see, or None.

        Faults the gate cannot observe (a meter register that ran backwards, a driver's or the
        runtime's own) are taken as gone: the next reading or event latches them again.
        """
        if code.startswith("pilot_") and self._pilot in ("E", "F", "diode_fault"):
            return "the control pilot still reports " + self._pilot
        if code == "relay_welded":
            if self._feedback_closed:
                return "the contactor's feedback contact still reads closed"
            if self._current_after_open():
                return "%.1f A still flows with the relay open" % self._current_a
        return None

    def _current_after_open(self):
        """Current above the weld threshold in a reading *taken* after the contacts had time to part."""
        read_ms = self._current_read_ms
        return (read_ms is not None and self._opened_ms is not None
                and read_ms - self._opened_ms >= self.settings.weld_settle_ms
                and self._current_a > self.settings.weld_current_a)

    def _weld_detail(self, now):
        if self._feedback_closed:
            return "contactor feedback still closed %d ms after the relay was opened" % (now - self._opened_ms)
        return "%.1f A measured %d ms after the relay was opened" % (self._current_a,
                                                                     self._current_read_ms - self._opened_ms)

    def _boot(self, out, now):
        self._booted = True
        self.relay_closed = False
        self._opened_ms = now
        self._emit_relay(out, OpenRelay("boot"), front=True)
        out.append(JournalRecord("boot", {"time_ms": now}))

    def _emit_relay(self, out, command, front):
        if front:
            out.insert(0, command)
        else:
            out.append(command)
        if self.on_relay_command is not None:
            self.on_relay_command(command)

    def _meter_stale(self, now):
        return self._reading_ms is None or now - self._reading_ms > self.settings.meter_timeout_ms

    def _ceiling_a(self, now):
        """The offer the car must keep to now: the current one, or a former higher one still in force."""
        ceiling = self._offered_a
        keep = []
        for entry in self._former_offers:
            if entry[0] > now:
                keep.append(entry)
                if entry[1] > ceiling:
                    ceiling = entry[1]
        self._former_offers = keep
        return ceiling

    def _overcurrent_limit_a(self, now):
        settings = self.settings
        return self._ceiling_a(now) * (100 + settings.overcurrent_margin_pct) / 100 + settings.overcurrent_extra_a

    def _offer(self, command, now):
        """Cut an offer down to the site's share, and keep the former one in force while the car adjusts."""
        current = command.current_a
        if self.pilot_present and self._limit_a is not None:
            allowed = offer_for(self._limit_a, self.session.settings.max_current_a)
            if current > allowed:
                current = allowed
                command = SetOfferedCurrent(allowed)
        if current < self._offered_a:
            self._former_offers.append([now + self.settings.ev_reaction_ms, self._offered_a])
        self._offered_a = current
        return command

    def _paused_for_site(self, now):
        """Power withheld for the site: at once, except a pilot car already drawing gets its reaction time."""
        since = self._paused_since_ms
        if since is None:
            return False
        if not self.pilot_present or not self.relay_closed:
            return True
        return now - since >= self.settings.ev_reaction_ms

    def _on_reading(self, event, now):
        latched = None
        if self._energy_wh is not None and event.energy_wh < self._energy_wh:
            # Not taken as a valid reading: a register that ran backwards proves nothing fresh.
            latched = "meter_energy_backwards"
        else:
            self._reading_ms = now
            self._energy_wh = event.energy_wh
        self._current_a = event.max_current_a
        read_ms = event.read_ms
        self._current_read_ms = now if read_ms is None or read_ms > now else read_ms
        if self.relay_closed and self._current_a > self._overcurrent_limit_a(now):
            if self._over_since_ms is None:
                self._over_since_ms = now
        else:
            self._over_since_ms = None
        if latched is None:
            latched = self._weld_check(now)
        return latched

    def _weld_check(self, now):
        if self.relay_closed or self._opened_ms is None:
            return None
        if now - self._opened_ms < self.settings.weld_settle_ms:
            return None
        if self._feedback_closed:
            return "relay_welded"
        # A reading only proves a weld if it was *taken* after the contacts had time to part:
        # judged by its read time, since one taken before the open may be handled much later.
        if self._current_after_open():
            return "relay_welded"
        return None

    def _own_limit_due(self, now):
        """Time limits checked from the supervisor's own records, independent of the session."""
        auth = self._auth
        if auth is None:
            return None
        if auth.departure_ms is not None and now >= auth.departure_ms:
            return "departure"
        if (auth.time_limit_ms is not None and self._first_close_ms is not None
                and now - self._first_close_ms >= auth.time_limit_ms):
            return "time"
        return None

    def _settle(self, now, out, session_out):
        """Run the supervisor's own checks, then decide the relay and merge the session's output."""
        session = self.session
        if self._over_since_ms is not None and self.relay_closed:
            if now - self._over_since_ms >= self.settings.overcurrent_hold_ms:
                self._over_since_ms = None
                out.append(JournalRecord("fault", {"code": "overcurrent", "time_ms": now, "latched": False,
                                                   "limit_a": self._overcurrent_limit_a(now),
                                                   "current_a": self._current_a}))
                session_out.extend(session.handle(Fault("overcurrent", now, latch=False)))
        if session.active_auth_id is not None:
            due = self._own_limit_due(now) or session.limit_due(now)
            if due is not None:
                session_out.extend(session.handle(LimitReached(due, now)))
        stale = self._meter_stale(now)
        if stale == self._gate_told:
            self._gate_told = not stale
            session_out.extend(session.handle(GateChanged(not stale, "meter_timeout" if stale else None, now)))
        if session.active_auth_id is None:
            self._auth = None
            self._first_close_ms = None
        for command in session_out:
            if command.kind == "close_relay" or command.kind == "open_relay":
                continue
            if command.kind == "set_offered_current":
                command = self._offer(command, now)
            out.append(command)
        ok, reason = self.permitted(now)
        want = ok and session.relay_requested
        if self.relay_closed and not want:
            self.relay_closed = False
            self._opened_ms = now
            self._over_since_ms = None
            why = reason
            if reason is None or reason == "not_authorized" or reason == "limit":
                why = session.stop_reason or reason or "session"
            self._emit_relay(out, OpenRelay(why), front=True)
        elif want and not self.relay_closed:
            self.relay_closed = True
            if self._first_close_ms is None:
                self._first_close_ms = now
            self._emit_relay(out, CloseRelay("permitted"), front=False)
