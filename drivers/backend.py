"""The spec every driver backend hands the board: how its profile table is read and how it is built.

A backend module (``drivers/relay/sim_backend.py``, a CAN-bus pilot, a new meter transport)
exposes ``BACKEND = Backend(kind=..., name=..., parse=..., build=...)`` and is named by one
line of the board's registry (``board/backends.py``); nothing else has to change to add one.
The type lives here, not in ``board/``, because drivers must not import the layer above them.

``parse`` runs when a profile is loaded, so it may import nothing a machine without the
hardware lacks: a backend whose driver needs a hardware library imports its driver module
inside ``build`` (``urja board check`` of a GPIO profile then works on a laptop).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Awaitable, Callable, Mapping

from drivers.configfile import Section

KINDS = ("meter", "relay", "pilot")


@dataclass(frozen=True)
class BoardFacts:
    """What the ``[board]`` table says that a backend's settings may depend on (car phases, meter phases)."""

    max_current_a: float
    phases: int


class BuildParts:
    """What a backend's ``build`` may use, and where a simulated backend leaves its world.

    The board fills ``relay`` before it builds the pilot and ``pilot`` before it builds the
    meter (the relay is acquired first and forced open, so a simulated pilot can follow its
    contacts and a simulated meter can see the car's draw). ``sim`` and ``sim_server`` are
    set by a backend that builds a simulated world around the drivers (the ``sim`` meter): the
    board exposes the first as ``board.sim`` and stops the second after the meter is closed,
    even when the build failed half way.
    """

    def __init__(
        self,
        *,
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]],
        max_current_a: float,
        phases: int,
        gpio_request_lines: Callable[..., Any] | None = None,
    ):
        self.clock = clock
        self.sleep = sleep
        self.max_current_a = max_current_a
        self.phases = phases
        self.gpio_request_lines = gpio_request_lines
        self.relay = None
        self.pilot = None
        self.sim = None
        self.sim_server = None
        self.grid_sim = None  # the simulated grid meter's world (``drivers.meter.grid``)


Parse = Callable[[Section, BoardFacts], dict]
Build = Callable[[Mapping[str, Any], BuildParts], Awaitable[Any]]


@dataclass(frozen=True, kw_only=True)
class Backend:
    """One backend of one device kind.

    ``parse(section, facts)`` reads and checks this backend's keys of the profile's table (the
    profile reads ``backend`` before and rejects unread keys after) and returns the settings,
    in the order ``urja board check`` shows them; errors come from ``section.error`` so they
    name file, key and allowed values. ``build(settings, parts)`` makes the driver, not yet
    started: the board starts it. A relay's settings carry ``fail_safe``, the sentence that
    says how the hardware keeps the contactor open without the agent.
    """

    kind: str
    name: str
    parse: Parse
    build: Build

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"backend kind {self.kind!r} unknown (allowed: {', '.join(KINDS)})")
