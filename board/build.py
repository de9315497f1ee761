"""Turn a board profile into running drivers, and take them down again with the relay open.

``build_board`` builds each driver with the ``build`` of the backend its profile names (the
registry is ``board/backends.py``); hardware modules (``gpiod``) are imported only by the
backend that needs them. The ``sim`` meter also builds the simulated world
(``drivers.simworld``): a Modbus meter server on loopback (so the real Modbus client is
exercised, not a shortcut), and the car behind the contactor, coupled so that the car's
current reaches the meter only while the contacts are closed.

Order matters for safety: the relay is acquired first and forced open before anything else
starts, and on the way out it is opened first and released last.
"""
from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any, Awaitable, Callable

from board import backends
from board.profile import BoardProfile, DriverSettings, load_profile
from drivers.backend import BuildParts
from drivers.simworld import SimParts

log = logging.getLogger("urja.board")


class Board:
    """The drivers of one charger board, as built from its profile."""

    def __init__(self, profile: BoardProfile):
        self.profile = profile
        self.meter = None
        self.relay = None
        self.pilot = None
        self.grid_meter = None  # the site's whole draw, when the profile names one
        self.grid_sim = None
        self.sim: SimParts | None = None
        self._sim_server = None

    async def _start(
        self,
        *,
        clock: Callable[[], float],
        sleep: Callable[[float], Awaitable[None]],
        gpio_request_lines: Callable[..., Any] | None,
        connect_meter: bool,
    ) -> None:
        profile = self.profile
        parts = BuildParts(clock=clock, sleep=sleep, max_current_a=profile.max_current_a, phases=profile.phases,
                           gpio_request_lines=gpio_request_lines)
        self.relay = parts.relay = await _build("relay", profile.relay, parts)
        await self.relay.start()
        await self.relay.open()

        self.pilot = parts.pilot = await _build("pilot", profile.pilot, parts)
        await self.pilot.start()

        try:
            self.meter = await _build("meter", profile.meter, parts)
            if profile.grid_meter is not None:
                self.grid_meter = await self._build_grid(profile.grid_meter, parts)
        finally:  # a simulated meter's server is stopped by close() even after a failed build
            self.sim, self._sim_server, self.grid_sim = parts.sim, parts.sim_server, parts.grid_sim
        if connect_meter:
            await self.meter.connect()

    async def _build_grid(self, settings: DriverSettings, parts: BuildParts):
        from drivers.meter.grid import build_grid_meter

        server = parts.sim_server

        def draws() -> list[float]:  # what the simulated connectors draw, on the grid meter too
            return list(server.current_a) if server is not None else []

        return await build_grid_meter(settings.backend, settings.options, parts, meter=self.meter, draws=draws)

    async def close(self) -> None:
        """Open the relay, stop everything, release the relay last; every step is attempted."""
        errors: list[BaseException] = []

        async def attempt(what: str, step) -> None:
            try:
                await step()
            except Exception as exc:  # keep going: the relay must still be released
                log.error("board shutdown: %s failed: %s", what, exc)
                errors.append(exc)

        if self.relay is not None:
            await attempt("opening the relay", self.relay.open)
        if self.pilot is not None:
            await attempt("releasing the pilot", self.pilot.release)
        if self.sim is not None and hasattr(self.sim.car, "detach"):
            self.sim.car.detach()
        if self.grid_meter is not None:
            await attempt("closing the grid meter", self.grid_meter.close)
        if self.grid_sim is not None:
            await attempt("stopping the simulated grid meter", self.grid_sim.server.stop)
        if self.meter is not None:
            await attempt("closing the meter", self.meter.close)
        if self._sim_server is not None:
            await attempt("stopping the simulated meter", self._sim_server.stop)
        if self.relay is not None:
            await attempt("releasing the relay", self.relay.release)
        if errors:
            raise errors[0]


async def _build(kind: str, settings: DriverSettings, parts: BuildParts):
    return await backends.spec(kind, settings.backend).build(settings.options, parts)


class _BoardContext:
    def __init__(self, profile, kwargs):
        self._profile = profile
        self._kwargs = kwargs
        self._board: Board | None = None

    async def __aenter__(self) -> Board:
        profile = self._profile
        if not isinstance(profile, BoardProfile):
            profile = load_profile(profile)
        board = Board(profile)
        try:
            await board._start(**self._kwargs)
        except BaseException:
            try:
                await board.close()
            except Exception as exc:  # the start-up error is the one worth reporting
                log.error("board shutdown after a failed start also failed: %s", exc)
            raise
        self._board = board
        return board

    async def __aexit__(self, *exc) -> None:
        board, self._board = self._board, None
        if board is not None:
            await board.close()


def build_board(
    profile: BoardProfile | str | Path = "sim",
    *,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    gpio_request_lines: Callable[..., Any] | None = None,
    connect_meter: bool = True,
) -> _BoardContext:
    """``async with build_board(profile) as board:`` gives a started ``Board``.

    ``clock`` drives the meter client, the simulated meter and the relay settle check;
    ``gpio_request_lines`` replaces ``gpiod.request_lines`` (tests, or a board that needs a
    different chip opener). With ``connect_meter=False`` an unreachable meter does not stop
    the board from coming up: its first ``read()`` connects and reports the fault instead
    (the self-test wants a failed row, not an aborted run).
    """
    return _BoardContext(profile, {"clock": clock, "sleep": sleep, "gpio_request_lines": gpio_request_lines,
                                   "connect_meter": connect_meter})
