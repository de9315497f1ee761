"""A full disk: refuse to start, stop selling mid-session, and keep the latch where it survives.

The full file system is a real small tmpfs where the machine allows mounting one, and an
injected write error everywhere (the same ``StorageError`` SQLite's "database or disk is full"
becomes).
"""
from __future__ import annotations

import os
import subprocess
import uuid

import pytest

from agent.bootstrap import open_runtime
from agent.clock import Clock
from agent.journal import FaultStore, fault_store_path, slot
from agent.journal.errors import StorageError
from tests.support import sim_config, wait_until
from tools.cli import main


def _refuse_writes(store: FaultStore) -> None:
    def full(work):
        raise StorageError(f"fault latch file {store.path}: write failed: database or disk is full", path=store.path)
    store._write = full


def test_a_latch_the_disk_has_no_room_for_survives_a_restart_in_the_slot(tmp_path):
    path = tmp_path / "j.faults.sqlite"
    store = FaultStore.open(path)
    _refuse_writes(store)
    latched = store.latch("command_failed", "session end not written", 100.0)
    assert latched.id == FaultStore.SLOT_ID
    store.close()
    again = FaultStore.open(path)
    assert again.latched().code == "command_failed"
    assert again.fault(FaultStore.SLOT_ID).is_latched
    cleared = again.clear(200.0, by="urja fault reset")
    assert [f.code for f in cleared] == ["command_failed"]
    assert again.latched() is None
    assert again.fault(FaultStore.SLOT_ID).cleared_by == "urja fault reset"  # cleared, not forgotten
    again.close()


def test_the_slot_is_written_in_place_without_new_space(tmp_path):
    held = slot.LatchSlot.open(str(tmp_path / "x.slot"))
    before = os.stat(held.path)
    held.write(slot.SlotFault(code="c", detail="d" * 5000, latched_s=1.0))
    after = os.stat(held.path)
    assert before.st_size == after.st_size == slot.SLOT_BYTES
    assert held.read().code == "c"
    held.close()


@pytest.fixture
def tiny_fs(tmp_path):
    """A 1 MiB tmpfs, where the machine lets the tests mount one (root in a container that may)."""
    mnt = tmp_path / f"fs-{uuid.uuid4().hex[:6]}"
    mnt.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(mnt)],
                                           capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here; the injected-error tests cover the same paths")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


def test_on_a_really_full_file_system_the_latch_still_lands_in_the_slot(tiny_fs):
    store = FaultStore.open(tiny_fs / "j.faults.sqlite")
    with open(tiny_fs / "filler", "wb") as fh:  # fill every block that is left
        try:
            while True:
                fh.write(b"\0" * 65536)
                fh.flush()
        except OSError:
            pass
    latched = store.latch("command_failed", "x" * 200_000, 5.0)  # a row too big for what is left
    assert latched.id == FaultStore.SLOT_ID
    store.close()
    assert FaultStore.open(tiny_fs / "j.faults.sqlite").latched().code == "command_failed"


@pytest.mark.runtime
def test_no_room_for_the_journal_at_boot_is_one_line(tmp_path, capsys, monkeypatch):
    cfg = sim_config(tmp_path)
    monkeypatch.setattr(slot, "free_bytes", lambda folder: 4096)
    code = main(["run", "--config", cfg.path, "--duration-s", "0.2"])
    err = capsys.readouterr().err
    assert code == 2 and "Traceback" not in err
    assert "journal.path: " in err and "has 4096 bytes free, the journal needs at least" in err


@pytest.mark.runtime
async def test_a_journal_that_cannot_be_written_mid_session_stops_it_and_the_latch_survives(tmp_path):
    cfg = sim_config(tmp_path, default_limit_wh=5000)
    async with open_runtime(cfg, clock=Clock(speed=60)) as rt:
        car = rt.board.sim.car
        car.plug_in()  # free vend: plugging in starts the session
        car.request_power()
        await wait_until(lambda: rt.board.relay.closed, what="the relay closing")
        await wait_until(lambda: rt.core.delivered_wh() > 5, what="energy flowing")

        def full(*args, **kwargs):
            raise StorageError("journal: write failed: database or disk is full", path=str(cfg.journal_path))
        rt.journal.checkpoint = full
        _refuse_writes(rt.faults)
        await wait_until(lambda: rt.safety.latched_fault is not None, what="the latch")
        await wait_until(lambda: not rt.board.relay.closed, what="the relay opening")
        assert rt.safety.latched_fault in ("journal_unwritable", "command_failed")
        assert rt.connectors()[0].status == "OUTOFORDER"
    store = FaultStore.open(fault_store_path(cfg.journal_path))
    try:
        assert store.latched() is not None and store.latched().id == FaultStore.SLOT_ID
    finally:
        store.close()
    async with open_runtime(cfg, clock=Clock(speed=60)) as rt:  # the restart: still out of order
        assert rt.safety.latched_fault is not None
        assert rt.connectors()[0].status == "OUTOFORDER"


