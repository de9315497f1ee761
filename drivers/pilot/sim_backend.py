"""The ``sim`` pilot backend: a ``SimPilot`` with a scriptable car behind it."""
from __future__ import annotations

from typing import Any, Mapping

from drivers.backend import Backend, BoardFacts, BuildParts
from drivers.configfile import Section


def parse(sec: Section, facts: BoardFacts) -> dict[str, Any]:
    opts: dict[str, Any] = {}
    opts["car_max_current_a"] = sec.float("car_max_current_a", 16.0, min=6.0, max=80.0)
    opts["car_phases"] = sec.int("car_phases", facts.phases, min=1, max=3)
    if opts["car_phases"] == 2:
        raise sec.error("car_phases", "unsupported phase count 2", "1, 3")
    return opts


async def build(settings: Mapping[str, Any], parts: BuildParts):
    """The car's current flows only through contacts it can follow (a simulated relay)."""
    from drivers.pilot.sim import SimPilot

    relay = parts.relay if hasattr(parts.relay, "add_contact_listener") else None
    return SimPilot(relay=relay, max_current_a=parts.max_current_a, **settings)


BACKEND = Backend(kind="pilot", name="sim", parse=parse, build=build)
