"""``urja run`` (the agent) and ``urja demo`` (a whole local session on the simulated board)."""
from __future__ import annotations

import argparse
import asyncio
import logging
import signal
import tempfile
from pathlib import Path

log = logging.getLogger("urja.run")


def register(subparsers) -> None:
    run = subparsers.add_parser("run", help="run the charge-controller agent")
    run.add_argument("--config", default=None, metavar="FILE",
                     help="site configuration (default /etc/urja/urja.toml)")
    run.add_argument("--board", default=None, metavar="NAME|FILE",
                     help="board profile, overriding the configuration's (e.g. sim)")
    run.add_argument("--duration-s", type=float, default=None, metavar="S",
                     help="stop after this many seconds (default: run until SIGTERM or Ctrl-C)")
    run.set_defaults(func=run_handler)

    demo = subparsers.add_parser("demo", help="a whole charging session on the simulated board, all local")
    demo.add_argument("--dir", default=None, metavar="DIR", help="where to put the demo site (default: a temp dir)")
    demo.add_argument("--speed", type=float, default=30.0,
                      help="simulated time runs this many times faster than real time (default 30)")
    demo.add_argument("--limit-wh", type=int, default=1000, help="energy the free-vend session may take")
    demo.add_argument("--keep-running", action="store_true",
                      help="keep the agent running after the session (Ctrl-C to stop)")
    demo.set_defaults(func=demo_handler)


def _install_stop(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass


def run_handler(args: argparse.Namespace) -> int:
    from agent.config import DEFAULT_CONFIG_PATH, load_config

    path = Path(args.config) if args.config else DEFAULT_CONFIG_PATH
    if not path.exists() and args.config is None and args.board in ("sim", None):
        from tools.provision import provision_site

        folder = Path(tempfile.mkdtemp(prefix="urja-sim-"))
        log.warning("no configuration at %s: running a temporary simulated site in %s", path, folder)
        path = provision_site(folder, site_id="in.local.sim-1", name="Simulated charger", lat=12.9352,
                              lon=77.6245)
    config = load_config(path)
    return asyncio.run(_run(config, args.board, args.duration_s))


async def _run(config, board, duration_s) -> int:
    from agent.runtime import open_runtime

    stop = asyncio.Event()
    _install_stop(stop)
    async with open_runtime(config, board_profile=board):
        try:
            await asyncio.wait_for(stop.wait(), duration_s)
        except asyncio.TimeoutError:
            pass
    return 0


def demo_handler(args: argparse.Namespace) -> int:
    from tools.demo import run_local_demo

    folder = Path(args.dir) if args.dir else Path(tempfile.mkdtemp(prefix="urja-demo-"))
    return asyncio.run(run_local_demo(folder, speed=args.speed, limit_wh=args.limit_wh,
                                      keep_running=args.keep_running))