def _fill(folder) -> None:
    """Take every block the file system has left."""
    with open(folder / "filler", "wb") as fh:
        try:
            while True:
                fh.write(b"\0" * 65536)
                fh.flush()
        except OSError:
            pass


@pytest.fixture
def small_fs(tmp_path):
    """A 4 MiB tmpfs: room for the agent to start (1 MiB free) and for its reserve."""
    mnt = tmp_path / f"fs-{uuid.uuid4().hex[:6]}"
    mnt.mkdir()
    if os.geteuid() != 0 or subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mnt)],
                                           capture_output=True).returncode != 0:
        pytest.skip("cannot mount a small tmpfs here; the injected-error test covers the same paths")
    try:
        yield mnt
    finally:
        subprocess.run(["umount", "-l", str(mnt)], check=False)


async def _charge_until_the_disk_fails(rt, make_full) -> str:
    car = rt.board.sim.car
    car.plug_in()  # free vend: plugging in starts the session
    car.request_power()
    await wait_until(lambda: rt.board.relay.closed, what="the relay closing")
    await wait_until(lambda: rt.core.delivered_wh() > 5, what="energy flowing")
    sid = rt.core.session_id
    make_full()
    await wait_until(lambda: rt.safety.latched_fault is not None, what="the latch")
    await wait_until(lambda: not rt.board.relay.closed, what="the relay opening")
    await wait_until(lambda: rt.receipt(sid) is not None, what="the session's receipt")
    return sid


@pytest.mark.runtime
async def test_a_full_disk_mid_session_ends_it_with_its_receipt_on_the_reserve_then_sells_no_more(tmp_path):
    cfg = sim_config(tmp_path, default_limit_wh=5000)
    async with open_runtime(cfg, clock=Clock(speed=60)) as rt:
        reserve = rt.journal.reserve
        assert os.path.getsize(reserve.path) == rt.journal.reserve.size_bytes
        write_once = rt.journal._write_once

        def full_until_released(work):  # the disk is full until the reserve gives its room back
            if not reserve.released:
                raise StorageError("journal: write failed: database or disk is full", path=str(cfg.journal_path))
            return write_once(work)

        sid = await _charge_until_the_disk_fails(rt, lambda: setattr(rt.journal, "_write_once", full_until_released))
        assert rt.safety.latched_fault == "journal_unwritable"
        assert not os.path.exists(reserve.path)
        assert rt.session(sid).status == "COMPLETED" and rt.journal.session(sid).stop_reason != "recovered"
        assert rt.connectors()[0].status == "OUTOFORDER"
    async with open_runtime(cfg, clock=Clock(speed=60)) as rt:  # the restart: out of order, reserve again
        assert rt.safety.latched_fault == "journal_unwritable"
        assert os.path.getsize(rt.journal.reserve.path) == rt.journal.reserve.size_bytes
        assert rt.journal.session(sid).stop_reason != "recovered"


@pytest.mark.runtime
async def test_on_a_really_full_file_system_the_session_still_ends_with_its_receipt(tmp_path, small_fs):
    cfg = sim_config(tmp_path, default_limit_wh=5000)
    cfg.journal_path = str(small_fs / "journal.sqlite")
    async with open_runtime(cfg, clock=Clock(speed=60)) as rt:
        sid = await _charge_until_the_disk_fails(rt, lambda: _fill(small_fs))
        assert rt.journal.reserve.released
        receipt = rt.receipt(sid)
        assert receipt["stop"]["meter_wh"] - receipt["start"]["meter_wh"] == rt.journal.session(sid).energy_wh
        assert rt.connectors()[0].status == "OUTOFORDER"
    os.unlink(small_fs / "filler")
    store = FaultStore.open(fault_store_path(cfg.journal_path))
    try:
        assert store.latched().code == "journal_unwritable"
    finally:
        store.close()
