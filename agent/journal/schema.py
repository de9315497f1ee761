"""The journal file's layout: page size and WAL pragmas, tables, and schema migrations.

A file newer than this code is refused rather than guessed at; tables that older code can
ignore are added with ``CREATE TABLE IF NOT EXISTS`` at every open, without a version bump, so
going back to the release before keeps every session (``agent.journal``'s docstring).
"""
from __future__ import annotations

import sqlite3

from agent import sqlite as db
from agent.journal.errors import SchemaError, StorageError
from agent.journal.migrations import CURRENT_VERSION, up_steps

# Versions and the steps between them, both ways: ``agent.journal.migrations``.
SCHEMA_VERSION = CURRENT_VERSION

# 1 KiB pages, measured: a WAL frame is a page plus a 24-byte header, so with 4 KiB pages a
# one-page commit always straddles two 4 KiB file-system blocks and the kernel writes both
# (8.9 KB per checkpoint); a 1 KiB frame mostly lands inside one block (5.4 KB). Journal
# rows are small, so the deeper b-trees cost nothing noticeable.
PAGE_SIZE = 1024
# The WAL is checkpointed into the database after this many pages and then cut back to
# this size, so it neither grows without bound nor is rewritten from zero every time.
WAL_AUTOCHECKPOINT_PAGES = 1000
WAL_SIZE_LIMIT_BYTES = 1 << 20


_SCHEMA_V1 = (
    """CREATE TABLE sessions (
        session_id TEXT PRIMARY KEY,
        seq INTEGER NOT NULL UNIQUE,
        connector_id INTEGER NOT NULL,
        auth_json TEXT NOT NULL,
        tariff_id TEXT,
        meter_serial TEXT NOT NULL,
        start_wh NUMERIC NOT NULL,
        start_time_s REAL NOT NULL,
        stop_wh NUMERIC,
        stop_time_s REAL,
        stop_reason TEXT,
        CHECK ((stop_wh IS NULL) = (stop_time_s IS NULL)),
        CHECK (stop_wh IS NULL OR stop_wh >= start_wh)
    )""",
    "CREATE INDEX sessions_open ON sessions(stop_wh) WHERE stop_wh IS NULL",
    "CREATE INDEX sessions_start ON sessions(start_time_s)",
    # One b-tree keyed by session and time: a checkpoint costs one leaf page, no index page.
    """CREATE TABLE checkpoints (
        session_id TEXT NOT NULL REFERENCES sessions(session_id),
        time_s REAL NOT NULL,
        energy_wh NUMERIC NOT NULL,
        PRIMARY KEY (session_id, time_s)
    ) WITHOUT ROWID""",
    """CREATE TABLE receipts (
        session_id TEXT PRIMARY KEY REFERENCES sessions(session_id),
        receipt BLOB NOT NULL,
        created_s REAL NOT NULL
    )""",
    """CREATE TABLE outbox (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        topic TEXT NOT NULL,
        payload BLOB NOT NULL,
        dedup_key TEXT UNIQUE,
        created_s REAL NOT NULL,
        next_attempt_s REAL NOT NULL,
        attempts INTEGER NOT NULL DEFAULT 0,
        acked_s REAL
    )""",
    "CREATE INDEX outbox_due ON outbox(next_attempt_s, id) WHERE acked_s IS NULL",
)


# Added without a schema version bump (see the module docstring): older code ignores them.
# The snapshot (about 2 KB) spills into overflow pages; a rowid table keeps the row's key in a
# small index that a replacing save does not touch, and rowid order is first-saved order.
_SCHEMA_ADDITIONS = (
    # The priced detail of a finished session (cost breakdown, charging periods) as JSON,
    # written with its receipt: after a restart, or once the session has left memory, OCPI
    # sessions and CDRs then state the same cost as the signed receipt.
    """CREATE TABLE IF NOT EXISTS session_costs (
        session_id TEXT PRIMARY KEY REFERENCES sessions(session_id),
        detail TEXT NOT NULL
    )""",
    """CREATE TABLE IF NOT EXISTS orders (
        binding TEXT NOT NULL,
        tx_id TEXT NOT NULL,
        snapshot TEXT NOT NULL,
        updated_s REAL NOT NULL,
        UNIQUE (binding, tx_id)
    )""",
    # Sessions whose receipts wait for a synchronised clock (``agent.journal.clock_holds``).
    """CREATE TABLE IF NOT EXISTS clock_holds (
        session_id TEXT PRIMARY KEY REFERENCES sessions(session_id),
        boot_id TEXT NOT NULL,
        start_mono_s REAL,
        stop_mono_s REAL,
        held_s REAL NOT NULL
    )""",
)


def create_v1(conn: sqlite3.Connection) -> None:
    db.execute_all(conn, _SCHEMA_V1)


def create_additions(conn: sqlite3.Connection) -> None:
    db.execute_all(conn, _SCHEMA_ADDITIONS)


def configure(conn, path, *, exclusive):
    """The pragmas of the journal file (page size, locking, WAL, fsync, checkpointing)."""
    db.use_wal(conn, page_size=PAGE_SIZE, exclusive=exclusive, wal_refused=lambda mode: StorageError(
        f"journal {path}: the file system refused WAL mode (got {mode!r})", path=str(path)))
    conn.execute("PRAGMA foreign_keys=ON")
    conn.execute(f"PRAGMA wal_autocheckpoint={WAL_AUTOCHECKPOINT_PAGES}")
    conn.execute(f"PRAGMA journal_size_limit={WAL_SIZE_LIMIT_BYTES}")


def migrate(conn, path, extra):
    """Bring the file to the schema this code knows, in one transaction (see ``Journal.open``)."""
    steps = {0: create_v1, **up_steps()}
    steps.update(extra)
    target = max([SCHEMA_VERSION, *(v + 1 for v in extra)])
    with db.write_transaction(conn):
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > target:
            raise SchemaError(
                f"journal {path} has schema version {version}; this agent knows up to {target}",
                path=str(path), version=version, supported=target)
        while version < target:
            step = steps.get(version)
            if step is None:
                raise SchemaError(f"journal {path}: no migration from schema version {version}",
                                  path=str(path), version=version)
            step(conn)
            version += 1
            conn.execute(f"PRAGMA user_version={version}")
        create_additions(conn)
