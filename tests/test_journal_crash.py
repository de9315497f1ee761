"""Kill a process that writes the journal at random moments and check nothing is lost or invented.

SIGKILL leaves exactly the bytes the process had handed to the kernel, which is what the
journal's ordering must make safe; a true power cut additionally drops what was not fsynced,
which ``synchronous=FULL`` covers and this test cannot reproduce without a virtual machine.
After every kill the on-disk files are copied and recovered in this process (the same code
the child runs on boot), then checked; the next child then recovers the real file itself,
and is sometimes killed in the middle of doing so.
"""
from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from crash import journal_check as jc
from crash.journal_child import RECEIPT_TOPIC, read_meter, recover

CHILD = Path(__file__).parent / "crash" / "journal_child.py"
KILLS = 60
SEED = 20261124


def _spawn(tmp, run_index, mode="run"):
    return subprocess.Popen(
        [sys.executable, str(CHILD), str(tmp / "journal.db"), str(tmp / "meter"), str(tmp / "events"),
         str(SEED), str(run_index), mode],
        stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)


def _check_receipts(snap):
    for sid, blob in snap.receipts.items():
        body = json.loads(blob)
        row = snap.by_id[sid]
        assert body["start_wh"] == row["start_wh"] and body["stop_wh"] == row["stop_wh"], sid
        assert body["energy_wh"] == row["stop_wh"] - row["start_wh"], sid


def _check_delivery_bound(snap, events, kills):
    """At-least-once, but a message is redelivered only after a kill or an explicit retry."""
    counts: dict[str, int] = {}
    for event in events:
        if event[0] == "delivered":
            counts[event[1]] = counts.get(event[1], 0) + 1
    attempts = {m["dedup_key"]: m["attempts"] for m in snap.outbox}
    for key, count in counts.items():
        assert count <= attempts.get(key, 0) + kills + 1, f"{key} delivered {count} times"


@pytest.mark.slow
def test_random_kills_lose_nothing_and_invent_nothing(tmp_path):
    rng = random.Random(SEED)
    work = tmp_path / "live"
    work.mkdir()
    killed_mid_session = 0
    started = time.monotonic()
    for run_index in range(KILLS):
        child = _spawn(work, run_index)
        # Between interpreter start-up (no journal yet) and deep into the session loop.
        delay_s = rng.uniform(0.03, 0.35)
        try:
            child.wait(timeout=delay_s)
        except subprocess.TimeoutExpired:
            pass
        if child.returncode is not None:
            pytest.fail(f"child run {run_index} exited early ({child.returncode}): {child.stderr.read().decode()}")
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=10)
        child.stderr.close()
        assert child.returncode == -signal.SIGKILL

        if not (work / "journal.db").exists():
            continue
        events = jc.read_events(work / "events")
        # As the kill left it: structurally sound, and every returned call is on disk.
        copy = jc.copy_journal(work / "journal.db", tmp_path / f"copy{run_index}")
        raw = jc.snapshot(copy)
        jc.check_structure(raw)
        jc.check_against_log(raw, events)
        killed_mid_session += bool(raw.open_sessions())
        # As the next boot will see it: recover a second copy and check the full invariants.
        copy = jc.copy_journal(work / "journal.db", tmp_path / f"rec{run_index}")
        meter_wh = read_meter(work / "meter")
        recover(copy, work / "meter").close()
        snap = jc.snapshot(copy)
        jc.check_recovered(snap, receipt_topic=RECEIPT_TOPIC)
        jc.check_meter_chain(snap, initial_wh=0, final_wh=meter_wh)
        jc.check_against_log(snap, events)
        _check_receipts(snap)

    final = _spawn(work, KILLS, mode="recover")
    assert final.wait(timeout=30) == 0, final.stderr.read().decode()
    final.stderr.close()
    events = jc.read_events(work / "events")
    snap = jc.snapshot(work / "journal.db")
    jc.check_recovered(snap, receipt_topic=RECEIPT_TOPIC)
    jc.check_meter_chain(snap, initial_wh=0, final_wh=read_meter(work / "meter"))
    jc.check_against_log(snap, events)
    _check_receipts(snap)
    _check_delivery_bound(snap, events, KILLS)

    # The test must have exercised what it claims to: many sessions, kills inside sessions,
    # sessions closed by recovery, messages delivered and still pending.
    assert len(snap.sessions) >= 100, len(snap.sessions)
    assert killed_mid_session >= 10, killed_mid_session
    assert sum(1 for s in snap.sessions if s["stop_reason"] == "recovered") >= 10
    assert any(m["acked_s"] is not None for m in snap.outbox)
    assert read_meter(work / "meter") > 0
    assert time.monotonic() - started < 120
    print(f"{KILLS} kills, {len(snap.sessions)} sessions, {killed_mid_session} kills inside a session, "
          f"{sum(s['stop_reason'] == 'recovered' for s in snap.sessions)} closed by recovery, "
          f"{len(snap.outbox)} messages")
