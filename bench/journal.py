"""Journal benchmark: sustained durable checkpoints, flash wear per charging hour, boot recovery.

Figures are taken on the file system that holds ``out_dir`` (a real disk, not tmpfs, so every
fsync is paid). Wear is measured four ways because none is complete alone: bytes handed to
``write``/``pwrite`` (``/proc/self/io`` ``wchar``), bytes the block layer saw (``write_bytes``,
zero on some file systems), growth of the database and WAL files, and the number of commits
and fsyncs (fsyncs counted by ``strace -c`` in a child process when ``strace`` works).
"""
from __future__ import annotations

import json
import os
import platform
import shutil
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from agent.journal import PAGE_SIZE, CheckpointPolicy, Journal  # noqa: E402

POWER_W = 7_400.0
HOUR_S = 3_600
AUTH = {"source": "local", "token": "bench"}


class _Clock:
    def __init__(self, now_s=0.0):
        self.now_s = now_s

    def __call__(self):
        return self.now_s


def _io() -> dict:
    try:
        text = Path("/proc/self/io").read_text()
    except OSError:
        return {}
    return {k: int(v) for k, v in (line.split(": ") for line in text.splitlines())}


def _sizes(db: Path) -> int:
    return sum(Path(str(db) + s).stat().st_size for s in ("", "-wal") if Path(str(db) + s).exists())


def _fs_type(path: Path) -> str:
    best, kind = "", "unknown"
    target = str(path.resolve())
    try:
        for line in Path("/proc/mounts").read_text().splitlines():
            parts = line.split()
            mount, fstype = parts[1], parts[2]
            if (target == mount or target.startswith(mount.rstrip("/") + "/")) and len(mount) >= len(best):
                best, kind = mount, fstype
    except OSError:
        pass
    return kind


def charging_hour(workdir: Path, policy: CheckpointPolicy | None = None, *, exclusive: bool = True) -> dict:
    """One hour of 1 Hz readings at 7.4 kW through the default policy, then stop and receipt."""
    db = workdir / ("hour.db" if exclusive else "hour-shared.db")
    clock = _Clock(0.0)
    j = Journal.open(db, clock=clock, policy=policy or CheckpointPolicy(), exclusive=exclusive)
    base_size = _sizes(db)
    io0 = _io()
    commits0 = j.commits
    j.start_session("hour", connector_id=1, auth=AUTH, start_wh=1_000_000, start_time_s=0.0,
                    meter_serial="EM-1", tariff_id="t")
    written = 0
    energy_wh = 1_000_000.0
    for t in range(1, HOUR_S + 1):
        clock.now_s = float(t)
        energy_wh = 1_000_000 + round(POWER_W * t / 3_600, 1)
        written += j.checkpoint("hour", energy_wh, float(t))
    record = j.stop_session("hour", stop_wh=energy_wh, stop_time_s=float(HOUR_S), reason="ev-stop")
    j.store_receipt("hour", json.dumps({"energy_wh": record.energy_wh}).encode() * 8, deliver_to="receipts")
    [msg] = j.due(float(HOUR_S))
    j.ack(msg.id)
    io1 = _io()
    grown = _sizes(db) - base_size
    commits = j.commits - commits0
    j.wal_checkpoint()  # what the next automatic WAL checkpoint will add, amortised over ~16 h
    io2 = _io()
    j.close()
    return {
        "checkpoints_written": written,
        "commits": commits,
        "wchar_bytes": io1.get("wchar", 0) - io0.get("wchar", 0),
        "block_write_bytes": io1.get("write_bytes", 0) - io0.get("write_bytes", 0),
        "db_wal_growth_bytes": grown,
        "wal_fold_wchar_bytes": io2.get("wchar", 0) - io1.get("wchar", 0),
        "energy_wh": record.energy_wh,
    }


def _fsyncs_per_hour(workdir: Path) -> dict | None:
    """Count fsync-family calls of the charging hour in a child process under ``strace -c``."""
    strace = shutil.which("strace")
    if strace is None:
        return None
    out = workdir / "strace.txt"
    cmd = [strace, "-f", "-qq", "-c", "-e", "trace=fsync,fdatasync,pwrite64,write", "-o", str(out),
           sys.executable, str(Path(__file__).resolve()), "--hour", str(workdir / "strace")]
    (workdir / "strace").mkdir(exist_ok=True)
    try:
        subprocess.run(cmd, check=True, capture_output=True, timeout=300)
    except (subprocess.SubprocessError, OSError):
        return None
    calls = {}
    for line in out.read_text().splitlines():
        parts = line.split()
        if parts and parts[-1] in ("fsync", "fdatasync", "pwrite64", "write") and len(parts) >= 5:
            calls[parts[-1]] = int(parts[3])
    return calls


def checkpoint_rate(workdir: Path, count: int = 300) -> dict:
    """Forced (policy-bypassing) durable checkpoints back to back: the fsync-bound ceiling."""
    db = workdir / "rate.db"
    clock = _Clock(0.0)
    j = Journal.open(db, clock=clock)
    j.start_session("rate", connector_id=1, auth=AUTH, start_wh=0, start_time_s=0.0, meter_serial="EM-1")
    latencies_s = []
    started = time.perf_counter()
    for n in range(1, count + 1):
        t0 = time.perf_counter()
        j.checkpoint("rate", n, float(n), force=True)
        latencies_s.append(time.perf_counter() - t0)
    total_s = time.perf_counter() - started
    j.close()
    latencies_s.sort()
    return {
        "count": count,
        "per_second": round(count / total_s, 1),
        "median_ms": round(statistics.median(latencies_s) * 1e3, 3),
        "p95_ms": round(latencies_s[int(0.95 * (count - 1))] * 1e3, 3),
    }


