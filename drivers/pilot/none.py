"""No pilot at all: socket-outlet chargers (Bharat AC-001 sockets, light-EV points).

There is nothing to read and nothing to drive. ``state`` is None and never changes; the
session core detects a plugged-in vehicle from the current it draws. The offered current is
still recorded, because it is the limit the session enforces by measurement instead.
"""
from __future__ import annotations

from drivers.pilot.base import ControlPilot, PilotError


class NonePilot(ControlPilot):
    has_pilot = False

    async def set_offered_current(self, amps: float) -> None:
        """Record the limit; any value from 0 to the board's maximum (no PWM table applies)."""
        if amps != amps or amps < 0 or amps > self.max_current_a:
            raise PilotError(
                f"current limit must be 0 to {self.max_current_a} A, got {amps!r}",
                code="pilot-current-out-of-range", amps=amps,
            )
        self._offered_a = float(amps)

    async def _apply_duty(self, duty_pct: float) -> None:
        """Never called: there is no wire to drive."""
