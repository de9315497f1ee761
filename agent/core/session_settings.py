"""How a session recognises the car: the mode and the socket-mode current thresholds.

They are site-tunable (``agent.config`` checks them by building one), so every value is
checked against its allowed range here and a refusal names the key.
"""

from agent.core.session_states import MODES, SessionError


def _setting(name, value, low, high, kinds=(int, float)):
    if isinstance(value, bool) or not isinstance(value, kinds):
        raise SessionError("session setting %s must be a number in [%s, %s], got %r" % (name, low, high, value),
                           code="bad-config", key=name, allowed=(low, high))
    if value < low or value > high:
        raise SessionError("session setting %s = %s outside the allowed range [%s, %s]" % (name, value, low, high),
                           code="bad-config", key=name, allowed=(low, high))
    return value


class SessionSettings:
    """How a session recognises the car; the socket-mode thresholds are site-tunable."""

    __slots__ = ("mode", "max_current_a", "plug_current_a", "plug_hold_ms", "finish_current_a",
                 "finish_hold_ms", "plug_timeout_ms")

    def __init__(self, *, mode="pilot", max_current_a=32, plug_current_a=0.5, plug_hold_ms=2000,
                 finish_current_a=0.2, finish_hold_ms=60000, plug_timeout_ms=180000):
        if mode not in MODES:
            raise SessionError("session setting mode = %r unknown; allowed: %s" % (mode, ", ".join(MODES)),
                               code="bad-config", key="mode", allowed=MODES)
        self.mode = mode
        # 6 A is the lowest current IEC 61851 PWM can offer; 80 A the highest of a Type 2 socket.
        self.max_current_a = _setting("max_current_a", max_current_a, 6, 80)
        self.plug_current_a = _setting("plug_current_a", plug_current_a, 0.1, 5)
        self.plug_hold_ms = _setting("plug_hold_ms", plug_hold_ms, 0, 60000, (int,))
        self.finish_current_a = _setting("finish_current_a", finish_current_a, 0.05, 5)
        if self.finish_current_a > self.plug_current_a:
            raise SessionError("session setting finish_current_a = %s must not exceed plug_current_a = %s"
                               % (finish_current_a, plug_current_a), code="bad-config",
                               key="finish_current_a", allowed=(0.05, plug_current_a))
        self.finish_hold_ms = _setting("finish_hold_ms", finish_hold_ms, 1000, 3600000, (int,))
        # How long an authorization waits for a car to plug in (socket: to draw current) before
        # it lapses: a remote start for a driver who never came must not hold the connector.
        self.plug_timeout_ms = _setting("plug_timeout_ms", plug_timeout_ms, 10000, 3600000, (int,))
