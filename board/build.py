"""Turn a board profile into running drivers, and take them down again with the relay open.

``build_board`` is the one place that maps profile backends onto driver classes; hardware
modules (``gpiod``) are imported only in the branch that needs them. For the ``sim`` profile
it also builds the simulated world: a Modbus meter server on loopback (so the real Modbus
client is exercised, not a shortcut), a simulated contactor and a scriptable car, coupled so
that the car's current reaches the meter only while the contacts are closed.

Order matters for safety: the relay is acquired first and forced open before anything else
starts, and on the way out it is opened first and released last.
"""
from __future__ import annotations

import asyncio
import logging
import time
from pathlib import Path
from typing import Any, Awaitable, Callable

from board.profile import BoardProfile, load_profile

log = logging.getLogger("urja.board")


class SimParts:
    """Handles on the simulated world: the meter server, the contactor and the car.

    ``car`` is the pilot's ``SimCar`` on a board with a simulated pilot, a ``SimSocketCar``
    (a load behind the contactor) on a socket outlet with a simulated contactor, and None
    where nothing simulated can carry a car's current (a real relay).
    """

    def __init__(self, *, server, relay, pilot, car=None):
        self.server = server
        self.relay = relay
        self.pilot = pilot
        self.car = car if car is not None else getattr(pilot, "car", None)


class Board:
    """The drivers of one charger board, as built from its profile."""

    def __init__(self, profile: BoardProfile):
        self.profile = profile
        self.meter = None
        self.relay = None
        self.pilot = None
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
        self.relay = _make_relay(profile, clock=clock, sleep=sleep, request_lines=gpio_request_lines)
        await self.relay.start()
        await self.relay.open()

        self.pilot = _make_pilot(profile, relay=self.relay, sleep=sleep)
        await self.pilot.start()

        meter_opts = dict(profile.meter.options)
        if profile.meter.backend == "sim":
            from drivers.meter import make_meter
            from drivers.meter.simserver import SimMeterServer

            server = SimMeterServer(meter_opts["model"], clock=clock,
                                    register_file=meter_opts.get("register_file"))
            self._sim_server = server
            port = await server.start_tcp("127.0.0.1", 0)
            self.meter = make_meter(model=meter_opts["model"], transport="tcp", host="127.0.0.1", port=port,
                                    timeout_ms=meter_opts["timeout_ms"], retries=meter_opts["retries"],
                                    clock=clock)
            self.sim = SimParts(server=server, relay=self.relay, pilot=self.pilot,
                                car=_make_socket_car(profile, relay=self.relay, pilot=self.pilot))
            self._couple_sim(server)
        else:
            from drivers.meter import make_meter

            self.meter = make_meter(clock=clock, **meter_opts)
        if connect_meter:
            await self.meter.connect()

    def _couple_sim(self, server) -> None:
        """Put the car's draw on the meter's phases (zero on phases the car does not use)."""
        car = self.sim.car
        # the pilot decides what a pilot car draws; a socket car is its own source
        load = self.pilot if hasattr(self.pilot, "add_draw_listener") else car
        if car is None or not hasattr(load, "add_draw_listener"):
            return
        meter_phases = len(server.current_a)
        car_phases = min(car.phases, meter_phases)

        def on_draw(draw_a: float) -> None:
            server.current_a = [draw_a if i < car_phases else 0.0 for i in range(meter_phases)]

        load.add_draw_listener(on_draw)
        on_draw(load.draw_a)

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
        if self.meter is not None:
            await attempt("closing the meter", self.meter.close)
        if self._sim_server is not None:
            await attempt("stopping the simulated meter", self._sim_server.stop)
        if self.relay is not None:
            await attempt("releasing the relay", self.relay.release)
        if errors:
            raise errors[0]


def _make_relay(profile: BoardProfile, *, clock, sleep, request_lines):
    opts = dict(profile.relay.options)
    opts.pop("fail_safe")
    if profile.relay.backend == "sim":
        from drivers.relay import SimRelay

        return SimRelay(clock=clock, sleep=sleep, **opts)
    if profile.relay.backend == "gpiod":
        from drivers.relay.gpiod_relay import GpiodRelay

        return GpiodRelay(clock=clock, sleep=sleep, request_lines=request_lines, **opts)
    raise ValueError(f"unknown relay backend {profile.relay.backend!r}")


def _make_socket_car(profile: BoardProfile, *, relay, pilot):
    """A simulated vehicle for a socket outlet: only where a simulated contactor can carry it."""
    if profile.pilot.backend != "none" or not hasattr(relay, "add_contact_listener"):
        return None
    from drivers.pilot.sim import SimSocketCar

    return SimSocketCar(relay=relay, max_current_a=profile.max_current_a, phases=profile.phases)


def _make_pilot(profile: BoardProfile, *, relay, sleep):
    opts = dict(profile.pilot.options)
    backend = profile.pilot.backend
    if backend == "sim":
        from drivers.pilot.sim import SimPilot

        return SimPilot(relay=relay if hasattr(relay, "add_contact_listener") else None,
                        max_current_a=profile.max_current_a, **opts)
    if backend == "none":
        from drivers.pilot.none import NonePilot

        return NonePilot(max_current_a=profile.max_current_a)
    if backend == "linux":
        from drivers.pilot.linux import LinuxPilot

        return LinuxPilot(max_current_a=profile.max_current_a, sleep=sleep, **opts)
    raise ValueError(f"unknown pilot backend {backend!r}")


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
