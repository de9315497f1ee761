"""The full agent under a scripted car, run as a child process that the crash test kills.

It runs the real runtime (board, safety gate, session core, journal, receipts) on the
simulated board whose meter register is non-volatile (``register_file``), and charges car
after car until it is killed. ``--reconcile-only`` boots, reconciles and exits, as the first
seconds of a restarted charger do.
"""
from __future__ import annotations

import argparse
import asyncio
import sys


async def main(config_path: str, speed: float, reconcile_only: bool) -> int:
    from agent.bootstrap import open_runtime
    from agent.clock import Clock
    from agent.config import load_config

    config = load_config(config_path)
    async with open_runtime(config, clock=Clock(speed=speed)) as rt:
        if reconcile_only:
            print("meter_wh", rt._last_reading.energy_import_wh, flush=True)
            return 0
        car = rt.board.sim.car
        while True:
            done = asyncio.Event()
            rt.add_listener(lambda kind, obj, d=done: d.set() if kind == "receipt" else None)
            car.plug_in()
            while rt.core.session_id is None:
                await asyncio.sleep(0.005)
            car.request_power()
            while rt.core.stop_reason is None:
                await asyncio.sleep(0.005)
            car.unplug()
            await asyncio.wait_for(done.wait(), 10)
            print("session", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("config")
    parser.add_argument("--speed", type=float, default=50.0)
    parser.add_argument("--reconcile-only", action="store_true")
    args = parser.parse_args()
    sys.exit(asyncio.run(main(args.config, args.speed, args.reconcile_only)))
