"""The simulated world around a board's drivers: the meter server, the contactor and the car.

It is coupled so that the car's current reaches the meter only while the contacts are closed,
which is what lets the sim board exercise the real Modbus client, the safety gate and billing.
"""
from __future__ import annotations


class SimParts:
    """Handles on the simulated world: the meter server, the contactor and the car.

    ``car`` is the pilot's ``SimCar`` on a board with a simulated pilot, a ``SimSocketCar``
    (a load behind the contactor) on a socket outlet with a simulated contactor, and None
    where nothing simulated can carry a car's current (a real relay).
    """

    def __init__(self, *, server, relay, pilot, car=None):
        self.server = server
        self.relay = relay
        self.pilot = pilot
        self.car = car if car is not None else getattr(pilot, "car", None)


def socket_car(*, relay, pilot, max_current_a: float, phases: int):
    """A simulated vehicle for a socket outlet: only where a simulated contactor can carry it."""
    if pilot.has_pilot or not hasattr(relay, "add_contact_listener"):
        return None
    from drivers.pilot.sim import SimSocketCar

    return SimSocketCar(relay=relay, max_current_a=max_current_a, phases=phases)


def couple(sim: SimParts) -> None:
    """Put the car's draw on the meter's phases (zero on phases the car does not use)."""
    car = sim.car
    # the pilot decides what a pilot car draws; a socket car is its own source
    load = sim.pilot if hasattr(sim.pilot, "add_draw_listener") else car
    if car is None or not hasattr(load, "add_draw_listener"):
        return
    server = sim.server
    meter_phases = len(server.current_a)
    car_phases = min(car.phases, meter_phases)

    def on_draw(draw_a: float) -> None:
        server.current_a = [draw_a if i < car_phases else 0.0 for i in range(meter_phases)]

    load.add_draw_listener(on_draw)
    on_draw(load.draw_a)