def _build_sessions(db: Path, *, sessions: int, open_every: int) -> int:
    """A journal with many finished sessions (each with checkpoints and a receipt) and some open."""
    clock = _Clock(0.0)
    j = Journal.open(db, clock=clock)
    j.close()
    # Bulk-built through SQL in one transaction; the per-call path is what the other figures measure.
    conn = sqlite3.connect(db, isolation_level=None)
    conn.execute("BEGIN")
    left_open = 0
    for n in range(sessions):
        sid = f"s{n:05d}"
        start_wh, stop_wh = n * 10_000, n * 10_000 + 7_400
        is_open = open_every and n % open_every == open_every - 1
        conn.execute(
            """INSERT INTO sessions (session_id, seq, connector_id, auth_json, tariff_id, meter_serial, start_wh,
               start_time_s, stop_wh, stop_time_s, stop_reason) VALUES (?, ?, 1, ?, 't', 'EM-1', ?, ?, ?, ?, ?)""",
            (sid, n + 1, json.dumps(AUTH), start_wh, n * 4_000.0, None if is_open else stop_wh,
             None if is_open else n * 4_000.0 + 3_600, None if is_open else "ev-stop"))
        for k in range(1, 61):
            conn.execute("INSERT INTO checkpoints VALUES (?, ?, ?)", (sid, n * 4_000.0 + k * 60, start_wh + k * 123))
        if is_open:
            left_open += 1
        else:
            conn.execute("INSERT INTO receipts VALUES (?, ?, ?)", (sid, b"r" * 600, n * 4_000.0 + 3_600))
            conn.execute("INSERT INTO outbox (topic, payload, dedup_key, created_s, next_attempt_s, acked_s) "
                         "VALUES ('receipts', ?, ?, 0, 0, 1)", (b"r" * 600, f"receipt:{sid}"))
    conn.execute("COMMIT")
    conn.close()
    return left_open


def recovery_time(workdir: Path, *, sessions: int = 1_000, open_every: int, trials: int = 5) -> dict:
    """Boot on a journal of ``sessions`` sessions: open, reconcile, issue the missing receipts."""
    template = workdir / f"template-{open_every}.db"
    left_open = _build_sessions(template, sessions=sessions, open_every=open_every)
    times_s = []
    for trial in range(trials):
        db = workdir / f"boot-{open_every}-{trial}.db"
        shutil.copyfile(template, db)
        t0 = time.perf_counter()
        j = Journal.open(db, clock=lambda: 1e9)
        closed = j.reconcile(99_999_999, 1e9, make_receipt=lambda r: json.dumps({"s": r.session_id,
                                                                               "wh": r.energy_wh}),
                             receipt_topic="receipts")
        j.close()
        times_s.append(time.perf_counter() - t0)
        assert len(closed) == left_open
    return {"sessions": sessions, "open_at_boot": left_open,
            "median_ms": round(statistics.median(times_s) * 1e3, 1),
            "max_ms": round(max(times_s) * 1e3, 1), "trials": trials}


def main(out_dir: Path) -> dict:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    work = Path(tempfile.mkdtemp(prefix="journal-bench-", dir=out_dir))
    try:
        hour = charging_hour(work)
        fsyncs = _fsyncs_per_hour(work)
        rate = checkpoint_rate(work)
        recovery = {
            "one_open": recovery_time(work, open_every=1_000),
            "ten_open": recovery_time(work, open_every=100),
            "all_open": recovery_time(work, open_every=1, trials=3),
        }
        result = {
            "area": "journal",
            "machine": {"platform": platform.platform(), "cpus": os.cpu_count(), "python": platform.python_version(),
                        "sqlite": sqlite3.sqlite_version, "file_system": _fs_type(work)},
            "settings": {"journal_mode": "wal", "synchronous": "FULL", "locking_mode": "EXCLUSIVE",
                         "page_size": PAGE_SIZE, "policy": CheckpointPolicy().__dict__},
            "charging_hour_7kw4": {**hour, "syscalls": fsyncs,
                                   "target_bytes": 500_000,
                                   "within_target": max(hour["wchar_bytes"], hour["db_wal_growth_bytes"],
                                                        hour["block_write_bytes"]) < 500_000},
            "checkpoint_rate_forced": rate,
            "recovery_1000_sessions": recovery,
            "method": ("charging hour: 3600 readings at 1 Hz, 7.4 kW, injected clock, default policy, plus stop, "
                       "receipt with queued delivery and ack; bytes from /proc/self/io and file growth; fsyncs by "
                       "strace -c on the same run in a child (whole process: includes opening and one WAL fold). Rate: 300 forced checkpoints back to back. Recovery: "
                       "1000 sessions with 60 checkpoints each (bulk-built), median of trials of open + reconcile "
                       "(close + receipt + queued delivery for each open session)."),
        }
    finally:
        shutil.rmtree(work, ignore_errors=True)
    (out_dir / "journal.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    if len(sys.argv) == 3 and sys.argv[1] == "--hour":
        print(json.dumps(charging_hour(Path(sys.argv[2]))))
    else:
        print(json.dumps(main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("bench/results")), indent=2))
