"""Energy meters: the ``EnergyMeter`` contract, register maps as data, and the Modbus backend.

``make_meter`` is the factory the meter backends (``*_backend.py``) call. The Modbus client
(and with it pymodbus and pyserial) is imported only inside it, so importing this package
never touches a serial port or a Modbus library.
"""
from __future__ import annotations

import time
from pathlib import Path
from typing import Callable

from drivers.meter.base import (
    FAULT_CODES,
    EnergyMeter,
    MeterEnergyBackwards,
    MeterEnergyJump,
    MeterExceptionResponse,
    MeterFault,
    MeterFrameError,
    MeterHealth,
    MeterImplausible,
    MeterLinkDown,
    MeterNoAnswer,
    MeterReading,
)
from drivers.meter.regmap import RegisterMap, list_models, load_map

DEFAULT_TURNAROUND_MS = 20.0

__all__ = [
    "DEFAULT_TURNAROUND_MS",
    "EnergyMeter",
    "FAULT_CODES",
    "MeterEnergyBackwards",
    "MeterEnergyJump",
    "MeterExceptionResponse",
    "MeterFault",
    "MeterFrameError",
    "MeterHealth",
    "MeterImplausible",
    "MeterLinkDown",
    "MeterNoAnswer",
    "MeterReading",
    "RegisterMap",
    "list_models",
    "load_map",
    "make_meter",
]


def make_meter(*, model: str | Path, transport: str, host: str | None = None, port: int | None = None,
               device: str | None = None, baudrate: int = 9600, parity: str = "N", stopbits: int = 1,
               unit_id: int = 1, timeout_ms: int = 500, retries: int = 2,
               turnaround_ms: float = DEFAULT_TURNAROUND_MS, clock: Callable[[], float] = time.monotonic,
               bus=None, max_current_a: float | None = None) -> EnergyMeter:
    """Build a meter from a model name (or map path) and link settings.

    ``transport`` is ``"tcp"`` (``host``, ``port``) or ``"rtu"`` (``device``, ``baudrate``,
    ``parity``, ``stopbits``). Pass ``bus`` (a ``drivers.meter.bus.ModbusBus``) to put
    several meters on one RS-485 line; the link settings are then taken from the bus.
    Nothing is opened until ``connect()``. ``max_current_a`` is the most the installation
    behind the meter can draw per phase: with the map's highest voltage it bounds the
    energy-jump check across polls that failed (the meter's own range when not given).
    """
    regmap = load_map(model)
    if transport not in ("tcp", "rtu"):
        raise ValueError(f"transport {transport!r} unknown (allowed: tcp, rtu)")
    from drivers.meter.bus import ModbusBus
    from drivers.meter.modbus import ModbusMeter

    owns_bus = bus is None
    if bus is None:
        bus = ModbusBus(transport=transport, host=host, port=port, device=device, baudrate=baudrate,
                        parity=parity, stopbits=stopbits, timeout_ms=timeout_ms, retries=retries,
                        turnaround_ms=turnaround_ms, clock=clock)
    elif bus.transport != transport:
        raise ValueError(f"bus is {bus.transport!r} but transport {transport!r} was asked for")
    ceiling_w = None
    if max_current_a is not None:
        ceiling_w = regmap.phases * regmap.limits.voltage_max_v * min(max_current_a, regmap.limits.current_max_a)
    return ModbusMeter(regmap=regmap, bus=bus, unit_id=unit_id, clock=clock, owns_bus=owns_bus,
                       power_ceiling_w=ceiling_w)
