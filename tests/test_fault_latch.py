"""A latched fault outlives a restart and is cleared only by a local reset (``urja fault reset``).

The real runtime on the simulated board, the real fault file beside the journal, and the
``urja`` command as a second process, as a technician would run it next to the agent.
"""
from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agent.bootstrap import open_runtime
from agent.clock import Clock
from agent.journal import FaultStore, Journal, fault_store_path
from agent.service import ServiceError
from tests.support import sim_config, wait_until

ROOT = Path(__file__).resolve().parent.parent


def _env() -> dict:
    return dict(os.environ, PYTHONPATH=str(ROOT))


async def urja(*argv: str) -> tuple[int, str, str]:
    """``urja ARGS`` as its own process, without blocking the agent running in this one."""
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "tools.cli", *argv, cwd=ROOT, env=_env(),
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    return proc.returncode, out.decode(), err.decode()


def urja_sync(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "tools.cli", *argv], cwd=ROOT, env=_env(), capture_output=True,
                          text=True, timeout=60)


async def weld_and_latch(rt) -> None:
    """Charge, weld the contactor, stop: the mirror contact stays closed and the gate latches."""
    car = rt.board.sim.car
    car.plug_in()
    car.request_power()
    view = await rt.start_session(source="contract", reference="order-weld", energy_limit_wh=10_000)
    await wait_until(lambda: rt.board.relay.closed, what="relay closed")
    rt.board.relay.weld()
    await rt.stop_session(view.session_id)
    await wait_until(lambda: rt.faults.latched() is not None, what="weld latched and recorded")
    assert rt.safety.latched_fault == "relay_welded"


async def test_a_weld_stays_latched_across_a_restart_until_a_local_reset(tmp_path, caplog):
    cfg = sim_config(tmp_path, auth="network")
    async with open_runtime(cfg, clock=Clock(speed=20)) as rt:
        await weld_and_latch(rt)
        assert rt.connectors()[0].status == "OUTOFORDER"
        recorded = rt.faults.latched()
        assert recorded.code == "relay_welded" and "feedback still closed" in recorded.detail
    # The restart: a new board (the simulated contactor comes back whole), the same files.
    caplog.set_level("INFO", logger="urja.runtime")
    async with open_runtime(cfg, clock=Clock(speed=20)) as rt:
        closes = []
        rt.on_relay_command = lambda cmd, t: closes.append(cmd) if cmd.kind == "close_relay" else None
        assert rt.safety.latched_fault == "relay_welded"
        assert not rt.board.relay.closed and not rt.board.relay.contacts_closed
        assert rt.connectors()[0].status == "OUTOFORDER"
        assert any("relay_welded" in r.getMessage() and "still recorded" in r.getMessage() for r in caplog.records)
        car = rt.board.sim.car
        car.plug_in()
        car.request_power()
        with pytest.raises(ServiceError) as info:
            await rt.start_session(source="contract", reference="order-after-restart")
        assert info.value.code == ServiceError.INOPERATIVE
        with pytest.raises(ServiceError) as info:
            await rt.present_token("DEMO-RFID-0001")
        assert info.value.code == ServiceError.INOPERATIVE

        code, out, err = await urja("fault", "show", "--config", cfg.path)
        assert code == 0, err
        assert "fault relay_welded latched at" in out and "feedback still closed" in out and "urja fault reset" in out
        code, out, err = await urja("fault", "reset", "--config", cfg.path)
        assert code == 0, err
        assert "cleared relay_welded" in out
        # The agent takes the reset on its own: nothing but the fault file told it.
        await wait_until(lambda: rt.safety.latched_fault is None, what="latch cleared by the local reset")
        assert rt.core.state != "faulted" and rt.connectors()[0].status != "OUTOFORDER"
        assert closes == []

        view = await rt.start_session(source="contract", reference="order-after-reset", energy_limit_wh=10_000)
        await wait_until(lambda: rt.board.relay.closed and rt.board.relay.contacts_closed, what="charging again")
        await wait_until(lambda: rt.core.state == "charging", what="charging state")
        await rt.stop_session(view.session_id)
        assert rt.faults.latched() is None
    code, out, err = await urja("fault", "show", "--config", cfg.path)
    assert code == 0 and "no fault is latched" in out and "last: relay_welded" in out


async def test_a_reset_while_the_contactor_is_still_welded_is_refused_and_recorded_again(tmp_path):
    cfg = sim_config(tmp_path, auth="network")
    async with open_runtime(cfg, clock=Clock(speed=20)) as rt:
        await weld_and_latch(rt)
        first = rt.faults.latched()
        code, out, err = await urja("fault", "reset", "--config", cfg.path)
        assert code == 0, err

        def recorded_again():
            rec = rt.faults.latched()
            return rec is not None and rec.id != first.id

        await wait_until(recorded_again, what="the refused reset recorded as a new latch")
        again = rt.faults.latched()
        assert again.code == "relay_welded" and "local reset refused" in again.detail and "feedback" in again.detail
        assert rt.safety.latched_fault == "relay_welded" and rt.connectors()[0].status == "OUTOFORDER"
        assert rt.board.relay.contacts_closed

        # Repaired: the reset drives the contactor open once more, its mirror reads open, the latch clears.
        rt.board.relay.repair()
        code, out, err = await urja("fault", "reset", "--config", cfg.path)
        assert code == 0, err
        await wait_until(lambda: rt.safety.latched_fault is None, what="latch cleared after the repair")
        assert not rt.board.relay.contacts_closed and rt.faults.latched() is None


