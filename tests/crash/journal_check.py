"""Inspect a journal file left behind by a killed process and check what must always hold.

Used by the journal's own crash test and meant for the same check against the whole agent:
kill the process, ``snapshot(path)`` the file (or a copy of it), then call the ``check_*``
functions that apply. Each raises ``InvariantViolation`` naming the session or message.
The snapshot reads the file with plain ``sqlite3`` rather than through ``Journal`` so that a
fault in the journal code cannot hide itself from its own check.
"""
from __future__ import annotations

import shutil
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path


class InvariantViolation(AssertionError):
    pass


@dataclass
class Snapshot:
    path: str
    integrity: list[str]
    schema_version: int
    sessions: list[dict]            # in start order (seq)
    receipts: dict[str, bytes]      # session_id -> receipt
    outbox: list[dict]
    checkpoints: dict[str, list[tuple[float, float]]] = field(default_factory=dict)

    @property
    def by_id(self) -> dict[str, dict]:
        return {s["session_id"]: s for s in self.sessions}

    def open_sessions(self) -> list[dict]:
        return [s for s in self.sessions if s["stop_wh"] is None]


def copy_journal(src, dst_dir) -> Path:
    """Copy the database and its WAL exactly as a power cut would leave them on disk."""
    src = Path(src)
    dst_dir = Path(dst_dir)
    dst_dir.mkdir(parents=True, exist_ok=True)
    dst = dst_dir / src.name
    for suffix in ("", "-wal"):
        target = Path(str(dst) + suffix)
        if target.exists():
            target.unlink()
        source = Path(str(src) + suffix)
        if source.exists():
            shutil.copyfile(source, target)
    return dst


def snapshot(path) -> Snapshot:
    """Read everything the invariants need. Opening replays the WAL, as the next boot would."""
    conn = sqlite3.connect(f"file:{path}?mode=rw", uri=True, isolation_level=None)
    try:
        conn.execute("PRAGMA locking_mode=EXCLUSIVE")
        integrity = [r[0] for r in conn.execute("PRAGMA integrity_check")]
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        tables = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}
        if not {"sessions", "receipts", "outbox", "checkpoints"} <= tables:
            # Killed before the schema transaction committed: an empty journal.
            return Snapshot(str(path), integrity, version, [], {}, [])
        columns = ("session_id", "seq", "connector_id", "start_wh", "start_time_s", "stop_wh",
                   "stop_time_s", "stop_reason", "meter_serial")
        sessions = [dict(zip(columns, r, strict=True)) for r in conn.execute(
            f"SELECT {', '.join(columns)} FROM sessions ORDER BY seq")]
        receipts = {r[0]: bytes(r[1]) for r in conn.execute("SELECT session_id, receipt FROM receipts")}
        out_cols = ("id", "topic", "payload", "dedup_key", "attempts", "acked_s")
        outbox = [dict(zip(out_cols, r, strict=True)) for r in conn.execute(
            f"SELECT {', '.join(out_cols)} FROM outbox ORDER BY id")]
        checkpoints: dict[str, list] = {}
        for session_id, time_s, energy_wh in conn.execute(
                "SELECT session_id, time_s, energy_wh FROM checkpoints ORDER BY session_id, time_s"):
            checkpoints.setdefault(session_id, []).append((time_s, energy_wh))
        return Snapshot(str(path), integrity, version, sessions, receipts, outbox, checkpoints)
    finally:
        conn.close()


def check_structure(snap: Snapshot) -> None:
    """What holds at every instant, crashed or not."""
    if snap.integrity != ["ok"]:
        raise InvariantViolation(f"{snap.path}: integrity_check says {snap.integrity}")
    ids = [s["session_id"] for s in snap.sessions]
    if len(ids) != len(set(ids)):
        raise InvariantViolation(f"{snap.path}: duplicated session ids")
    by_id = snap.by_id
    for s in snap.sessions:
        sid = s["session_id"]
        if s["stop_wh"] is not None:
            if s["stop_wh"] < s["start_wh"]:
                raise InvariantViolation(f"session {sid}: stop {s['stop_wh']} Wh below start {s['start_wh']} Wh")
            if s["stop_time_s"] is None or s["stop_reason"] is None:
                raise InvariantViolation(f"session {sid}: stopped without time or reason")
        previous_wh = s["start_wh"]
        for time_s, energy_wh in snap.checkpoints.get(sid, []):
            if energy_wh < previous_wh:
                raise InvariantViolation(f"session {sid}: checkpoint {energy_wh} Wh at {time_s} goes backwards")
            previous_wh = energy_wh
        if s["stop_wh"] is not None and s["stop_wh"] < previous_wh and not s["stop_reason"].startswith("recovered-"):
            raise InvariantViolation(f"session {sid}: stop {s['stop_wh']} Wh below its last checkpoint {previous_wh} Wh")
    for sid in snap.receipts:
        if sid not in by_id:
            raise InvariantViolation(f"receipt for unknown session {sid}")
        if by_id[sid]["stop_wh"] is None:
            raise InvariantViolation(f"receipt for session {sid} that is still open")
    keys = [m["dedup_key"] for m in snap.outbox if m["dedup_key"] is not None]
    if len(keys) != len(set(keys)):
        dupes = sorted({k for k in keys if keys.count(k) > 1})
        raise InvariantViolation(f"outbox holds the same key more than once: {dupes[:5]}")


