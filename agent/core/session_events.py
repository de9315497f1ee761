"""Events the runtime feeds to the session (and the safety gate), each checked when it is made.

An event that cannot be valid (a time that is not an int, a NaN power) is refused at
construction, so the state machine only ever sees well-formed input; ``time_ms`` is on the
runtime's monotonic clock.
"""

from agent.core.session_states import PILOT_STATES, SessionError


def _int_field(where, name, value, minimum=None):
    if isinstance(value, bool) or not isinstance(value, int):
        raise SessionError("%s: %s must be an int, got %r" % (where, name, value),
                           code="bad-event", field=name)
    if minimum is not None and value < minimum:
        raise SessionError("%s: %s must be >= %d, got %d" % (where, name, minimum, value),
                           code="bad-event", field=name)
    return value


def _number_field(where, name, value):
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise SessionError("%s: %s must be a number, got %r" % (where, name, value),
                           code="bad-event", field=name)
    # NaN compares unequal to itself; infinities exceed any meter's range.
    if value != value or value > 1e9 or value < -1e9:
        raise SessionError("%s: %s out of range: %r" % (where, name, value),
                           code="bad-event", field=name)
    return value


class Event:
    """Base of everything the runtime feeds in; ``time_ms`` is on the runtime's monotonic clock."""

    __slots__ = ("time_ms",)
    kind = "event"

    def fields(self):
        return ()

    def __repr__(self):
        return "%s(%s)" % (type(self).__name__, ", ".join(repr(f) for f in self.fields()))


class AuthGranted(Event):
    __slots__ = ("auth",)
    kind = "auth_granted"

    def __init__(self, auth, time_ms):
        # Imported here, not at module top, so that auth.py and session.py stay independent.
        from agent.core.auth import Authorization
        if not isinstance(auth, Authorization):
            raise SessionError("AuthGranted: auth must be an Authorization, got %r" % (auth,),
                               code="bad-event", field="auth")
        self.auth = auth
        self.time_ms = _int_field("AuthGranted", "time_ms", time_ms, 0)

    def fields(self):
        return (self.auth.auth_id, self.time_ms)


class AuthRevoked(Event):
    __slots__ = ("auth_id", "reason")
    kind = "auth_revoked"

    def __init__(self, auth_id, time_ms, reason="revoked"):
        if not isinstance(auth_id, str) or not auth_id:
            raise SessionError("AuthRevoked: auth_id must be a non-empty string", code="bad-event",
                               field="auth_id")
        self.auth_id = auth_id
        self.reason = reason
        self.time_ms = _int_field("AuthRevoked", "time_ms", time_ms, 0)

    def fields(self):
        return (self.auth_id, self.time_ms, self.reason)


class PilotChanged(Event):
    __slots__ = ("state",)
    kind = "pilot_changed"

    def __init__(self, state, time_ms):
        if state not in PILOT_STATES:
            raise SessionError("PilotChanged: state %r unknown; allowed: %s" % (state, ", ".join(PILOT_STATES)),
                               code="bad-event", field="state", allowed=PILOT_STATES)
        self.state = state
        self.time_ms = _int_field("PilotChanged", "time_ms", time_ms, 0)

    def fields(self):
        return (self.state, self.time_ms)


class MeterReading(Event):
    """One valid meter reading; a failed read is simply not fed (the meter timeout catches it).

    ``time_ms`` is when the event is handled; ``read_ms`` (optional) is when the meter was read.
    They differ when events queue up, and the weld check must know when the current was
    measured, not when it was looked at: a reading taken while the contacts were still closed
    proves nothing about them once they were told to open.
    """

    __slots__ = ("energy_wh", "power_w", "current_a", "read_ms")
    kind = "meter_reading"

    def __init__(self, time_ms, energy_wh, power_w, current_a, read_ms=None):
        self.time_ms = _int_field("MeterReading", "time_ms", time_ms, 0)
        self.read_ms = None if read_ms is None else _int_field("MeterReading", "read_ms", read_ms, 0)
        self.energy_wh = _int_field("MeterReading", "energy_wh", energy_wh, 0)
        self.power_w = _number_field("MeterReading", "power_w", power_w)
        if isinstance(current_a, (int, float)) and not isinstance(current_a, bool):
            current_a = (current_a,)
        if not isinstance(current_a, (tuple, list)) or not 1 <= len(current_a) <= 3:
            raise SessionError("MeterReading: current_a must be a number or 1 to 3 per-phase numbers, got %r"
                               % (current_a,), code="bad-event", field="current_a")
        for value in current_a:
            _number_field("MeterReading", "current_a", value)
        self.current_a = tuple(current_a)

    @property
    def max_current_a(self):
        return max(self.current_a)

    def fields(self):
        return (self.time_ms, self.energy_wh, self.power_w, self.current_a)


