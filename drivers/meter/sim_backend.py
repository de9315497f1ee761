"""The ``sim`` meter backend: a simulated meter served on loopback, read by the real Modbus client.

Building it builds the simulated world around the board's drivers (``drivers.simworld``): the
car behind the relay draws current that the simulated meter measures. On a socket outlet
``socket_load_a`` is what the vehicle behind it draws (default: the outlet's maximum), so a
simulated site can have an e-rickshaw on one outlet and a scooter on the next.
"""
from __future__ import annotations

from typing import Any, Mapping

from drivers.backend import Backend, BoardFacts, BuildParts
from drivers.configfile import Section, check_writable_path, pointed_by
from drivers.meter.settings import read_link_limits, read_model


def parse(sec: Section, facts: BoardFacts) -> dict[str, Any]:
    opts: dict[str, Any] = {"model": read_model(sec, facts.phases)}
    register_file = sec.str("register_file", None)
    if register_file is not None:
        with pointed_by(sec.file, sec.key("register_file")):
            check_writable_path(register_file)
        opts["register_file"] = register_file
    load_a = sec.float("socket_load_a", None, min=0.5, max=facts.max_current_a)
    if load_a is not None:
        opts["socket_load_a"] = load_a
    opts.update(read_link_limits(sec))
    return opts


async def build(settings: Mapping[str, Any], parts: BuildParts):
    """The server is handed to ``parts`` before it listens, so a failed start still stops it."""
    from drivers.meter import make_meter
    from drivers.meter.simserver import SimMeterServer
    from drivers.simworld import SimParts, couple, socket_car

    server = SimMeterServer(settings["model"], clock=parts.clock, register_file=settings.get("register_file"))
    parts.sim_server = server
    port = await server.start_tcp("127.0.0.1", 0)
    meter = make_meter(model=settings["model"], transport="tcp", host="127.0.0.1", port=port,
                       timeout_ms=settings["timeout_ms"], retries=settings["retries"], clock=parts.clock,
                       max_current_a=parts.max_current_a)
    parts.sim = SimParts(server=server, relay=parts.relay, pilot=parts.pilot,
                         car=socket_car(relay=parts.relay, pilot=parts.pilot,
                                        max_current_a=settings.get("socket_load_a", parts.max_current_a),
                                        phases=parts.phases))
    couple(parts.sim)
    return meter


BACKEND = Backend(kind="meter", name="sim", parse=parse, build=build)
