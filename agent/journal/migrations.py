"""The journal's format versions and the steps between them, in both directions.

Every step that changes the versioned schema has an ``up`` (version ``v`` to ``v + 1``, run by
``Journal.open``) and a ``down`` (``v + 1`` back to ``v``). The down step exists for one case:
an upgrade that ran for a while and is then rolled back by hand (``urja upgrade rollback``).
The newer release, which knows both formats, carries the file back before the older release
starts, so the sessions and receipts recorded meanwhile are kept; the older release refuses a
file newer than it knows. A rollback during an upgrade's health check restores the copy taken
before the switch instead (nothing was recorded in between).

A step must keep every session, checkpoint, receipt and outbox message in both directions;
``tests/test_journal_migrations.py`` round-trips a populated file through every step.
"""
from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from agent import sqlite as db
from agent.journal.errors import SchemaError, StorageError


@dataclass(frozen=True)
class Step:
    """From ``version`` to ``version + 1`` (``up``) and back (``down``)."""

    version: int
    why: str
    up: Callable[[sqlite3.Connection], None]
    down: Callable[[sqlite3.Connection], None]


def _receipts_by_time_up(conn: sqlite3.Connection) -> None:
    conn.execute("CREATE INDEX IF NOT EXISTS receipts_created ON receipts(created_s)")


def _receipts_by_time_down(conn: sqlite3.Connection) -> None:
    conn.execute("DROP INDEX IF EXISTS receipts_created")


STEPS: tuple[Step, ...] = (
    Step(1, "receipts indexed by time: a support bundle and CDR date filters read the recent ones without a scan",
         _receipts_by_time_up, _receipts_by_time_down),
)

# The format this code writes: one past the last step.
CURRENT_VERSION = 1 + len(STEPS)


def up_steps() -> dict[int, Callable[[sqlite3.Connection], None]]:
    return {step.version: step.up for step in STEPS}


def migrate_file(path: str | Path, *, to_version: int, busy_timeout_s: float = 1.0) -> tuple[int, int]:
    """Carry a journal file to ``to_version``, up or down, in one transaction; (from, to).

    Refused (the file untouched) while an agent holds the journal, for a version this code
    does not know, or for a file newer than this code.
    """
    path = Path(path)
    if not 1 <= to_version <= CURRENT_VERSION:
        raise SchemaError(f"journal {path}: no format version {to_version}; this agent knows 1 to {CURRENT_VERSION}",
                          path=str(path), version=to_version, supported=CURRENT_VERSION)
    if not path.exists():
        raise StorageError(f"journal {path} does not exist", path=str(path))
    conn = db.connect(path, timeout_s=busy_timeout_s)
    try:
        with db.write_transaction(conn):
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            if not 1 <= version <= CURRENT_VERSION:
                raise SchemaError(f"journal {path} has format version {version}; this agent knows 1 to "
                                  f"{CURRENT_VERSION}", path=str(path), version=version, supported=CURRENT_VERSION)
            steps = {step.version: step for step in STEPS}
            at = version
            while at < to_version:
                steps[at].up(conn)
                at += 1
            while at > to_version:
                steps[at - 1].down(conn)
                at -= 1
            conn.execute(f"PRAGMA user_version={at}")
        return version, at
    except sqlite3.OperationalError as exc:
        if "locked" in str(exc):
            raise StorageError(f"journal {path} is held by another process (stop the agent first)",
                               path=str(path)) from None
        raise StorageError(f"journal {path}: {exc}", path=str(path)) from None
    finally:
        conn.close()
