"""The grid-side meter: the site's whole draw per phase, for the load manager.

A board profile names it in an optional ``[grid_meter]`` table with the same backends a
connector's meter has. On RS-485 it is usually another unit id on the line the connector's
meter already uses: a table that names the same device (or, over Modbus TCP, the same host and
port) is put on that meter's ``ModbusBus``, so the two never talk over each other; any other link
gets a bus of its own. Either way it is read by the same Modbus client as every meter.

``backend = "sim"`` serves a simulated household (``drivers.simhouse``) plus whatever the
simulated board's connectors draw, from a simulated meter on loopback, read by the real client:
``house_scale`` (1.0 is a household of about 18 kWh a day), ``house_start_h`` (the hour of the
day the simulation starts at) and ``house_seed`` choose the household.
"""
from __future__ import annotations

from typing import Any, Callable, Mapping

from drivers.backend import BoardFacts, BuildParts
from drivers.configfile import Section
from drivers.meter.settings import read_link_limits, read_model


def parse_sim(sec: Section, facts: BoardFacts) -> dict[str, Any]:
    opts: dict[str, Any] = {"model": read_model(sec, facts.phases)}
    opts["house_scale"] = sec.float("house_scale", 0.5, min=0.0, max=10.0)
    opts["house_start_h"] = sec.float("house_start_h", 18.0, min=0.0, max=24.0)
    opts["house_seed"] = sec.int("house_seed", 1, min=0, max=2**31)
    opts.update(read_link_limits(sec))
    return opts


def _same_link(settings: Mapping[str, Any], bus) -> bool:
    if bus is None or bus.transport != settings.get("transport"):
        return False
    if bus.transport == "rtu":
        return bus.device == settings.get("device")
    return (bus.host, bus.port) == (settings.get("host"), settings.get("port"))


async def build_grid_meter(backend: str, settings: Mapping[str, Any], parts: BuildParts, *, meter,
                           draws: Callable[[], list[float]] | None = None):
    """The grid meter, on the connector meter's bus when it names the same link."""
    from drivers.meter import make_meter

    if backend == "sim":
        return await _build_sim(settings, parts, draws)
    bus = getattr(meter, "bus", None)
    if _same_link(settings, bus):
        return make_meter(model=settings["model"], transport=settings["transport"], unit_id=settings["unit_id"],
                          clock=parts.clock, bus=bus)
    return make_meter(clock=parts.clock, **settings)


class _SimGrid:
    """The simulated grid meter's server and household; ``server`` is a ``SimMeterServer``."""

    def __init__(self, server, house, start_s: float, clock, draws):
        self.server = server
        self.house = house
        self._start_s = start_s
        self._clock = clock
        self._draws = draws
        self._t0 = clock()
        self.extra_a: list[float] = [0.0] * server.regmap.phases  # a test's step in the house's load

    def refresh(self) -> None:
        phases = self.server.regmap.phases
        house = self.house.current_a(self._start_s + self._clock() - self._t0)
        draws = self._draws() if self._draws is not None else []
        total = []
        for p in range(phases):
            value = house[p] if p < len(house) else 0.0
            value += draws[p] if p < len(draws) else 0.0
            total.append(value + self.extra_a[p])
        self.server.current_a = total


async def _build_sim(settings: Mapping[str, Any], parts: BuildParts, draws):
    import random

    from drivers.meter import make_meter
    from drivers.meter.simserver import SimMeterServer
    from drivers.simhouse import HouseProfile

    phases = parts.phases
    house = HouseProfile(rng=random.Random(settings["house_seed"]), phases=phases, scale=settings["house_scale"])

    class _Server(SimMeterServer):
        def quantity_values(self) -> dict[str, float]:
            grid.refresh()  # the house and the chargers as of this read
            return super().quantity_values()

    server = _Server(settings["model"], clock=parts.clock, serial_number="20000001")
    grid = _SimGrid(server, house, settings["house_start_h"] * 3600, parts.clock, draws)
    parts.grid_sim = grid
    port = await server.start_tcp("127.0.0.1", 0)
    return make_meter(model=settings["model"], transport="tcp", host="127.0.0.1", port=port,
                      timeout_ms=settings["timeout_ms"], retries=settings["retries"], clock=parts.clock)
