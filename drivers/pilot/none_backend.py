"""The ``none`` pilot backend: a socket outlet, no pilot wire (``NonePilot``)."""
from __future__ import annotations

from typing import Any, Mapping

from drivers.backend import Backend, BoardFacts, BuildParts
from drivers.configfile import Section


def parse(sec: Section, facts: BoardFacts) -> dict[str, Any]:
    return {}


async def build(settings: Mapping[str, Any], parts: BuildParts):
    from drivers.pilot.none import NonePilot

    return NonePilot(max_current_a=parts.max_current_a)


BACKEND = Backend(kind="pilot", name="none", parse=parse, build=build)
