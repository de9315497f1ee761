"""``urja run`` (the agent) and ``urja demo`` (the network story, or ``--local``: one charger alone)."""
from __future__ import annotations

import argparse
import json
import logging
import sys
from pathlib import Path
from typing import TYPE_CHECKING

log = logging.getLogger("urja.run")

if TYPE_CHECKING:  # asyncio loads only in the commands that run a loop
    import asyncio


def register(subparsers) -> None:
    run = subparsers.add_parser("run", help="run the charge-controller agent")
    run.add_argument("--config", default=None, metavar="FILE",
                     help="site configuration (default /etc/urja/urja.toml)")
    run.add_argument("--board", default=None, metavar="NAME|FILE",
                     help="board profile, overriding the configuration's (e.g. sim)")
    run.add_argument("--duration-s", type=float, default=None, metavar="S",
                     help="stop after this many seconds (default: run until SIGTERM or Ctrl-C)")
    run.add_argument("--sim-car", action="store_true",
                     help="simulated board only: a car arrives, charges to the session limit, parks, leaves; "
                          "each signed receipt is printed. On a free-vend site (or with --token) it comes at "
                          "once and the agent stops after its receipt unless --duration-s is given; it also "
                          "comes for every order or remote start, as often as they come")
    run.add_argument("--token", default=None, help="with --sim-car: the driver shows this token (RFID card) at the charger: "
                          "on the site's allow-list, or an eMSP's card when the site serves OCPI")
    run.add_argument("--speed", type=float, default=1.0,
                     help="simulated board only: run simulated time this many times faster")
    run.add_argument("--check", action="store_true",
                     help="health check (upgrades): start, read the meter once, report READY, stop; "
                          "exit 0 only if all of it worked")
    run.set_defaults(func=run_handler)

    demo = subparsers.add_parser(
        "demo", help="the whole story, all local: three chargers on a local MQTT network, an app finds, "
                     "buys and verifies a charge (--local: one charger, no network)")
    demo.add_argument("--local", action="store_true",
                      help="one charger on the simulated board, a car, a receipt; no broker, no network")
    demo.add_argument("--dir", default=None, metavar="DIR", help="where to put the demo files (default: a temp dir)")
    demo.add_argument("--speed", type=float, default=None,
                      help="simulated time runs this many times faster than real time "
                           "(default 60; 30 with --local)")
    demo.add_argument("--kwh", type=float, default=5.0, help="energy the app buys (default 5 kWh)")
    demo.add_argument("--limit-wh", type=int, default=1000, help="with --local: energy the free-vend session may take")
    demo.add_argument("--keep-running", action="store_true",
                      help="keep the chargers (and the broker) running after the story (Ctrl-C to stop)")
    demo.add_argument("--verbose", action="store_true", help="show the agents' own log lines too")
    demo.add_argument("--bridge", action="store_true",
                      help="a buyer on HTTP only buys from a charger behind NAT through two bridges")
    demo.set_defaults(func=demo_handler)


def run_handler(args: argparse.Namespace) -> int:
    import asyncio

    from agent.config import DEFAULT_CONFIG_PATH, load_config

    path = Path(args.config) if args.config else DEFAULT_CONFIG_PATH
    if not path.exists() and args.config is None and (args.board is None or _simulated_board(args.board)):
        import tempfile

        from tools.provision import provision_site

        folder = Path(tempfile.mkdtemp(prefix="urja-sim-"))
        log.warning("no configuration at %s: running a temporary simulated site in %s", path, folder)
        path = provision_site(folder, site_id="in.local.sim-1", name="Simulated charger", lat=12.9352,
                              lon=77.6245, default_limit_wh=500, extra_toml=_sim_load(args.board or "sim"))
    config = load_config(path)
    if (args.sim_car or args.speed != 1.0) and not _simulated(args.board, config):
        print("urja run: --sim-car and --speed need a simulated board (--board sim or sim-socket)", file=sys.stderr)
        return 2
    return asyncio.run(_run(config, args))


SIM_SANCTIONED_KW = 3.3  # a small site's sanctioned load, shared with its household


def _sim_load(board) -> str:
    """A temporary simulated site whose board has a grid meter shares a small sanctioned load."""
    from board.profile import load_profile

    if load_profile(board).grid_meter is None:
        return ""
    return f'\n[load]\nlimit_kw = {SIM_SANCTIONED_KW}\nfairness = "equal_share"\nrotation_s = 300\n'


def _simulated_board(board) -> bool:
    """Whether ``--board`` names a simulated board (a temporary simulated site may be made for it)."""
    from board.profile import load_profile

    profile = load_profile(board)
    return profile.meter.backend == "sim" and profile.relay.backend == "sim"


