"""A stand-in runtime that the crash test kills with SIGKILL at random moments.

It follows the journal's durability contract: reconcile on boot with the relay open, start a
session durably before "closing the relay", let a simulated meter advance only while the relay
is closed, checkpoint, stop, store the receipt, queue and deliver messages. The meter is a
separate small file replaced atomically, as a real meter's register is separate from the
journal and survives power loss. Every call's return is reported on an event log so the
parent can tell what the journal promised.

Usage: journal_child.py JOURNAL METER EVENTS SEED RUN {run,recover}
"""
from __future__ import annotations

import json
import os
import random
import sys
import time
from pathlib import Path

# Run as a script by the venv's python: make the repository importable without installing.
sys.path.insert(0, str(Path(__file__).resolve().parents[2]))

from agent.journal import CheckpointPolicy, Journal  # noqa: E402

RECEIPT_TOPIC = "receipts"
METER_SERIAL = "SIM-0001"
# Small intervals so that a kill often lands in or around a checkpoint write.
CHILD_POLICY = CheckpointPolicy(interval_s=0.01, step_wh=40, min_interval_s=0.0)


def make_receipt(record) -> bytes:
    body = {"session_id": record.session_id, "start_wh": record.start_wh, "stop_wh": record.stop_wh,
            "energy_wh": record.energy_wh, "reason": record.stop_reason}
    return json.dumps(body, sort_keys=True).encode()


def read_meter(path) -> int:
    try:
        return int(Path(path).read_text())
    except FileNotFoundError:
        return 0


def write_meter(path, wh: int) -> None:
    tmp = f"{path}.tmp"
    with open(tmp, "w") as f:
        f.write(str(wh))
    os.replace(tmp, path)


class EventLog:
    def __init__(self, path):
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)

    def __call__(self, *fields) -> None:
        os.write(self._fd, (" ".join(str(f) for f in fields) + "\n").encode())


def recover(journal_path, meter_path, *, clock=time.time) -> Journal:
    """What the runtime does on boot (the relay is open): reconcile with the meter as it reads now."""
    journal = Journal.open(journal_path, clock=clock, policy=CHILD_POLICY)
    journal.reconcile(read_meter(meter_path), clock(), make_receipt=make_receipt, receipt_topic=RECEIPT_TOPIC)
    return journal


def run(journal_path, meter_path, events_path, seed: int, run_index: int) -> None:
    log = EventLog(events_path)
    rng = random.Random(seed * 100_003 + run_index)
    journal = recover(journal_path, meter_path)
    log("ready", run_index)
    meter_wh = read_meter(meter_path)
    n = 0
    while True:
        sid = f"r{run_index}-s{n}"
        n += 1
        journal.start_session(sid, connector_id=1, auth={"source": "local", "token": f"tok{n % 7}"},
                              start_wh=meter_wh, start_time_s=time.time(), meter_serial=METER_SERIAL,
                              tariff_id="flat")
        log("started", sid, meter_wh)
        # Relay closed: energy flows, and the meter's register records it by itself.
        for _ in range(rng.randint(0, 25)):
            meter_wh += rng.randint(0, 30)
            write_meter(meter_path, meter_wh)
            journal.checkpoint(sid, meter_wh, time.time())
        # Relay open: the reading is final.
        record = journal.stop_session(sid, stop_wh=meter_wh, stop_time_s=time.time(), reason="ev-stop")
        log("stopped", sid, meter_wh)
        journal.store_receipt(sid, make_receipt(record), deliver_to=RECEIPT_TOPIC)
        key = f"status:{sid}"
        journal.enqueue("status", json.dumps({"session": sid, "state": "finished"}).encode(), key=key)
        log("enqueued", key)
        if rng.random() < 0.3:
            # A repeated enqueue of the same logical message must not duplicate it.
            journal.enqueue("status", b"again", key=key)
        for message in journal.due(time.time(), limit=5):
            log("delivered", message.key)
            if rng.random() < 0.8:
                journal.ack(message.id)
            else:
                journal.retry(message.id, time.time())


def main(argv) -> int:
    journal_path, meter_path, events_path, seed, run_index, mode = argv
    if mode == "recover":
        recover(journal_path, meter_path).close()
        return 0
    run(journal_path, meter_path, events_path, int(seed), int(run_index))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
