"""The ``Journal`` itself: opening the file, its one write transaction, and housekeeping.

The calls are grouped by what they keep (sessions, receipts, outbox, orders) in mixins beside
this module; this class owns what they share: the connection, the clock, the checkpoint policy,
the last-checkpoint cache of open sessions, and ``_write``, the only way any of them writes.
"""
from __future__ import annotations

import logging
import sqlite3
import time
from typing import Callable

from agent import sqlite as db
from agent.journal.clock_holds import JournalClockHolds
from agent.journal.errors import JournalError, JournalHeld, StorageError
from agent.journal.orders import JournalOrders
from agent.journal.outbox import JournalOutbox
from agent.journal.receipts import JournalReceipts
from agent.journal.records import CheckpointPolicy
from agent.journal.reserve import RESERVE_BYTES, SpaceReserve, disk_full
from agent.journal.schema import configure, migrate
from agent.journal.sessions import JournalSessions
from agent.journal.values import require_number

log = logging.getLogger("urja.journal")


class Journal(db.SqliteFile, JournalSessions, JournalReceipts, JournalOutbox, JournalOrders, JournalClockHolds):
    """One open journal file. Construct with ``Journal.open``."""

    def __init__(self, conn: sqlite3.Connection, *, path, clock, policy: CheckpointPolicy):
        db.SqliteFile.__init__(self, conn, str(path))
        self._clock = clock
        self.policy = policy
        # Last written checkpoint per open session, so the policy is decided without a read.
        self._last: dict[str, tuple[float, float]] = {}
        # Counters for benchmarks and diagnostics: committed write transactions.
        self.commits = 0
        # Room kept for a full disk (``agent.journal.reserve``) and who is told when it is used.
        self.reserve: SpaceReserve | None = None
        self.space_listeners: list[Callable[[str], None]] = []
        self._load_open_sessions()

    # ----------------------------------------------------------------- opening

    @classmethod
    def open(cls, path, *, clock: Callable[[], float] = time.time, policy: CheckpointPolicy | None = None,
             exclusive: bool = True, busy_timeout_s: float = 1.0,
             migrations: dict[int, Callable[[sqlite3.Connection], None]] | None = None) -> "Journal":
        """Open or create the journal at ``path``.

        ``migrations`` maps a schema version ``v`` to a function that upgrades a file from
        ``v`` to ``v + 1`` inside the opening transaction; it extends the built-in ones, so a
        later release can carry files forward without losing sessions. A file newer than
        this code is refused rather than guessed at. A journal held by another process is
        refused after ``busy_timeout_s``: two agents must never drive one charger.
        """
        try:
            conn = db.connect(path, timeout_s=busy_timeout_s)
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open journal {path}: {exc}", path=str(path)) from exc

        def setup(conn):
            configure(conn, path, exclusive=exclusive)
            migrate(conn, path, migrations or {})

        def unusable(exc):
            if "locked" in str(exc):
                return JournalHeld(f"journal {path} is held by another process (is an agent already running?)",
                                    path=str(path))
            return StorageError(f"journal {path} is not usable: {exc}", path=str(path))

        db.set_up(conn, setup, unusable=unusable)
        return cls(conn, path=path, clock=clock, policy=policy or CheckpointPolicy())

    @property
    def schema_version(self) -> int:
        return self._db().execute("PRAGMA user_version").fetchone()[0]

    # ------------------------------------------------------------ transactions

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise JournalError(f"journal {self.path} is closed", code="journal-closed")
        return self._conn

    def keep_reserve(self, size_bytes: int = RESERVE_BYTES) -> None:
        """Keep ``size_bytes`` beside the journal for the writes a full disk would refuse."""
        self.reserve = SpaceReserve.open(f"{self.path}.reserve", size_bytes)

    def _write(self, work):
        """Run ``work(conn)`` in one durable transaction; nothing is half-written on error.

        A write refused for want of space is tried once more on the reserve's room, and the
        space listeners are told: the disk is full, the journal lives on its reserve."""
        try:
            return self._write_once(work)
        except StorageError as exc:
            if self.reserve is None or not disk_full(exc) or not self.reserve.release():
                raise
            log.critical("journal %s: the file system is full; the %d KiB kept for this are released so the "
                         "session in progress can end with its receipt", self.path, self.reserve.size_bytes // 1024)
            for listener in list(self.space_listeners):
                listener(str(exc))
            return self._write_once(work)

    def _write_once(self, work):
        result = db.write(
            self._db(), work,
            begin_failed=lambda exc: StorageError(f"journal {self.path}: cannot begin a write: {exc}",
                                                  path=self.path),
            failed=lambda exc: StorageError(f"journal {self.path}: write failed: {exc}", path=self.path))
        self.commits += 1
        return result

    # ------------------------------------------------------------- housekeeping

    def prune(self, *, before_s: float) -> dict:
        """Forget what is finished and older than ``before_s``: acked messages and the
        checkpoints of sessions that have receipts. Sessions and receipts are kept (they are
        the billing record); returns counts removed."""
        require_number("before_s", before_s)

        def work(conn):
            messages = conn.execute("DELETE FROM outbox WHERE acked_s IS NOT NULL AND acked_s < ?",
                                    (before_s,)).rowcount
            checkpoints = conn.execute(
                """DELETE FROM checkpoints WHERE session_id IN (
                       SELECT s.session_id FROM sessions s JOIN receipts r USING (session_id)
                       WHERE s.stop_time_s < ?)""", (before_s,)).rowcount
            return {"messages": messages, "checkpoints": checkpoints}

        return self._write(work)

    def wal_checkpoint(self) -> None:
        """Fold the WAL into the database now (e.g. before a planned shutdown)."""
        self._db().execute("PRAGMA wal_checkpoint(TRUNCATE)")

    def integrity_check(self) -> list[str]:
        return [r[0] for r in self._db().execute("PRAGMA integrity_check")]
