"""The ``modbus-rtu`` meter backend: a Modbus meter on a serial RS-485 line."""
from __future__ import annotations

from typing import Any

from drivers.backend import Backend, BoardFacts
from drivers.configfile import Section
from drivers.meter.settings import build_modbus_meter, read_link_limits, read_model, read_unit_id

BAUDRATES = (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200)


def parse(sec: Section, facts: BoardFacts) -> dict[str, Any]:
    opts: dict[str, Any] = {"model": read_model(sec, facts.phases), "transport": "rtu"}
    opts["device"] = sec.str("device")
    opts["baudrate"] = sec.int("baudrate", 9600)
    if opts["baudrate"] not in BAUDRATES:
        raise sec.error("baudrate", f"unsupported baud rate {opts['baudrate']}", ", ".join(map(str, BAUDRATES)))
    opts["parity"] = sec.str("parity", "N", choices=("N", "E", "O"))
    opts["stopbits"] = sec.int("stopbits", 1, min=1, max=2)
    opts["unit_id"] = read_unit_id(sec)
    opts.update(read_link_limits(sec))
    return opts


BACKEND = Backend(kind="meter", name="modbus-rtu", parse=parse, build=build_modbus_meter)
