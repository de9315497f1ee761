"""Kill the whole agent with SIGKILL at random moments during sessions; nothing is lost or invented.

After every restart: the relay opened (boot), the journal passes integrity_check, no session is
lost or duplicated, billed energy equals the meter's stop minus start reading and the sessions
chain without gaps across the meter's non-volatile register, and each has exactly one receipt.
"""
from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
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
