"""Control-pilot drivers (IEC 61851-1): the ``ControlPilot`` contract and its backends."""
from drivers.pilot.base import STATES, ControlPilot, PilotError, PilotEvent
from drivers.pilot.duty import current_for_duty, duty_for_current, effective_current
from drivers.pilot.linux import LinuxPilot, classify
from drivers.pilot.none import NonePilot
from drivers.pilot.sim import SimCar, SimPilot, SimSocketCar

__all__ = [
    "STATES", "ControlPilot", "PilotError", "PilotEvent", "LinuxPilot", "NonePilot", "SimCar",
    "SimPilot", "SimSocketCar", "classify", "current_for_duty", "duty_for_current", "effective_current",
]