class LimitReached(Event):
    __slots__ = ("limit",)
    kind = "limit_reached"

    def __init__(self, limit, time_ms):
        self.limit = limit
        self.time_ms = _int_field("LimitReached", "time_ms", time_ms, 0)

    def fields(self):
        return (self.limit, self.time_ms)


class StopRequested(Event):
    """Stop charging. ``finish``: end the session now even if the car stays plugged in.

    A stop normally leaves a pilot session waiting for the car to leave (parking counts); when
    the charger itself is going down nobody will see the car leave, so the session is closed
    at once and billed up to this moment.
    """

    __slots__ = ("reason", "finish")
    kind = "stop_requested"

    def __init__(self, time_ms, reason="stop_requested", finish=False):
        self.reason = reason
        self.finish = bool(finish)
        self.time_ms = _int_field("StopRequested", "time_ms", time_ms, 0)

    def fields(self):
        if self.finish:
            return (self.time_ms, self.reason, True)
        return (self.time_ms, self.reason)


class Fault(Event):
    """A fault reported by a driver or found by the supervisor; ``latch`` needs a local reset.

    ``detail`` is a line for the technician (what was seen), kept with a latched fault.
    """

    __slots__ = ("code", "latch", "detail")
    kind = "fault"

    def __init__(self, code, time_ms, latch=True, detail=None):
        if not isinstance(code, str) or not code:
            raise SessionError("Fault: code must be a non-empty string", code="bad-event", field="code")
        if detail is not None and not isinstance(detail, str):
            raise SessionError("Fault: detail must be a string or None", code="bad-event", field="detail")
        self.code = code
        self.latch = bool(latch)
        self.detail = detail
        self.time_ms = _int_field("Fault", "time_ms", time_ms, 0)

    def fields(self):
        return (self.code, self.time_ms, self.latch)


class TimerFired(Event):
    __slots__ = ("timer_id",)
    kind = "timer_fired"

    def __init__(self, timer_id, time_ms):
        self.timer_id = timer_id
        self.time_ms = _int_field("TimerFired", "time_ms", time_ms, 0)

    def fields(self):
        return (self.timer_id, self.time_ms)


class RelayFeedback(Event):
    """The contactor's auxiliary contact (mirror) as read by the relay driver."""

    __slots__ = ("closed",)
    kind = "relay_feedback"

    def __init__(self, closed, time_ms):
        self.closed = bool(closed)
        self.time_ms = _int_field("RelayFeedback", "time_ms", time_ms, 0)

    def fields(self):
        return (self.closed, self.time_ms)


class LocalReset(Event):
    """Someone at the charger cleared a latched fault (button or local CLI, never the network)."""

    __slots__ = ()
    kind = "local_reset"

    def __init__(self, time_ms):
        self.time_ms = _int_field("LocalReset", "time_ms", time_ms, 0)

    def fields(self):
        return (self.time_ms,)


class GateChanged(Event):
    """Sent by the safety supervisor to the session when power is withheld or given back."""

    __slots__ = ("permitted", "reason")
    kind = "gate_changed"

    def __init__(self, permitted, reason, time_ms):
        self.permitted = bool(permitted)
        self.reason = reason
        self.time_ms = _int_field("GateChanged", "time_ms", time_ms, 0)

    def fields(self):
        return (self.permitted, self.reason, self.time_ms)


class CurrentLimit(Event):
    """The current this connector may draw from now on, per phase, in amps (the load manager's share).

    ``limit_a`` is what the site can spare, not what the car is offered: a pilot connector offers
    the lower of it and its own maximum (IEC 61851 PWM cannot say less than 6 A, so below that the
    session pauses), a socket outlet, which cannot be modulated, is switched on at 6 A or more and
    off below.
    """

    __slots__ = ("limit_a",)
    kind = "current_limit"

    def __init__(self, limit_a, time_ms):
        limit_a = _number_field("CurrentLimit", "limit_a", limit_a)
        if limit_a < 0 or limit_a > 1000:
            raise SessionError("CurrentLimit: limit_a must be in [0, 1000] A, got %r" % (limit_a,),
                               code="bad-event", field="limit_a")
        self.limit_a = limit_a
        self.time_ms = _int_field("CurrentLimit", "time_ms", time_ms, 0)

    def fields(self):
        return (self.limit_a, self.time_ms)