def check_recovered(snap: Snapshot, *, receipt_topic: str | None = None) -> None:
    """After ``reconcile``: nothing open, every session has exactly one receipt (and its delivery)."""
    check_structure(snap)
    still_open = [s["session_id"] for s in snap.open_sessions()]
    if still_open:
        raise InvariantViolation(f"sessions left open after reconcile: {still_open[:5]}")
    missing = [s["session_id"] for s in snap.sessions if s["session_id"] not in snap.receipts]
    if missing:
        raise InvariantViolation(f"closed sessions without a receipt: {missing[:5]}")
    if receipt_topic is not None:
        queued = {m["dedup_key"] for m in snap.outbox if m["topic"] == receipt_topic}
        unqueued = [sid for sid in snap.receipts if f"receipt:{sid}" not in queued]
        if unqueued:
            raise InvariantViolation(f"receipts stored but never queued for delivery: {unqueued[:5]}")


def check_meter_chain(snap: Snapshot, *, initial_wh, final_wh) -> None:
    """For a meter that advances only while a session holds the relay closed: each session
    starts where the previous one stopped, the first at ``initial_wh`` and the last (after
    reconcile) at ``final_wh``. This catches a lost session (a gap), a duplicated one (an
    overlap), and any invented or dropped energy: the billed sum equals the meter's advance."""
    expected_wh = initial_wh
    for s in snap.sessions:
        if s["start_wh"] != expected_wh:
            raise InvariantViolation(
                f"session {s['session_id']} starts at {s['start_wh']} Wh but the meter read {expected_wh} Wh then")
        if s["stop_wh"] is None:
            raise InvariantViolation(f"session {s['session_id']} is still open")
        expected_wh = s["stop_wh"]
    if expected_wh != final_wh:
        raise InvariantViolation(f"sessions account for the meter up to {expected_wh} Wh, but it reads {final_wh} Wh")
    billed = sum(s["stop_wh"] - s["start_wh"] for s in snap.sessions)
    if billed != final_wh - initial_wh:
        raise InvariantViolation(f"billed {billed} Wh, meter advanced {final_wh - initial_wh} Wh")


def check_against_log(snap: Snapshot, events: list[tuple[str, ...]]) -> None:
    """Compare with what the process reported *after* each call returned: a durable write
    must be there. Events: ("started", sid, wh), ("stopped", sid, wh), ("enqueued", key),
    ("delivered", key)."""
    by_id = snap.by_id
    outbox_by_key = {m["dedup_key"]: m for m in snap.outbox if m["dedup_key"] is not None}
    delivered = {e[1] for e in events if e[0] == "delivered"}
    for event in events:
        kind = event[0]
        if kind == "started":
            sid, wh = event[1], float(event[2])
            if sid not in by_id:
                raise InvariantViolation(f"session {sid} was started (call returned) but is not in the journal")
            if by_id[sid]["start_wh"] != wh:
                raise InvariantViolation(f"session {sid} start {by_id[sid]['start_wh']} Wh, reported {wh} Wh")
        elif kind == "stopped":
            sid, wh = event[1], float(event[2])
            row = by_id.get(sid)
            if row is None or row["stop_wh"] != wh or row["stop_reason"].startswith("recovered"):
                raise InvariantViolation(f"session {sid} was stopped at {wh} Wh (call returned) but the journal has {row}")
        elif kind == "enqueued":
            if event[1] not in outbox_by_key:
                raise InvariantViolation(f"outbox message {event[1]} was enqueued (call returned) but is gone")
    for key, message in outbox_by_key.items():
        if message["acked_s"] is not None and key not in delivered:
            raise InvariantViolation(f"outbox message {key} is acked but was never delivered")


def read_events(path) -> list[tuple[str, ...]]:
    """Event lines written by the process; a line cut short by the kill is ignored."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return []
    lines = text.split("\n")
    return [tuple(line.split()) for line in lines[:-1] if line]
