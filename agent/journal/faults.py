"""Latched safety faults, in a small SQLite file of their own beside the journal.

A latch must outlive a power cut and be cleared only by a local reset, and that reset
(``urja fault reset``) must work while the agent runs; the journal is opened exclusively, so the
latch cannot live in it (``agent.journal``'s contract, point 8).
"""
from __future__ import annotations

import sqlite3
from dataclasses import dataclass
from pathlib import Path

from agent import sqlite as db
from agent.journal.errors import InvalidValue, JournalError, StorageError
from agent.journal.slot import LatchSlot, SlotFault
from agent.journal.values import as_text, require_number, require_text

_FAULT_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS latched_faults (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        code TEXT NOT NULL,
        detail TEXT NOT NULL,
        latched_s REAL NOT NULL,
        cleared_s REAL,
        cleared_by TEXT,
        CHECK ((cleared_s IS NULL) = (cleared_by IS NULL))
    )""",
    "CREATE INDEX IF NOT EXISTS latched_faults_open ON latched_faults(id) WHERE cleared_s IS NULL",
)


def fault_store_path(journal_path) -> Path:
    """Where the latched faults of the journal at ``journal_path`` live: ``NAME.faults.sqlite`` beside it."""
    path = Path(journal_path)
    return path.with_name(path.stem + ".faults.sqlite")


@dataclass(frozen=True)
class LatchedFault:
    id: int
    code: str
    detail: str
    latched_s: float
    cleared_s: float | None
    cleared_by: str | None

    @property
    def is_latched(self) -> bool:
        return self.cleared_s is None


class FaultStore(db.SqliteFile):
    """Latched safety faults and their clearing, in a file shared by the agent and ``urja fault``.

    Why a file of its own: the journal is held exclusively by the running agent, but a
    technician's local reset must reach the latch whether the agent runs or not. WAL with
    normal locking lets the command write while the agent holds its own connection; every
    write is one short ``BEGIN IMMEDIATE`` transaction fsynced before it returns, and rows are
    never deleted (faults are rare; the history tells a technician what happened).
    """

    @classmethod
    def open(cls, path, *, busy_timeout_s: float = 2.0) -> "FaultStore":
        path = str(path)
        try:
            conn = db.connect(path, timeout_s=busy_timeout_s, make_parent=True)
        except (OSError, sqlite3.Error) as exc:
            raise StorageError(f"cannot open the fault latch file {path}: {exc}", path=path) from exc

        def refused(mode):
            return StorageError(f"fault latch file {path}: the file system refused WAL mode (got {mode!r})",
                                path=path)

        def setup(conn):
            db.use_wal(conn, wal_refused=None if path == db.MEMORY else refused)
            db.write(conn, lambda c: db.execute_all(c, _FAULT_SCHEMA))

        db.set_up(conn, setup, unusable=lambda exc: StorageError(f"fault latch file {path} is not usable: {exc}",
                                                                 path=path))
        store = cls(conn, path)
        store._slot = None if path == db.MEMORY else LatchSlot.open(path + ".slot")
        return store

    _slot: LatchSlot | None = None
    SLOT_ID = 0  # the id of the fault kept in the slot (SQLite ids start at 1)

    def _slot_fault(self) -> LatchedFault | None:
        held = self._slot.read() if self._slot is not None else None
        if held is None:
            return None
        return LatchedFault(id=self.SLOT_ID, code=held.code, detail=held.detail, latched_s=held.latched_s,
                            cleared_s=held.cleared_s, cleared_by=held.cleared_by)

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise JournalError(f"fault latch file {self.path} is closed", code="journal-closed")
        return self._conn

    def _write(self, work):
        return db.write(self._db(), work, failed=lambda exc: StorageError(
            f"fault latch file {self.path}: write failed: {exc}", path=self.path))

    def _read(self, sql: str, params=()) -> list:
        try:
            return self._db().execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise StorageError(f"fault latch file {self.path}: read failed: {exc}", path=self.path) from exc

    @staticmethod
    def _row(row) -> LatchedFault:
        return LatchedFault(id=row[0], code=as_text(row[1]), detail=as_text(row[2]), latched_s=row[3],
                            cleared_s=row[4], cleared_by=None if row[5] is None else as_text(row[5]))

    _COLUMNS = "id, code, detail, latched_s, cleared_s, cleared_by"

    def latched(self) -> LatchedFault | None:
        """The newest fault not cleared yet, or None (one the disk had no room for counts too)."""
        held = self._slot_fault()
        if held is not None and held.is_latched:
            return held
        rows = self._read(f"SELECT {self._COLUMNS} FROM latched_faults WHERE cleared_s IS NULL "
                          "ORDER BY id DESC LIMIT 1")
        return self._row(rows[0]) if rows else None

    def fault(self, fault_id: int) -> LatchedFault | None:
        """One recorded fault by id, cleared or not (one indexed row: cheap enough to poll)."""
        if fault_id == self.SLOT_ID:
            return self._slot_fault()
        rows = self._read(f"SELECT {self._COLUMNS} FROM latched_faults WHERE id = ?", (fault_id,))
        return self._row(rows[0]) if rows else None

    def history(self, limit: int = 10) -> list[LatchedFault]:
        """The newest ``limit`` faults, newest first."""
        rows = self._read(f"SELECT {self._COLUMNS} FROM latched_faults ORDER BY id DESC LIMIT ?", (int(limit),))
        return [self._row(r) for r in rows]

    def latch(self, code: str, detail: str, time_s: float) -> LatchedFault:
        """Record a latched fault; durable on return.

        Idempotent: while a fault with the same code is recorded and not cleared, that record
        is returned and nothing is written (a fault re-latched at boot is not a new fault).
        """
        require_text("code", code)
        if not isinstance(detail, str):
            raise InvalidValue(f"detail must be a string, got {detail!r}", field="detail", value=detail)
        require_number("time_s", time_s)

        def work(conn):
            row = conn.execute(f"SELECT {self._COLUMNS} FROM latched_faults WHERE cleared_s IS NULL AND code = ? "
                               "ORDER BY id DESC LIMIT 1", (code,)).fetchone()
            if row is not None:
                return self._row(row)
            cur = conn.execute("INSERT INTO latched_faults (code, detail, latched_s) VALUES (?, ?, ?)",
                               (code, detail, float(time_s)))
            return LatchedFault(id=cur.lastrowid, code=code, detail=detail, latched_s=float(time_s),
                                cleared_s=None, cleared_by=None)

        try:
            return self._write(work)
        except StorageError as exc:
            # A full disk (or a failing one): the latch goes to the slot whose space was taken at
            # boot, so it still outlives a restart. Only if that fails too does the error stand.
            if self._slot is None:
                raise
            try:
                self._slot.write(SlotFault(code=code, detail=detail, latched_s=float(time_s)))
            except OSError:
                raise exc from None
            return LatchedFault(id=self.SLOT_ID, code=code, detail=detail, latched_s=float(time_s),
                                cleared_s=None, cleared_by=None)

    def clear(self, time_s: float, *, by: str) -> list[LatchedFault]:
        """Mark every uncleared fault cleared (durable on return); returns what was cleared.

        Only a local reset may call this: the agent after its gate cleared, or ``urja fault
        reset`` at the charger. Nothing on the network reaches it.
        """
        require_number("time_s", time_s)
        require_text("by", by)
        held = self._slot_fault()
        cleared = []
        if held is not None and held.is_latched:
            self._slot.write(SlotFault(code=held.code, detail=held.detail, latched_s=held.latched_s,
                                       cleared_s=float(time_s), cleared_by=by))
            cleared.append(LatchedFault(id=self.SLOT_ID, code=held.code, detail=held.detail,
                                        latched_s=held.latched_s, cleared_s=float(time_s), cleared_by=by))

        def work(conn):
            rows = conn.execute(f"SELECT {self._COLUMNS} FROM latched_faults WHERE cleared_s IS NULL "
                                "ORDER BY id").fetchall()
            conn.execute("UPDATE latched_faults SET cleared_s = ?, cleared_by = ? WHERE cleared_s IS NULL",
                         (float(time_s), by))
            return [LatchedFault(id=r[0], code=as_text(r[1]), detail=as_text(r[2]), latched_s=r[3],
                                 cleared_s=float(time_s), cleared_by=by) for r in rows]

        return cleared + self._write(work)

    def close(self) -> None:
        try:
            super().close()
        finally:
            if self._slot is not None:
                self._slot.close()
                self._slot = None

