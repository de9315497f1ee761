"""The ``sim`` relay backend: a ``SimRelay`` (in memory, with a mirror contact by default)."""
from __future__ import annotations

from typing import Any, Mapping

from drivers.backend import Backend, BoardFacts, BuildParts
from drivers.configfile import Section
from drivers.relay.settings import read_fail_safe, read_settle_ms


def parse(sec: Section, facts: BoardFacts) -> dict[str, Any]:
    opts: dict[str, Any] = {"settle_ms": read_settle_ms(sec)}
    opts["switch_delay_ms"] = sec.int("switch_delay_ms", 0, min=0, max=5000)
    opts["has_feedback"] = sec.bool("feedback", True)
    opts["fail_safe"] = read_fail_safe(sec, "simulated contactor; opens when the process stops")
    return opts


async def build(settings: Mapping[str, Any], parts: BuildParts):
    from drivers.relay.sim import SimRelay

    opts = {k: v for k, v in settings.items() if k != "fail_safe"}
    return SimRelay(clock=parts.clock, sleep=parts.sleep, **opts)


BACKEND = Backend(kind="relay", name="sim", parse=parse, build=build)