async def test_a_pilot_fault_reset_while_the_agent_is_stopped_is_gone_at_the_next_start(tmp_path):
    cfg = sim_config(tmp_path, auth="network")
    async with open_runtime(cfg, clock=Clock(speed=20)) as rt:
        car = rt.board.sim.car
        car.plug_in()
        car.diode_fault()
        await wait_until(lambda: rt.faults.latched() is not None, what="diode fault latched and recorded")
        assert rt.safety.latched_fault == "pilot_diode_fault"
        car.unplug()
    code, out, err = await urja("fault", "show", "--config", cfg.path)
    assert code == 0 and "pilot_diode_fault" in out and "control pilot reported diode_fault" in out
    code, out, err = await urja("fault", "reset", "--config", cfg.path)
    assert code == 0, err
    async with open_runtime(cfg, clock=Clock(speed=20)) as rt:
        assert rt.safety.latched_fault is None and rt.core.state != "faulted"
        assert rt.connectors()[0].status == "AVAILABLE"


async def test_an_unreset_pilot_fault_is_latched_again_at_the_next_start(tmp_path):
    cfg = sim_config(tmp_path, auth="network")
    async with open_runtime(cfg, clock=Clock(speed=20)) as rt:
        car = rt.board.sim.car
        car.plug_in()
        car.error_e()
        await wait_until(lambda: rt.faults.latched() is not None, what="pilot E latched and recorded")
    async with open_runtime(cfg, clock=Clock(speed=20)) as rt:
        assert rt.safety.latched_fault == "pilot_E" and rt.core.state == "faulted"
        assert rt.connectors()[0].status == "OUTOFORDER"


def test_reset_with_nothing_latched_is_refused(tmp_path):
    cfg = sim_config(tmp_path, auth="network")
    # No fault file at all yet (the agent never ran): nothing to reset, and nothing is created.
    done = urja_sync("fault", "reset", "--config", cfg.path)
    assert done.returncode == 1
    assert "no fault is latched" in done.stderr and "nothing to reset" in done.stderr
    assert not fault_store_path(cfg.journal_path).exists()
    # A fault file whose faults were all cleared: refused the same way, the history untouched.
    with FaultStore.open(fault_store_path(cfg.journal_path)) as store:
        store.latch("relay_welded", "seen", 1000.0)
        store.clear(1001.0, by="urja fault reset")
    done = urja_sync("fault", "--config", cfg.path, "reset")
    assert done.returncode == 1 and "nothing to reset" in done.stderr
    with FaultStore.open(fault_store_path(cfg.journal_path)) as store:
        assert [(f.code, f.cleared_s) for f in store.history()] == [("relay_welded", 1001.0)]
    done = urja_sync("fault", "show", "--config", cfg.path)
    assert done.returncode == 0 and "no fault is latched" in done.stdout


def test_the_fault_file_is_shared_while_the_agent_holds_it(tmp_path):
    """The agent keeps its connection open; the command writes through its own."""
    path = fault_store_path(tmp_path / "journal.sqlite")
    assert path.name == "journal.faults.sqlite"
    agent = FaultStore.open(path)
    try:
        first = agent.latch("relay_welded", "feedback closed", 100.0)
        assert agent.latch("relay_welded", "again at boot", 200.0) == first  # idempotent while uncleared
        with FaultStore.open(path) as tool:
            assert tool.latched() == first
            cleared = tool.clear(300.0, by="urja fault reset")
        assert [f.id for f in cleared] == [first.id]
        assert agent.fault(first.id).cleared_s == 300.0 and agent.latched() is None
        second = agent.latch("relay_welded", "refused", 400.0)
        assert second.id != first.id and agent.latched() == second
        assert [f.id for f in agent.history()] == [second.id, first.id]
    finally:
        agent.close()


def test_the_journal_opens_beside_its_fault_file(tmp_path):
    """The fault file is separate: an existing journal opens as before, and reopening keeps both."""
    journal_path = tmp_path / "journal.sqlite"
    with Journal.open(journal_path) as journal:
        version = journal.schema_version
    with FaultStore.open(fault_store_path(journal_path)) as store:
        store.latch("pilot_E", "pilot reported E", 5.0)
    with FaultStore.open(fault_store_path(journal_path)) as store, Journal.open(journal_path) as journal:
        assert store.latched().code == "pilot_E" and journal.schema_version == version
