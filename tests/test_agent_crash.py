"""Kill the whole agent with SIGKILL at random moments during sessions; nothing is lost or invented.

After every restart: the relay opened (boot), the journal passes integrity_check, no session is
lost or duplicated, billed energy equals the meter's stop minus start reading and the sessions
chain without gaps across the meter's non-volatile register, and each has exactly one receipt.
"""
from __future__ import annotations

import asyncio
import os
import random
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from tests.crash.journal_check import check_meter_chain, check_recovered, check_structure, snapshot
from tests.support import sim_config

ROOT = Path(__file__).resolve().parent.parent
CHILD = ROOT / "tests" / "crash" / "agent_child.py"


def _profile(tmp_path: Path) -> Path:
    text = (ROOT / "board" / "profiles" / "sim.toml").read_text()
    text = text.replace('model = "sdm630"', f'model = "sdm630"\nregister_file = "{tmp_path / "meter.register"}"')
    path = tmp_path / "sim-nv.toml"
    path.write_text(text)
    return path


def _spawn(config: Path, *extra: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, str(CHILD), str(config), *extra], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


@pytest.mark.slow
def test_sigkill_at_random_moments_loses_nothing(tmp_path):
    profile = _profile(tmp_path)
    cfg = sim_config(tmp_path, auth="free_vend", default_limit_wh=40, board=str(profile))
    config = Path(cfg.path)
    journal = Path(cfg.journal_path)
    rng = random.Random(20261124)
    kills = 0
    mid_session = 0
    for _ in range(25):
        child = _spawn(config)
        time.sleep(rng.uniform(0.4, 2.0))  # the random moment of the power cut, not a synchronisation
        child.send_signal(signal.SIGKILL)
        out, err = child.communicate(timeout=30)
        assert child.returncode == -signal.SIGKILL, err[-2000:]
        kills += 1
        if journal.exists():
            snap = snapshot(journal)
            check_structure(snap)
            mid_session += bool(snap.open_sessions())
    final = _spawn(config, "--reconcile-only")
    out, err = final.communicate(timeout=60)
    assert final.returncode == 0, err[-3000:]
    snap = snapshot(journal)
    check_recovered(snap)
    final_wh = int(out.split("meter_wh", 1)[1].split()[0])
    check_meter_chain(snap, initial_wh=0, final_wh=final_wh)
    assert len(snap.sessions) >= 10, "too few sessions to mean anything"
    assert mid_session >= 5, f"only {mid_session} of {kills} kills landed inside a session"


# A child that welds the contactor, waits for the latch to be recorded, says so and waits to be killed.
_WELD_CHILD = """
import asyncio, sys
from agent.clock import Clock
from agent.config import load_config
from agent.bootstrap import open_runtime

async def main(path):
    async with open_runtime(load_config(path), clock=Clock(speed=20)) as rt:
        car = rt.board.sim.car
        car.plug_in()
        car.request_power()
        view = await rt.start_session(source="contract", reference="order-kill", energy_limit_wh=10000)
        while not rt.board.relay.closed:
            await asyncio.sleep(0.005)
        rt.board.relay.weld()
        await rt.stop_session(view.session_id)
        while rt.faults.latched() is None:
            await asyncio.sleep(0.005)
        print("latched", flush=True)
        await asyncio.Event().wait()

asyncio.run(main(sys.argv[1]))
"""


def test_a_latched_weld_survives_sigkill(tmp_path):
    """A power cut right after a weld latched: the charger comes back out of order, relay open."""
    from agent.bootstrap import open_runtime
    from agent.clock import Clock
    from agent.service import ServiceError

    cfg = sim_config(tmp_path, auth="network")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    child = subprocess.Popen([sys.executable, "-c", _WELD_CHILD, cfg.path], cwd=ROOT, env=env,
                             stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    guard = threading.Timer(60, child.kill)  # bounds the read below if the child hangs
    guard.start()
    try:
        line = child.stdout.readline()
    finally:
        guard.cancel()
    child.send_signal(signal.SIGKILL)
    out, err = child.communicate(timeout=30)
    assert line.strip() == "latched", err[-3000:]
    assert child.returncode == -signal.SIGKILL

    async def after_restart():
        async with open_runtime(cfg, clock=Clock(speed=20)) as rt:
            assert rt.safety.latched_fault == "relay_welded"
            assert not rt.board.relay.closed and rt.connectors()[0].status == "OUTOFORDER"
            try:
                await rt.start_session(source="contract", reference="order-after-power-cut")
            except ServiceError as exc:
                return exc.code
            return None

    assert asyncio.run(after_restart()) == ServiceError.INOPERATIVE
