"""Socket mode: seeing the car come and go from the current alone.

A plain socket outlet has no control pilot, so the car is taken as plugged in once the current
stays above ``plug_current_a`` for ``plug_hold_ms`` and as finished once it stays below
``finish_current_a`` for ``finish_hold_ms``. ``SocketDetection`` is a mixin of
``agent.core.session.Session``: it reads the session's state and uses its timer and stop helpers.
"""

from agent.core.session_commands import JournalRecord
from agent.core.session_states import (
    AUTHORIZED_WAITING_FOR_CAR,
    CHARGING,
    FINISH_HOLD_TIMER,
    PLUG_HOLD_TIMER,
    SUSPENDED_EV,
)


class SocketDetection:
    """Plug-in and finish detection by current for ``Session`` in socket mode."""

    def _socket_holds(self, now, out):
        settings = self.settings
        current = self._current_a
        if self.state == AUTHORIZED_WAITING_FOR_CAR:
            if current > settings.plug_current_a:
                if self._above_since_ms is None:
                    self._above_since_ms = now
                if now - self._above_since_ms >= settings.plug_hold_ms:
                    self._cancel(PLUG_HOLD_TIMER, out)
                    self._has_drawn = True
                    self.state = self._running_state()
                    out.append(JournalRecord("ev_detected", {"session_id": self.session_id, "time_ms": now}))
                    self._plan_limits(now, out)
                else:
                    self._schedule(PLUG_HOLD_TIMER, self._above_since_ms + settings.plug_hold_ms, out)
            else:
                self._above_since_ms = None
                self._cancel(PLUG_HOLD_TIMER, out)
        elif self.state in (CHARGING, SUSPENDED_EV):
            if current < settings.finish_current_a:
                if self._below_since_ms is None:
                    self._below_since_ms = now
                self.state = SUSPENDED_EV
                if now - self._below_since_ms >= settings.finish_hold_ms:
                    self._cancel(FINISH_HOLD_TIMER, out)
                    self._stop("ev_finished", now, out)
                else:
                    self._schedule(FINISH_HOLD_TIMER, self._below_since_ms + settings.finish_hold_ms, out)
            else:
                self._below_since_ms = None
                self._cancel(FINISH_HOLD_TIMER, out)
                self.state = self._running_state()
