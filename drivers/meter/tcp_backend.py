"""The ``modbus-tcp`` meter backend: a Modbus meter (or a gateway to one) on the network."""
from __future__ import annotations

from typing import Any

from drivers.backend import Backend, BoardFacts
from drivers.configfile import Section
from drivers.meter.settings import build_modbus_meter, read_link_limits, read_model, read_unit_id


def parse(sec: Section, facts: BoardFacts) -> dict[str, Any]:
    opts: dict[str, Any] = {"model": read_model(sec, facts.phases), "transport": "tcp"}
    opts["host"] = sec.str("host")
    opts["port"] = sec.int("port", 502, min=1, max=65535)
    opts["unit_id"] = read_unit_id(sec)
    opts.update(read_link_limits(sec))
    return opts


BACKEND = Backend(kind="meter", name="modbus-tcp", parse=parse, build=build_modbus_meter)
