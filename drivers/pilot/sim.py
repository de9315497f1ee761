"""A simulated pilot with a scriptable car on the other end of the cable.

The car behaves like a well-mannered EV: it only goes to C (or D) when it wants power *and* a
PWM offer is present, drops back to B when the offer is withdrawn, and draws
``min(offered, its own maximum)`` only while in C/D with the contactor closed. The simulated
board listens to ``add_draw_listener`` to put that current on the simulated meter.
"""
from __future__ import annotations

from typing import Callable

from drivers.pilot.base import ControlPilot, log


class SimCar:
    """The script a test (or the demo) plays: plug in, ask for power, pause, fault, unplug."""

    def __init__(self, pilot: "SimPilot", *, max_current_a: float, phases: int):
        self._pilot = pilot
        self.max_current_a = float(max_current_a)
        self.phases = phases
        self.plugged = False
        self.wants_power = False
        self.needs_ventilation = False
        self.diode_missing = False
        self.error = False

    def plug_in(self) -> None:
        self.plugged = True
        self._pilot._recompute()

    def request_power(self) -> None:
        self.wants_power = True
        self._pilot._recompute()

    def pause(self) -> None:
        """The car stops asking for power (full battery, user stop): back to B."""
        self.wants_power = False
        self._pilot._recompute()

    def vent(self) -> None:
        """The car needs ventilation while charging (state D instead of C)."""
        self.needs_ventilation = True
        self._pilot._recompute()

    def diode_fault(self) -> None:
        self.diode_missing = True
        self._pilot._recompute()

    def error_e(self) -> None:
        """Pilot shorted to earth (0 V)."""
        self.error = True
        self._pilot._recompute()

    def clear_faults(self) -> None:
        self.diode_missing = False
        self.error = False
        self._pilot._recompute()

    def unplug(self) -> None:
        self.plugged = False
        self.wants_power = False
        self.needs_ventilation = False
        self.diode_missing = False
        self.error = False
        self._pilot._recompute()


class _Draw:
    """What draws current behind the simulated contactor (a car on a pilot, a load on a socket):
    its draw per phase, told to listeners (the simulated meter) whenever it changes."""

    def _init_draw(self) -> None:
        self._draw_a = 0.0
        self._draw_listeners: list[Callable[[float], None]] = []

    @property
    def draw_a(self) -> float:
        """Current per phase drawn right now."""
        return self._draw_a

    def add_draw_listener(self, callback: Callable[[float], None]) -> None:
        """Call ``callback(draw_a)`` whenever the current drawn changes."""
        self._draw_listeners.append(callback)

    def _set_draw(self, draw: float) -> None:
        if draw != self._draw_a:
            self._draw_a = draw
            for callback in list(self._draw_listeners):
                try:
                    callback(draw)
                except Exception:
                    log.exception("draw listener %r failed", callback)


class SimPilot(_Draw, ControlPilot):
    """Pilot backend for the ``sim`` board; ``car`` is the scriptable vehicle.

    ``relay`` (a ``SimRelay`` or anything with ``contacts_closed`` and
    ``add_contact_listener``) decides whether the car's current can flow.
    """

    def __init__(
        self,
        *,
        relay=None,
        car_max_current_a: float = 32.0,
        car_phases: int = 1,
        max_current_a: float = 80.0,
    ):
        super().__init__(max_current_a=max_current_a)
        if car_phases not in (1, 3):
            raise ValueError("car_phases must be 1 or 3")
        self.car = SimCar(self, max_current_a=car_max_current_a, phases=car_phases)
        self._relay = relay
        self._init_draw()
        self.duty_pct = 100.0
        if relay is not None:
            relay.add_contact_listener(self._on_contacts)

    async def _apply_duty(self, duty_pct: float) -> None:
        self.duty_pct = duty_pct

    def _after_offer(self) -> None:
        self._recompute()

    async def release(self) -> None:
        await self.set_offered_current(0)
        if self._relay is not None:
            self._relay.remove_contact_listener(self._on_contacts)
            self._relay = None

    def _on_contacts(self, closed: bool) -> None:
        self._recompute()

    def _recompute(self) -> None:
        car = self.car
        if car.error:
            state = "E"
        elif not car.plugged:
            state = "A"
        elif car.wants_power and self._offered_a > 0:
            state = "D" if car.needs_ventilation else "C"
        else:
            state = "B"
        self._update(state, car.plugged and car.diode_missing)
        contacts = self._relay is not None and self._relay.contacts_closed
        draw = min(self._offered_a, car.max_current_a) if (state in ("C", "D") and contacts) else 0.0
        self._set_draw(draw)


class SimSocketCar(_Draw):
    """A vehicle on a plain socket outlet (no control pilot): a load behind the contactor.

    Nothing tells it how much it may take, so it draws its own ``max_current_a`` whenever it
    is plugged in, wants power and the contacts are closed; the session sees it come and go
    from that current alone. It offers the ``SimCar`` script a driver needs (plug in, ask for
    power, pause, unplug) and the draw coupling ``SimPilot`` offers the simulated board.
    """

    def __init__(self, *, relay, max_current_a: float, phases: int):
        if phases not in (1, 3):
            raise ValueError("phases must be 1 or 3")
        self.max_current_a = float(max_current_a)
        self.phases = phases
        self.plugged = False
        self.wants_power = False
        self._relay = relay
        self._init_draw()
        relay.add_contact_listener(self._on_contacts)

    def plug_in(self) -> None:
        self.plugged = True
        self._recompute()

    def request_power(self) -> None:
        self.wants_power = True
        self._recompute()

    def pause(self) -> None:
        """The vehicle stops drawing (full battery): the session sees the current fall."""
        self.wants_power = False
        self._recompute()

    def unplug(self) -> None:
        self.plugged = False
        self.wants_power = False
        self._recompute()

    def detach(self) -> None:
        """Stop following the contactor (the board is shutting down)."""
        if self._relay is not None:
            self._relay.remove_contact_listener(self._on_contacts)
            self._relay = None

    def _on_contacts(self, closed: bool) -> None:
        self._recompute()

    def _recompute(self) -> None:
        contacts = self._relay is not None and self._relay.contacts_closed
        draw = self.max_current_a if (self.plugged and self.wants_power and contacts) else 0.0
        self._set_draw(draw)
