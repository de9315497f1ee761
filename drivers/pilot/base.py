"""The ``ControlPilot`` contract: the IEC 61851-1 signal between the charger and the car.

This file is the reference for backends. The charger drives a +/-12 V, 1 kHz PWM whose duty
cycle offers a current (see ``drivers.pilot.duty``); the car pulls the positive level down
through resistors to say where it is:

====  =========  =============================================
 A     +12 V      not connected
 B      +9 V      connected, not ready / not charging
 C      +6 V      charging
 D      +3 V      charging, needs ventilation
 E       0 V      error (short, no pilot)
 F     -12 V      EVSE unavailable (driven by the charger)
====  =========  =============================================

The car's diode makes the negative half stay at -12 V whatever the car does; a missing or
shorted diode is reported as ``diode_fault`` (a reason never to close the relay).

Backends report raw pilot states; they do not decide anything (that is the session and safety
core's job). Listeners get a ``PilotEvent`` on every change of state or diode flag; they are
plain callbacks called in order, so a backend can emit from a sampling loop or from a
simulated car without any queue.
"""
from __future__ import annotations

import logging
from abc import ABC, abstractmethod
from typing import Callable

from drivers.errors import DriverError
from drivers.pilot.duty import DutyRangeError, duty_for_current, effective_current

log = logging.getLogger("urja.pilot")

STATES = ("A", "B", "C", "D", "E", "F")
STATE_MEANING = {
    "A": "not connected",
    "B": "vehicle connected",
    "C": "charging",
    "D": "charging, ventilation required",
    "E": "error",
    "F": "EVSE unavailable",
    None: "no pilot",
}


class PilotError(DriverError):
    """The pilot could not be driven or read, or a current it cannot offer was asked for."""

    code = "pilot-error"


class PilotEvent:
    """A change of pilot state or diode flag, as delivered to listeners."""

    __slots__ = ("state", "previous", "diode_fault")

    def __init__(self, state: str | None, previous: str | None, diode_fault: bool):
        self.state = state
        self.previous = previous
        self.diode_fault = diode_fault

    def __eq__(self, other):
        return isinstance(other, PilotEvent) and (self.state, self.previous, self.diode_fault) == (
            other.state, other.previous, other.diode_fault)

    def __repr__(self):
        return f"PilotEvent({self.previous}->{self.state}, diode_fault={self.diode_fault})"


Listener = Callable[[PilotEvent], None]


class ControlPilot(ABC):
    """Base class of every pilot backend.

    ``max_current_a`` is the board's limit (cable, contactor, supply); offers above it are
    refused here so no backend can put a higher figure on the wire.
    """

    #: False only for boards without a pilot (socket outlets); then ``state`` is None.
    has_pilot = True

    def __init__(self, *, max_current_a: float = 80.0):
        self.max_current_a = float(max_current_a)
        self._state: str | None = "A" if self.has_pilot else None
        self._diode_fault = False
        self._offered_a = 0.0
        self._listeners: list[Listener] = []

    @property
    def state(self) -> str | None:
        """'A'..'F', or None when the board has no pilot."""
        return self._state

    @property
    def state_text(self) -> str:
        return STATE_MEANING[self._state]

    @property
    def diode_fault(self) -> bool:
        return self._diode_fault

    @property
    def offered_current_a(self) -> float:
        """The current the car reads from the pilot now (after rounding in the 51-52.5 A gap)."""
        return self._offered_a

    async def set_offered_current(self, amps: float) -> None:
        """Offer ``amps`` to the car: 0 stops the PWM (steady +12 V), else 6..max_current_a."""
        if amps > self.max_current_a:
            raise PilotError(
                f"offered current {amps} A is above this board's limit of {self.max_current_a} A",
                code="pilot-current-above-limit", amps=amps, max_current_a=self.max_current_a,
            )
        try:
            duty = duty_for_current(amps)
            effective = effective_current(amps)
        except DutyRangeError as exc:
            raise PilotError(str(exc), code=exc.code, amps=amps) from None
        await self._apply_duty(duty)
        self._offered_a = effective
        self._after_offer()

    @abstractmethod
    async def _apply_duty(self, duty_pct: float) -> None:
        """Put the duty cycle on the wire."""

    def _after_offer(self) -> None:  # noqa: B027 (an optional hook, empty by design)
        """Hook for backends whose state depends on the offer (the simulated car)."""

    async def start(self) -> None:  # noqa: B027 (an optional hook, empty by design)
        """Acquire the hardware; the pilot starts with no offer (steady +12 V)."""

    async def release(self) -> None:  # noqa: B027 (an optional hook, empty by design)
        """Withdraw any offer and hand back the hardware."""

    def add_listener(self, callback: Listener) -> None:
        self._listeners.append(callback)

    def remove_listener(self, callback: Listener) -> None:
        """Forget ``callback``; one never added is ignored (a start that failed early
        must close cleanly, reporting its own error rather than this one)."""
        if callback in self._listeners:
            self._listeners.remove(callback)

    def _update(self, state: str | None, diode_fault: bool) -> bool:
        """Record a new reading and tell listeners if it changed anything."""
        if state == self._state and diode_fault == self._diode_fault:
            return False
        event = PilotEvent(state, self._state, diode_fault)
        self._state = state
        self._diode_fault = diode_fault
        for callback in list(self._listeners):
            try:
                callback(event)
            except Exception:
                log.exception("pilot listener %r failed", callback)
        return True

    async def __aenter__(self) -> "ControlPilot":
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.release()
