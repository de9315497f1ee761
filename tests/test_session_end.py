"""Every ending closes the session at once with its receipt: a meter register that goes
backwards or jumps, a misread, a shutdown (SIGTERM) mid-session or with the car parked."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from agent.bootstrap import open_runtime
from agent.clock import Clock
from agent.journal import Journal
from protocols.signing.agency import read_agency_public_key
from protocols.signing.receipt import verify_receipt
from tests.support import sim_config, wait_until

ROOT = Path(__file__).resolve().parent.parent


def checked(cfg, receipt):
    check = verify_receipt(receipt, agency_public_key=read_agency_public_key(cfg.agency_key))
    periods = receipt.get("charging_periods")
    assert periods is not None and sum(p["energy_wh"] for p in periods) == check.energy_wh
    return check


async def charging(rt, energy_wh=10):
    car = rt.board.sim.car
    car.plug_in()
    car.request_power()
    view = await rt.start_session(source="contract", reference="order-1", energy_limit_wh=100_000)
    await wait_until(lambda: rt.board.relay.closed, what="relay closed")
    await wait_until(lambda: rt.session(view.session_id).energy_wh >= energy_wh, what="some energy")
    return view.session_id


@pytest.mark.asyncio
async def test_a_register_that_goes_backwards_below_the_start_closes_the_session_at_once(tmp_path):
    cfg = sim_config(tmp_path, auth="network")
    receipts = []
    async with open_runtime(cfg, clock=Clock(speed=20)) as rt:
        first = await charging(rt, energy_wh=30)
        await rt.stop_session(first)
        rt.board.sim.car.unplug()
        await wait_until(lambda: not rt.journal.session(first).is_open, what="the first session closed")
        rt.add_listener(lambda kind, obj: receipts.append(obj) if kind == "receipt" else None)
        sid = await charging(rt)
        start_wh = rt.journal.session(sid).start_wh
        assert start_wh >= 30
        rt.board.sim.server.energy_backwards_wh = rt.board.sim.server.energy_import_wh - 5  # reads 5 Wh: below the start
        await wait_until(lambda: receipts, what="the session's receipt")
        rec = rt.journal.session(sid)
        assert not rec.is_open and rec.stop_wh >= start_wh
        assert rt.faults.latched() is not None and rt.core.state == "faulted"
    [(rid, receipt)] = receipts
    assert rid == sid
    assert checked(cfg, receipt).energy_wh == rec.stop_wh - rec.start_wh


@pytest.mark.asyncio
async def test_a_register_that_goes_backwards_at_the_stop_is_billed_no_further_and_latched(tmp_path):
    cfg = sim_config(tmp_path, auth="network")
    receipts = []
    async with open_runtime(cfg, clock=Clock(speed=20)) as rt:
        rt.add_listener(lambda kind, obj: receipts.append(obj) if kind == "receipt" else None)
        sid = await charging(rt, energy_wh=30)
        before_wh = rt._last_reading.energy_import_wh
        rt.board.sim.server.energy_backwards_wh = 5
        await rt.stop_session(sid)
        await wait_until(lambda: receipts, what="the session's receipt")
        rec = rt.journal.session(sid)
        await wait_until(lambda: rt.faults.latched() is not None, what="the meter fault latched")
    assert not rec.is_open and rec.start_wh <= rec.stop_wh <= before_wh + 1
    assert checked(cfg, receipts[0][1]).energy_wh == rec.stop_wh - rec.start_wh


@pytest.mark.asyncio
async def test_a_reading_too_high_while_parked_is_not_priced(tmp_path):
    cfg = sim_config(tmp_path, auth="network")
    receipts = []
    async with open_runtime(cfg, clock=Clock(speed=20)) as rt:
        rt.add_listener(lambda kind, obj: receipts.append(obj) if kind == "receipt" else None)
        sid = await charging(rt, energy_wh=20)
        await rt.stop_session(sid)  # the car stays plugged in: parked
        await wait_until(lambda: not rt.board.relay.closed, what="relay open")
        meta = rt._meta[sid]
        parked_wh = round(rt.board.sim.server.energy_import_wh)  # the register in whole Wh, as read
        rt.board.sim.server.energy_backwards_wh = -4  # one reading 4 Wh high
        await wait_until(lambda: meta.pricer.last_wh >= parked_wh + 4, what="the misread priced")
        high_wh = meta.pricer.last_wh
        rt.board.sim.server.energy_backwards_wh = 0  # back to the truth: the register went backwards
        await wait_until(lambda: receipts, what="the session's receipt")
        rec = rt.journal.session(sid)
        cost = rt.session(sid).cost
    check = checked(cfg, receipts[0][1])
    assert check.energy_wh == rec.stop_wh - rec.start_wh == cost.energy_wh
    assert rec.stop_wh < high_wh


def _urja_run(cfg, *extra):
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    return subprocess.Popen([sys.executable, "-m", "tools.cli", "run", "--config", cfg.path, "--sim-car", *extra],
                            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _sigterm_when(child, marker: str) -> tuple[str, str]:
    guard = threading.Timer(90, child.kill)  # bounds the reads below if the child hangs
    guard.start()
    seen = []
    try:
        for line in child.stdout:  # the agent logs to its standard output
            seen.append(line)
            if marker in line:
                child.send_signal(signal.SIGTERM)
                break
        out, err = child.communicate(timeout=60)
    finally:
        guard.cancel()
    return "".join(seen) + out, err


def _closed_with_receipt(cfg, reason):
    journal = Journal.open(Path(cfg.journal_path), clock=lambda: 0.0)
    try:
        assert not journal.open_sessions()
        rows = journal.sessions()
        assert rows
        for rec in rows:
            assert rec.stop_reason == reason
            checked(cfg, json.loads(journal.receipt(rec.session_id)))
        return rows
    finally:
        journal.close()


def test_sigterm_mid_session_closes_it_with_its_receipt(tmp_path):
    cfg = sim_config(tmp_path, auth="free_vend", default_limit_wh=100_000)
    child = _urja_run(cfg, "--speed", "5")
    out, err = _sigterm_when(child, "relay closed (permitted)")
    assert child.returncode == 0, err[-3000:]
    assert "reason shutdown" in out and "below the start reading" not in out + err, out[-3000:]
    _closed_with_receipt(cfg, "shutdown")


def test_sigterm_with_the_car_parked_after_a_stop_closes_it_with_its_receipt(tmp_path):
    cfg = sim_config(tmp_path, auth="free_vend", default_limit_wh=5)
    child = _urja_run(cfg, "--speed", "5")
    out, err = _sigterm_when(child, "stays parked")
    assert child.returncode == 0, err[-3000:]
    assert "ended:" in out, out[-3000:]
    _closed_with_receipt(cfg, "limit_energy")