def _simulated(board, config) -> bool:
    """A board whose meter and contactor are simulated, so a simulated car can charge on it.

    A profile that cannot be read is reported as itself (file and key), not as "not simulated".
    """
    from drivers.configfile import pointed_by

    if board is None:
        with pointed_by(config.path, "board.profile"):
            return _simulated_board(config.board_profile)
    return _simulated_board(board)


async def _run(config, args) -> int:
    import asyncio

    from agent.bootstrap import open_runtime
    from agent.clock import Clock
    from tools.service import ServiceLink
    from tools.shutdown import install_stop

    stop = asyncio.Event()
    install_stop(stop)
    link = ServiceLink()
    async with open_runtime(config, board_profile=args.board, clock=Clock(speed=args.speed)) as rt:
        try:
            await link.up(rt)
            if getattr(args, "check", False):  # callers that build their own Namespace
                await link.check(rt)
                return 0
            await _serve(rt, args, stop)
        finally:
            link.down()
    return 0


async def _serve(rt, args, stop: asyncio.Event) -> None:
    import asyncio

    from agent.aio import cancel_and_wait

    car = None
    if args.sim_car:
        car = asyncio.get_running_loop().create_task(_drive_sim_car(rt, args, stop), name="urja-sim-car")
    stopped = asyncio.get_running_loop().create_task(stop.wait(), name="urja-stop")
    try:
        # A car that gives up (a latched fault, a driver error) ends the run with its reason.
        await asyncio.wait([t for t in (stopped, car) if t is not None], timeout=args.duration_s,
                           return_when=asyncio.FIRST_COMPLETED)
    finally:
        await cancel_and_wait([stopped])
        if car is not None:
            await cancel_and_wait([car])
            if not car.cancelled() and car.exception() is not None:
                raise car.exception()


async def _drive_sim_car(rt, args, stop: asyncio.Event) -> None:
    """The simulated driver: at once on a free-vend site or with a token, then for every order.

    Without ``--duration-s`` a car that came by itself ends the run with its receipt (what a
    quick look at the agent wants); on a site that sells over the network the driver waits for
    buyers until the agent is stopped.
    """
    import asyncio

    from agent.core.errors import AgentError
    from tools.sim_site import SimDriver

    runtimes = getattr(rt, "runtimes", None)
    for one in runtimes or [rt]:
        latched = one.safety.latched_fault
        if latched is not None:
            # The charger is out of order until a local reset: a car would wait for ever.
            raise AgentError(f"--sim-car: the charger is out of order, fault {latched} is latched; "
                             f"after the repair: urja fault reset --config {one.config.path}")

    def show(receipt: dict) -> None:
        print(json.dumps(receipt, indent=2), flush=True)

    async def drive(one, label: str) -> None:
        driver = SimDriver(one, token=args.token, tell=lambda t: log.info("sim car%s: %s", label, t),
                           charge_kw=1.0 / len(runtimes or [one]))
        if args.token is not None or one.config.auth_mode == "free_vend":
            show(await driver.visit())
            if args.duration_s is None:
                return
        await driver.serve(on_receipt=show)

    if runtimes is None:
        await drive(rt, "")
    else:  # a car at every connector of a several-connector board
        await asyncio.gather(*(drive(one, f" at connector {one.connector_id}") for one in runtimes))
    if args.duration_s is None:
        stop.set()


def demo_handler(args: argparse.Namespace) -> int:
    import asyncio
    import tempfile

    folder = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="urja-demo-"))
    speed = args.speed if args.speed is not None else (30.0 if args.local else 60.0)
    if not speed > 0:
        print(f"urja demo: --speed {speed:g} must be more than 0", file=sys.stderr)
        return 2
    if args.local:
        from tools.demo import run_local_demo

        return asyncio.run(run_local_demo(folder, speed=speed, limit_wh=args.limit_wh,
                                          keep_running=args.keep_running))
    if not 0 < args.kwh <= 50:
        print(f"urja demo: --kwh {args.kwh:g} must be more than 0 and at most 50", file=sys.stderr)
        return 2
    if args.bridge:
        from tools.bridgedemo import run_bridge_demo

        return run_bridge_demo(folder, speed=speed, energy_wh=int(round(args.kwh * 1000)), verbose=args.verbose)
    from tools.netdemo import run_network_demo

    return run_network_demo(folder, speed=speed, energy_wh=int(round(args.kwh * 1000)),
                            keep_running=args.keep_running, verbose=args.verbose)
