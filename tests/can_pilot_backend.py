"""A control pilot driven over a CAN bus, registered by tests as a board backend of their own.

It stands for a backend written outside the project's drivers: a module with its ``BACKEND``
and one registry line, nothing else. The "bus" is a list of the frames it would send.
"""
from __future__ import annotations

from typing import Any, Mapping

from drivers.backend import Backend, BoardFacts, BuildParts
from drivers.configfile import Section
from drivers.pilot.base import ControlPilot


class CanPilot(ControlPilot):
    """Sends each duty cycle as a (node id, duty per mille) frame; the car's state never changes."""

    def __init__(self, *, bus: str, node_id: int, max_current_a: float, relay):
        super().__init__(max_current_a=max_current_a)
        self.bus = bus
        self.node_id = node_id
        self.relay = relay  # built, started and forced open before any pilot is built
        self.frames: list[tuple[int, int]] = []
        self.started = False
        self.released = False

    async def _apply_duty(self, duty_pct: float) -> None:
        self.frames.append((self.node_id, round(duty_pct * 10)))

    async def start(self) -> None:
        self.started = True

    async def release(self) -> None:
        self.released = True


def parse(sec: Section, facts: BoardFacts) -> dict[str, Any]:
    return {"bus": sec.str("bus", "can0"), "node_id": sec.int("node_id", min=1, max=127)}


async def build(settings: Mapping[str, Any], parts: BuildParts) -> CanPilot:
    return CanPilot(max_current_a=parts.max_current_a, relay=parts.relay, **settings)


BACKEND = Backend(kind="pilot", name="can", parse=parse, build=build)
