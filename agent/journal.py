"""The charger's durable memory: sessions, meter checkpoints, receipts and the outbox.

Chargers keep this file on SD cards and eMMC that wear out and lose power without warning,
so the journal is built around two questions: what must survive a power cut at any instant,
and how few bytes can we write to guarantee it. It is CPython-only (``sqlite3``); the
portable core never imports it.

Durability contract (what the runtime must do, and what it may then rely on)
----------------------------------------------------------------------------
1. Boot: force the relay open *first*, then ``Journal.open(path)``, read the meter once and
   call ``reconcile(meter_wh_now, now_s, make_receipt=...)``. Only after it returns may any
   new session start. Every session left open by a crash is closed with that reading.
2. Start: ``start_session(...)`` returns only after the start reading (Wh, meter serial, time,
   authorization, tariff) is on stable storage (WAL + ``synchronous=FULL`` fsync). The relay
   must not close before it returns. A crash before it returns means no session and no
   energy; a crash after it means an open session that ``reconcile`` will bill.
3. During charging: feed every meter reading to ``checkpoint(...)``. It writes only when the
   policy says so (``CheckpointPolicy``); the meter's cumulative register survives power loss
   on its own, so checkpoints are evidence of progress and a fallback when the meter is
   replaced or goes backwards, not the basis of billing.
4. Stop: open the relay, read the meter, then ``stop_session(...)``. Billed energy is always
   ``stop_wh - start_wh``; it returns after the stop reading is durable.
5. Receipt: ``store_receipt(session_id, receipt)`` stores it exactly once (optionally queueing
   its delivery in the same transaction). ``reconcile`` issues any receipt that a crash
   prevented, for every closed session without one.
6. Outbox: anything that must reach the network is ``enqueue``-d (durable on return) before
   the runtime considers it sent; a sender takes ``due(now_s)``, delivers, then ``ack``-s or
   ``retry``-s. A crash between delivery and ack redelivers (at-least-once); a ``key``
   deduplicates repeated enqueues of the same logical message.
7. Network orders: a protocol binding keeps the orders it has confirmed with
   ``save_order(binding, tx_id, snapshot_json, now_s)`` (durable on return, one row per
   binding and transaction, replaced on every save), reads them back at start with
   ``orders(binding)`` and forgets one with ``delete_order(binding, tx_id)``. A buyer who paid
   and got an order id must still find that order after a power cut. The snapshot is the
   binding's own JSON object; the journal only checks that it is one. Bindings never see each
   other's rows (the MQTT and HTTP bindings answer their own transactions).

8. Latched faults: ``FaultStore`` (below) keeps them in a small file of its own beside the
   journal, ``fault_store_path(journal_path)``. A latch must outlive a power cut and be
   cleared only by a local reset, and that reset (``urja fault reset``) must work while the
   agent runs; the journal itself is opened exclusively, so the latch cannot live in it. The
   runtime records a latch (durable on return) when the safety gate latches, re-latches a
   recorded uncleared one at boot before anything can close the relay, and records the clearing.

Tables added after schema version 1 that older code can simply ignore (``orders``) are created
with ``CREATE TABLE IF NOT EXISTS`` at every open, without a version bump: a file stays
readable by the release before, so going back after a bad update keeps every session.

"Durable" means fsynced: it holds on storage that honours flush requests (industrial-grade
SD/eMMC; consumer cards that acknowledge writes from a volatile cache can still lose the last
transactions, which is why the relay ordering above, not the checkpoints, protects billing).

Only one process opens the journal at a time (``locking_mode=EXCLUSIVE`` by default): the
WAL index then lives in process memory instead of a memory-mapped ``-shm`` file that every
commit dirties and the kernel writes back to flash on its own schedule. Tools read it after
the agent stops or ask the agent. Calls are synchronous and each costs one fsync
(milliseconds on flash); the asyncio runtime calls them inline because their ordering
relative to the relay is the point.
"""
from __future__ import annotations

import json
import math
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from agent.core.errors import AgentError

SCHEMA_VERSION = 1

# 1 KiB pages, measured: a WAL frame is a page plus a 24-byte header, so with 4 KiB pages a
# one-page commit always straddles two 4 KiB file-system blocks and the kernel writes both
# (8.9 KB per checkpoint); a 1 KiB frame mostly lands inside one block (5.4 KB). Journal
# rows are small, so the deeper b-trees cost nothing noticeable.
_PAGE_SIZE = 1024
# The WAL is checkpointed into the database after this many pages and then cut back to
# this size, so it neither grows without bound nor is rewritten from zero every time.
_WAL_AUTOCHECKPOINT_PAGES = 1000
_WAL_SIZE_LIMIT_BYTES = 1 << 20


class JournalError(AgentError):
    code = "journal-error"


class UnknownSession(JournalError):
    code = "journal-unknown-session"


class SessionExists(JournalError):
    code = "journal-session-exists"


class SessionClosed(JournalError):
    code = "journal-session-closed"


class ReceiptConflict(JournalError):
    code = "journal-receipt-conflict"


class UnknownMessage(JournalError):
    code = "journal-unknown-message"


class InvalidValue(JournalError):
    code = "journal-invalid-value"


class SchemaError(JournalError):
    code = "journal-schema"


class StorageError(JournalError):
    """The file could not be opened, is not a journal, or the disk refused a write."""

    code = "journal-storage"


@dataclass(frozen=True, kw_only=True)
class CheckpointPolicy:
    """How often a running session's meter reading is written.

    A reading is written when ``interval_s`` has passed since the last written one, or
    sooner when at least ``step_wh`` more energy has flowed and ``min_interval_s`` has
    passed. The defaults give 60 small transactions per charging hour up to 30 kW (500 Wh
    then takes longer than the interval) and never more than 240, which keeps an AC
    charger's journal well below 500 KB written per charging hour (see bench/journal.py).
    """

    interval_s: float = 60.0
    step_wh: float = 500.0
    min_interval_s: float = 15.0

    def __post_init__(self):
        for name in ("interval_s", "step_wh", "min_interval_s"):
            value = getattr(self, name)
            if not _is_number(value) or value < 0:
                raise InvalidValue(f"checkpoint policy {name} must be a non-negative number, got {value!r}",
                                   field=name, value=value)
        if self.min_interval_s > self.interval_s:
            raise InvalidValue(
                f"checkpoint policy min_interval_s ({self.min_interval_s}) must not exceed interval_s ({self.interval_s})",
                field="min_interval_s", value=self.min_interval_s)

    @classmethod
    def from_section(cls, section) -> "CheckpointPolicy":
        """Read ``checkpoint_interval_s``, ``checkpoint_step_wh`` and ``checkpoint_min_interval_s``
        from a ``drivers.configfile.Section`` (the caller calls ``finish()``), so a bad value is
        reported with its file and key."""
        default = cls()
        interval_s = section.float("checkpoint_interval_s", default.interval_s, min=1.0, max=3_600.0)
        min_interval_s = section.float("checkpoint_min_interval_s", min(default.min_interval_s, interval_s),
                                       min=0.0, max=interval_s)
        step_wh = section.float("checkpoint_step_wh", default.step_wh, min=1.0, max=100_000.0)
        return cls(interval_s=interval_s, step_wh=step_wh, min_interval_s=min_interval_s)

    def due(self, *, last_wh, last_time_s, energy_wh, time_s) -> bool:
        elapsed_s = time_s - last_time_s
        if elapsed_s >= self.interval_s:
            return True
        return energy_wh - last_wh >= self.step_wh and elapsed_s >= self.min_interval_s


@dataclass(frozen=True)
class SessionRecord:
    session_id: str
    connector_id: int
    auth: dict
    tariff_id: str | None
    meter_serial: str
    start_wh: float
    start_time_s: float
    stop_wh: float | None
    stop_time_s: float | None
    stop_reason: str | None
    last_wh: float
    last_time_s: float
    has_receipt: bool

    @property
    def is_open(self) -> bool:
        return self.stop_wh is None

    @property
    def energy_wh(self) -> float | None:
        """Billed energy; defined from the two durable readings only, so it can be re-derived."""
        if self.stop_wh is None:
            return None
        return self.stop_wh - self.start_wh


@dataclass(frozen=True)
class OrderRecord:
    """One stored network order: ``snapshot`` is the binding's JSON text, returned as written."""

    binding: str
    tx_id: str
    snapshot: str
    updated_s: float


@dataclass(frozen=True)
class OutboxEntry:
    id: int
    topic: str
    payload: bytes
    key: str | None
    attempts: int
    next_attempt_s: float
    created_s: float


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
)


def _create_v1(conn: sqlite3.Connection) -> None:
    for statement in _SCHEMA_V1:
        conn.execute(statement)


def _create_additions(conn: sqlite3.Connection) -> None:
    for statement in _SCHEMA_ADDITIONS:
        conn.execute(statement)


def _is_number(value) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _require_number(name, value, *, minimum=None):
    if not _is_number(value):
        raise InvalidValue(f"{name} must be a finite number, got {value!r}", field=name, value=value)
    if minimum is not None and value < minimum:
        raise InvalidValue(f"{name} must be >= {minimum}, got {value!r}", field=name, value=value)
    return value


def _require_text(name, value, *, optional=False):
    if value is None and optional:
        return None
    if not isinstance(value, str) or not value:
        raise InvalidValue(f"{name} must be a non-empty string, got {value!r}", field=name, value=value)
    return value


def _as_text(value) -> str:
    """A stored text column as text, whatever a damaged row holds (SQLite columns are not typed)."""
    if isinstance(value, str):
        return value
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value).decode("utf-8", "replace")
    return repr(value)


def _payload_bytes(name, value) -> bytes:
    if isinstance(value, str):
        return value.encode("utf-8")
    if isinstance(value, (bytes, bytearray, memoryview)):
        return bytes(value)
    raise InvalidValue(f"{name} must be bytes or str, got {type(value).__name__}", field=name)


class Journal:
    """One open journal file. Construct with ``Journal.open``."""

    def __init__(self, conn: sqlite3.Connection, *, path, clock, policy: CheckpointPolicy):
        self._conn = conn
        self.path = str(path)
        self._clock = clock
        self.policy = policy
        # Last written checkpoint per open session, so the policy is decided without a read.
        self._last: dict[str, tuple[float, float]] = {}
        # Counters for benchmarks and diagnostics: committed write transactions.
        self.commits = 0
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
            conn = sqlite3.connect(str(path), isolation_level=None, timeout=busy_timeout_s)
        except sqlite3.Error as exc:
            raise StorageError(f"cannot open journal {path}: {exc}", path=str(path)) from exc
        try:
            cls._configure(conn, path, exclusive=exclusive)
            cls._migrate(conn, path, migrations or {})
        except sqlite3.DatabaseError as exc:
            conn.close()
            if "locked" in str(exc):
                raise StorageError(f"journal {path} is held by another process (is an agent already running?)",
                                   path=str(path)) from exc
            raise StorageError(f"journal {path} is not usable: {exc}", path=str(path)) from exc
        except BaseException:
            conn.close()
            raise
        return cls(conn, path=path, clock=clock, policy=policy or CheckpointPolicy())

    @staticmethod
    def _configure(conn, path, *, exclusive):
        conn.execute(f"PRAGMA page_size={_PAGE_SIZE}")
        if exclusive:
            conn.execute("PRAGMA locking_mode=EXCLUSIVE")
        mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
        if str(mode).lower() != "wal":
            raise StorageError(f"journal {path}: the file system refused WAL mode (got {mode!r})", path=str(path))
        # FULL: the WAL is fsynced at every commit, so a returned call survives power loss.
        conn.execute("PRAGMA synchronous=FULL")
        conn.execute("PRAGMA foreign_keys=ON")
        conn.execute(f"PRAGMA wal_autocheckpoint={_WAL_AUTOCHECKPOINT_PAGES}")
        conn.execute(f"PRAGMA journal_size_limit={_WAL_SIZE_LIMIT_BYTES}")

    @staticmethod
    def _migrate(conn, path, extra):
        steps = {0: _create_v1}
        steps.update(extra)
        target = max([SCHEMA_VERSION, *(v + 1 for v in extra)])
        conn.execute("BEGIN IMMEDIATE")
        try:
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
            _create_additions(conn)
            conn.execute("COMMIT")
        except BaseException:
            conn.execute("ROLLBACK")
            raise

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    @property
    def schema_version(self) -> int:
        return self._db().execute("PRAGMA user_version").fetchone()[0]

    # ------------------------------------------------------------ transactions

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise JournalError(f"journal {self.path} is closed", code="journal-closed")
        return self._conn

    def _write(self, work):
        """Run ``work(conn)`` in one durable transaction; nothing is half-written on error."""
        conn = self._db()
        try:
            conn.execute("BEGIN IMMEDIATE")
        except sqlite3.Error as exc:
            raise StorageError(f"journal {self.path}: cannot begin a write: {exc}", path=self.path) from exc
        try:
            result = work(conn)
            conn.execute("COMMIT")
        except BaseException as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            if isinstance(exc, sqlite3.Error):
                raise StorageError(f"journal {self.path}: write failed: {exc}", path=self.path) from exc
            raise
        self.commits += 1
        return result

    def _load_open_sessions(self):
        rows = self._db().execute(
            """SELECT s.session_id, s.start_wh, s.start_time_s,
                      (SELECT energy_wh FROM checkpoints c WHERE c.session_id = s.session_id
                        ORDER BY time_s DESC LIMIT 1),
                      (SELECT time_s FROM checkpoints c WHERE c.session_id = s.session_id
                        ORDER BY time_s DESC LIMIT 1)
               FROM sessions s WHERE s.stop_wh IS NULL""").fetchall()
        for session_id, start_wh, start_time_s, last_wh, last_time_s in rows:
            if last_wh is None:
                self._last[session_id] = (start_wh, start_time_s)
            else:
                self._last[session_id] = (last_wh, last_time_s)

    # ---------------------------------------------------------------- sessions

    def start_session(self, session_id: str, *, connector_id: int, auth: dict, start_wh, start_time_s,
                      meter_serial: str, tariff_id: str | None = None) -> SessionRecord:
        _require_text("session_id", session_id)
        if not isinstance(connector_id, int) or isinstance(connector_id, bool) or connector_id < 0:
            raise InvalidValue(f"connector_id must be a non-negative integer, got {connector_id!r}",
                               field="connector_id", value=connector_id)
        if not isinstance(auth, dict):
            raise InvalidValue(f"auth must be a dict (source, token or contract id, limits), got {type(auth).__name__}",
                               field="auth")
        try:
            auth_json = json.dumps(auth, sort_keys=True, separators=(",", ":"), allow_nan=False)
        except (TypeError, ValueError) as exc:
            raise InvalidValue(f"auth must be JSON-serialisable: {exc}", field="auth") from exc
        _require_number("start_wh", start_wh, minimum=0)
        _require_number("start_time_s", start_time_s)
        _require_text("meter_serial", meter_serial)
        _require_text("tariff_id", tariff_id, optional=True)

        def work(conn):
            if conn.execute("SELECT 1 FROM sessions WHERE session_id = ?", (session_id,)).fetchone():
                raise SessionExists(f"session {session_id!r} was already started", session_id=session_id)
            seq = conn.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM sessions").fetchone()[0]
            conn.execute(
                """INSERT INTO sessions (session_id, seq, connector_id, auth_json, tariff_id, meter_serial,
                                         start_wh, start_time_s) VALUES (?, ?, ?, ?, ?, ?, ?, ?)""",
                (session_id, seq, connector_id, auth_json, tariff_id, meter_serial, start_wh, start_time_s))

        self._write(work)
        self._last[session_id] = (start_wh, start_time_s)
        return self.session(session_id)

    def checkpoint(self, session_id: str, energy_wh, time_s, *, force: bool = False) -> bool:
        """Offer a meter reading; returns True when it was written (per policy or ``force``)."""
        _require_number("energy_wh", energy_wh, minimum=0)
        _require_number("time_s", time_s)
        last = self._last.get(session_id)
        if last is None:
            self._raise_not_open(session_id)
        last_wh, last_time_s = last
        if energy_wh < last_wh:
            raise InvalidValue(
                f"session {session_id!r}: meter reading {energy_wh} Wh is below the last recorded {last_wh} Wh",
                field="energy_wh", value=energy_wh, last_wh=last_wh, session_id=session_id)
        if time_s <= last_time_s:
            if not force:
                return False
            raise InvalidValue(
                f"session {session_id!r}: checkpoint time {time_s} is not after the last recorded {last_time_s}",
                field="time_s", value=time_s, session_id=session_id)
        if not force and not self.policy.due(last_wh=last_wh, last_time_s=last_time_s,
                                             energy_wh=energy_wh, time_s=time_s):
            return False

        def work(conn):
            conn.execute("INSERT INTO checkpoints (session_id, time_s, energy_wh) VALUES (?, ?, ?)",
                         (session_id, time_s, energy_wh))

        self._write(work)
        self._last[session_id] = (energy_wh, time_s)
        return True

    def stop_session(self, session_id: str, *, stop_wh, stop_time_s, reason: str) -> SessionRecord:
        _require_number("stop_wh", stop_wh, minimum=0)
        _require_number("stop_time_s", stop_time_s)
        _require_text("reason", reason)

        def work(conn):
            row = conn.execute("SELECT start_wh, start_time_s, stop_wh FROM sessions WHERE session_id = ?",
                               (session_id,)).fetchone()
            if row is None:
                raise UnknownSession(f"cannot stop unknown session {session_id!r}", session_id=session_id)
            start_wh, start_time_s, old_stop = row
            if old_stop is not None:
                raise SessionClosed(f"session {session_id!r} is already stopped", session_id=session_id)
            if stop_wh < start_wh:
                raise InvalidValue(
                    f"session {session_id!r}: stop reading {stop_wh} Wh is below the start reading {start_wh} Wh",
                    field="stop_wh", value=stop_wh, start_wh=start_wh, session_id=session_id)
            last = self._last.get(session_id)
            if last is not None and stop_wh < last[0]:
                raise InvalidValue(
                    f"session {session_id!r}: stop reading {stop_wh} Wh is below the checkpoint {last[0]} Wh",
                    field="stop_wh", value=stop_wh, session_id=session_id)
            if stop_time_s < start_time_s:
                raise InvalidValue(
                    f"session {session_id!r}: stop time {stop_time_s} is before the start time {start_time_s}",
                    field="stop_time_s", value=stop_time_s, session_id=session_id)
            conn.execute("UPDATE sessions SET stop_wh = ?, stop_time_s = ?, stop_reason = ? WHERE session_id = ?",
                         (stop_wh, stop_time_s, reason, session_id))

        self._write(work)
        self._last.pop(session_id, None)
        return self.session(session_id)

    def _raise_not_open(self, session_id):
        row = self._db().execute("SELECT stop_wh FROM sessions WHERE session_id = ?", (session_id,)).fetchone()
        if row is None:
            raise UnknownSession(f"unknown session {session_id!r}", session_id=session_id)
        raise SessionClosed(f"session {session_id!r} is already stopped", session_id=session_id)

    _SESSION_COLUMNS = """s.session_id, s.connector_id, s.auth_json, s.tariff_id, s.meter_serial, s.start_wh,
        s.start_time_s, s.stop_wh, s.stop_time_s, s.stop_reason,
        (SELECT energy_wh FROM checkpoints c WHERE c.session_id = s.session_id ORDER BY time_s DESC LIMIT 1),
        (SELECT time_s FROM checkpoints c WHERE c.session_id = s.session_id ORDER BY time_s DESC LIMIT 1),
        EXISTS (SELECT 1 FROM receipts r WHERE r.session_id = s.session_id)"""

    @staticmethod
    def _record(row) -> SessionRecord:
        (session_id, connector_id, auth_json, tariff_id, meter_serial, start_wh, start_time_s,
         stop_wh, stop_time_s, stop_reason, last_wh, last_time_s, has_receipt) = row
        if last_wh is None:
            last_wh, last_time_s = start_wh, start_time_s
        return SessionRecord(session_id=session_id, connector_id=connector_id, auth=json.loads(auth_json),
                             tariff_id=tariff_id, meter_serial=meter_serial, start_wh=start_wh,
                             start_time_s=start_time_s, stop_wh=stop_wh, stop_time_s=stop_time_s,
                             stop_reason=stop_reason, last_wh=last_wh, last_time_s=last_time_s,
                             has_receipt=bool(has_receipt))

    def session(self, session_id: str) -> SessionRecord:
        row = self._db().execute(f"SELECT {self._SESSION_COLUMNS} FROM sessions s WHERE s.session_id = ?",
                                 (session_id,)).fetchone()
        if row is None:
            raise UnknownSession(f"unknown session {session_id!r}", session_id=session_id)
        return self._record(row)

    def open_sessions(self) -> list[SessionRecord]:
        rows = self._db().execute(
            f"SELECT {self._SESSION_COLUMNS} FROM sessions s WHERE s.stop_wh IS NULL ORDER BY s.seq").fetchall()
        return [self._record(r) for r in rows]

    def sessions(self, *, since: float | None = None, limit: int = 100) -> list[SessionRecord]:
        """Sessions started at or after ``since`` (start time, seconds), oldest first."""
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise InvalidValue(f"limit must be a positive integer, got {limit!r}", field="limit", value=limit)
        if since is not None:
            _require_number("since", since)
        rows = self._db().execute(
            f"""SELECT {self._SESSION_COLUMNS} FROM sessions s
                WHERE (? IS NULL OR s.start_time_s >= ?)
                ORDER BY s.start_time_s, s.seq LIMIT ?""", (since, since, limit)).fetchall()
        return [self._record(r) for r in rows]

    def checkpoints(self, session_id: str) -> list[tuple[float, float]]:
        """(time_s, energy_wh) pairs written for a session, oldest first."""
        self.session(session_id)
        return [tuple(r) for r in self._db().execute(
            "SELECT time_s, energy_wh FROM checkpoints WHERE session_id = ? ORDER BY time_s", (session_id,))]

    # ---------------------------------------------------------------- receipts

    def store_receipt(self, session_id: str, receipt, *, deliver_to: str | None = None,
                      deliver_after_s: float | None = None, cost_detail: str | None = None) -> bool:
        """Store the session's receipt once; True if stored now, False if the same one was already.

        With ``deliver_to`` its delivery is queued in the same transaction (key
        ``receipt:<session_id>``), so a receipt is never stored without being sent nor sent
        without being stored. ``cost_detail`` (JSON text: the priced breakdown and periods the
        receipt was made from) is kept in the same transaction too (``cost_detail()``).
        """
        blob = _payload_bytes("receipt", receipt)
        _require_text("deliver_to", deliver_to, optional=True)
        now_s = self._clock()

        def work(conn):
            row = conn.execute("SELECT stop_wh FROM sessions WHERE session_id = ?", (session_id,)).fetchone()
            if row is None:
                raise UnknownSession(f"cannot store a receipt for unknown session {session_id!r}",
                                     session_id=session_id)
            if row[0] is None:
                raise InvalidValue(f"session {session_id!r} is still open; stop it before its receipt",
                                   field="session_id", session_id=session_id)
            existing = conn.execute("SELECT receipt FROM receipts WHERE session_id = ?", (session_id,)).fetchone()
            if existing is not None:
                if bytes(existing[0]) != blob:
                    raise ReceiptConflict(f"session {session_id!r} already has a different receipt",
                                          session_id=session_id)
                return False
            conn.execute("INSERT INTO receipts (session_id, receipt, created_s) VALUES (?, ?, ?)",
                         (session_id, blob, now_s))
            if cost_detail is not None:
                conn.execute("INSERT OR REPLACE INTO session_costs (session_id, detail) VALUES (?, ?)",
                             (session_id, cost_detail))
            if deliver_to is not None:
                self._enqueue_in(conn, deliver_to, blob, f"receipt:{session_id}",
                                 now_s if deliver_after_s is None else deliver_after_s, now_s)
            return True

        return self._write(work)

    def cost_detail(self, session_id: str) -> str | None:
        """The priced detail stored with the session's receipt (None: none was kept)."""
        row = self._db().execute("SELECT detail FROM session_costs WHERE session_id = ?", (session_id,)).fetchone()
        return None if row is None else row[0]

    def receipt(self, session_id: str) -> bytes | None:
        self.session(session_id)
        row = self._db().execute("SELECT receipt FROM receipts WHERE session_id = ?", (session_id,)).fetchone()
        return None if row is None else bytes(row[0])

    # ---------------------------------------------------------- reconciliation

    def reconcile(self, meter_wh_now, now_s, *, make_receipt: Callable[[SessionRecord], bytes | str] | None = None,
                  meter_serial: str | None = None, receipt_topic: str | None = None) -> list[SessionRecord]:
        """Close every session a crash left open, issue missing receipts; return the sessions closed now.

        Each open session is closed at ``meter_wh_now`` (the relay was forced open before this
        call, so no energy has flowed since the crash). If the meter now reads below what the
        journal already recorded, or ``meter_serial`` differs from the session's (the meter was
        replaced), the session is closed at its last durable reading instead, with a reason
        that says so: energy is neither invented nor silently dropped. Then every closed
        session without a receipt gets one from ``make_receipt`` (stored exactly once, queued
        to ``receipt_topic`` when given). Outbox entries are left queued: ``due()`` returns
        them until they are acked.
        """
        _require_number("meter_wh_now", meter_wh_now, minimum=0)
        _require_number("now_s", now_s)
        _require_text("meter_serial", meter_serial, optional=True)

        def close_all(conn):
            closed = []
            for record in self.open_sessions():
                if meter_serial is not None and meter_serial != record.meter_serial:
                    stop_wh, reason = record.last_wh, "recovered-meter-replaced"
                elif meter_wh_now < record.last_wh:
                    stop_wh, reason = record.last_wh, "recovered-meter-regressed"
                else:
                    stop_wh, reason = meter_wh_now, "recovered"
                stop_time_s = max(now_s, record.last_time_s)
                conn.execute(
                    "UPDATE sessions SET stop_wh = ?, stop_time_s = ?, stop_reason = ? WHERE session_id = ?",
                    (stop_wh, stop_time_s, reason, record.session_id))
                closed.append(record.session_id)
            return closed

        closed_ids = self._write(close_all) if self._last else []
        for session_id in closed_ids:
            self._last.pop(session_id, None)
        if make_receipt is not None:
            self._issue_missing_receipts(make_receipt, receipt_topic)
        return [self.session(s) for s in closed_ids]

    def _issue_missing_receipts(self, make_receipt, receipt_topic, batch=100):
        """One transaction per batch: a thousand receipts cost ten fsyncs, not a thousand."""
        while True:
            rows = self._db().execute(
                f"""SELECT {self._SESSION_COLUMNS} FROM sessions s
                    WHERE s.stop_wh IS NOT NULL
                      AND NOT EXISTS (SELECT 1 FROM receipts r WHERE r.session_id = s.session_id)
                    ORDER BY s.seq LIMIT ?""", (batch,)).fetchall()
            if not rows:
                return
            made = []
            failure = None
            for row in rows:
                record = self._record(row)
                try:
                    made.append((record.session_id, _payload_bytes("receipt", make_receipt(record))))
                except Exception as exc:  # keep the receipts already made, then report which failed
                    failure = (record.session_id, exc)
                    break
            now_s = self._clock()

            def work(conn):
                for session_id, blob in made:
                    conn.execute("INSERT INTO receipts (session_id, receipt, created_s) VALUES (?, ?, ?)",
                                 (session_id, blob, now_s))
                    if receipt_topic is not None:
                        self._enqueue_in(conn, receipt_topic, blob, f"receipt:{session_id}", now_s, now_s)

            if made:
                self._write(work)
            if failure is not None:
                session_id, exc = failure
                raise JournalError(f"making the receipt for session {session_id!r} failed: {exc}",
                                   code="journal-receipt-failed", session_id=session_id) from exc

    # ------------------------------------------------------------------ outbox

    @staticmethod
    def _enqueue_in(conn, topic, blob, key, deliver_after_s, now_s):
        if key is not None:
            row = conn.execute("SELECT id FROM outbox WHERE dedup_key = ?", (key,)).fetchone()
            if row is not None:
                return row[0], False
        cursor = conn.execute(
            "INSERT INTO outbox (topic, payload, dedup_key, created_s, next_attempt_s) VALUES (?, ?, ?, ?, ?)",
            (topic, blob, key, now_s, deliver_after_s))
        return cursor.lastrowid, True

    def enqueue(self, topic: str, payload, *, key: str | None = None, deliver_after: float | None = None) -> int:
        """Queue a message durably; returns its id. A repeated ``key`` returns the first id."""
        _require_text("topic", topic)
        blob = _payload_bytes("payload", payload)
        _require_text("key", key, optional=True)
        if deliver_after is not None:
            _require_number("deliver_after", deliver_after)
        now_s = self._clock()
        if key is not None:
            row = self._db().execute("SELECT id FROM outbox WHERE dedup_key = ?", (key,)).fetchone()
            if row is not None:
                return row[0]
        message_id, _ = self._write(
            lambda conn: self._enqueue_in(conn, topic, blob, key, now_s if deliver_after is None else deliver_after,
                                          now_s))
        return message_id

    def due(self, now: float, limit: int = 50, *, topic_prefix: str | None = None) -> list[OutboxEntry]:
        """Messages due by ``now``; ``topic_prefix`` keeps each binding to its own messages
        (the MQTT link and the OCPI pusher share one outbox and must never send each other's)."""
        _require_number("now", now)
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise InvalidValue(f"limit must be a positive integer, got {limit!r}", field="limit", value=limit)
        prefix = topic_prefix or ""
        rows = self._db().execute(
            """SELECT id, topic, payload, dedup_key, attempts, next_attempt_s, created_s FROM outbox
               WHERE acked_s IS NULL AND next_attempt_s <= ? AND substr(topic, 1, ?) = ?
               ORDER BY next_attempt_s, id LIMIT ?""",
            (now, len(prefix), prefix, limit)).fetchall()
        return [OutboxEntry(id=r[0], topic=r[1], payload=bytes(r[2]), key=r[3], attempts=r[4],
                            next_attempt_s=r[5], created_s=r[6]) for r in rows]

    def pending_count(self) -> int:
        return self._db().execute("SELECT COUNT(*) FROM outbox WHERE acked_s IS NULL").fetchone()[0]

    def ack(self, message_id: int) -> bool:
        """Mark delivered; True the first time, False if already acked (redelivery is normal)."""
        now_s = self._clock()

        def work(conn):
            row = conn.execute("SELECT acked_s FROM outbox WHERE id = ?", (message_id,)).fetchone()
            if row is None:
                raise UnknownMessage(f"unknown outbox message id {message_id!r}", message_id=message_id)
            if row[0] is not None:
                return False
            conn.execute("UPDATE outbox SET acked_s = ? WHERE id = ?", (now_s, message_id))
            return True

        return self._write(work)

    def retry(self, message_id: int, next_attempt_s: float) -> int:
        """Record a failed attempt and when to try again; returns the attempt count."""
        _require_number("next_attempt_s", next_attempt_s)

        def work(conn):
            row = conn.execute("SELECT acked_s, attempts FROM outbox WHERE id = ?", (message_id,)).fetchone()
            if row is None:
                raise UnknownMessage(f"unknown outbox message id {message_id!r}", message_id=message_id)
            if row[0] is not None:
                raise JournalError(f"outbox message {message_id} was already acked; it cannot be retried",
                                   code="journal-message-acked", message_id=message_id)
            conn.execute("UPDATE outbox SET attempts = attempts + 1, next_attempt_s = ? WHERE id = ?",
                         (next_attempt_s, message_id))
            return row[1] + 1

        return self._write(work)

    # ------------------------------------------------------------------ orders

    def save_order(self, binding: str, tx_id: str, snapshot_json: str, now_s: float) -> None:
        """Store (or replace) a binding's order; durable on return.

        ``snapshot_json`` must be the text of a JSON object: a row the binding could not read
        back is refused here rather than found at the next start.
        """
        _require_text("binding", binding)
        _require_text("tx_id", tx_id)
        if not isinstance(snapshot_json, str):
            raise InvalidValue(f"order snapshot must be JSON text, got {type(snapshot_json).__name__}",
                               field="snapshot_json", tx_id=tx_id)
        try:
            parsed = json.loads(snapshot_json)
        except ValueError as exc:
            raise InvalidValue(f"order {tx_id!r}: snapshot is not JSON: {exc}", field="snapshot_json",
                               tx_id=tx_id) from exc
        if not isinstance(parsed, dict):
            raise InvalidValue(f"order {tx_id!r}: snapshot must be a JSON object, got {type(parsed).__name__}",
                               field="snapshot_json", tx_id=tx_id)
        _require_number("now_s", now_s)
        self._write(lambda conn: conn.execute(
            """INSERT INTO orders (binding, tx_id, snapshot, updated_s) VALUES (?, ?, ?, ?)
               ON CONFLICT (binding, tx_id) DO UPDATE SET snapshot = excluded.snapshot,
                                                          updated_s = excluded.updated_s""",
            (binding, tx_id, snapshot_json, now_s)))

    def orders(self, binding: str) -> list[OrderRecord]:
        """A binding's stored orders, first saved first; rows are returned unread (the binding
        decides what a snapshot it cannot use means)."""
        _require_text("binding", binding)
        rows = self._db().execute(
            "SELECT binding, tx_id, snapshot, updated_s FROM orders WHERE binding = ? ORDER BY rowid",
            (binding,)).fetchall()
        return [OrderRecord(binding=r[0], tx_id=r[1], snapshot=_as_text(r[2]), updated_s=r[3]) for r in rows]

    def delete_order(self, binding: str, tx_id: str) -> bool:
        """Forget a binding's order; True if there was one."""
        _require_text("binding", binding)
        _require_text("tx_id", tx_id)
        return self._write(lambda conn: conn.execute(
            "DELETE FROM orders WHERE binding = ? AND tx_id = ?", (binding, tx_id)).rowcount) > 0

    # ------------------------------------------------------------- housekeeping

    def prune(self, *, before_s: float) -> dict:
        """Forget what is finished and older than ``before_s``: acked messages and the
        checkpoints of sessions that have receipts. Sessions and receipts are kept (they are
        the billing record); returns counts removed."""
        _require_number("before_s", before_s)

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


# ------------------------------------------------------------------ latched faults

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


class FaultStore:
    """Latched safety faults and their clearing, in a file shared by the agent and ``urja fault``.

    Why a file of its own: the journal is held exclusively by the running agent, but a
    technician's local reset must reach the latch whether the agent runs or not. WAL with
    normal locking lets the command write while the agent holds its own connection; every
    write is one short ``BEGIN IMMEDIATE`` transaction fsynced before it returns, and rows are
    never deleted (faults are rare; the history tells a technician what happened).
    """

    def __init__(self, conn: sqlite3.Connection, path: str):
        self._conn = conn
        self.path = path

    @classmethod
    def open(cls, path, *, busy_timeout_s: float = 2.0) -> "FaultStore":
        path = str(path)
        try:
            if path != ":memory:":
                Path(path).parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(path, isolation_level=None, timeout=busy_timeout_s)
        except (OSError, sqlite3.Error) as exc:
            raise StorageError(f"cannot open the fault latch file {path}: {exc}", path=path) from exc
        try:
            mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if path != ":memory:" and str(mode).lower() != "wal":
                raise StorageError(f"fault latch file {path}: the file system refused WAL mode (got {mode!r})",
                                   path=path)
            conn.execute("PRAGMA synchronous=FULL")
            conn.execute("BEGIN IMMEDIATE")
            try:
                for statement in _FAULT_SCHEMA:
                    conn.execute(statement)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
        except sqlite3.DatabaseError as exc:
            conn.close()
            raise StorageError(f"fault latch file {path} is not usable: {exc}", path=path) from exc
        except BaseException:
            conn.close()
            raise
        return cls(conn, path)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise JournalError(f"fault latch file {self.path} is closed", code="journal-closed")
        return self._conn

    def _write(self, work):
        conn = self._db()
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                result = work(conn)
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            raise StorageError(f"fault latch file {self.path}: write failed: {exc}", path=self.path) from exc
        return result

    def _read(self, sql: str, params=()) -> list:
        try:
            return self._db().execute(sql, params).fetchall()
        except sqlite3.Error as exc:
            raise StorageError(f"fault latch file {self.path}: read failed: {exc}", path=self.path) from exc

    @staticmethod
    def _row(row) -> LatchedFault:
        return LatchedFault(id=row[0], code=_as_text(row[1]), detail=_as_text(row[2]), latched_s=row[3],
                            cleared_s=row[4], cleared_by=None if row[5] is None else _as_text(row[5]))

    _COLUMNS = "id, code, detail, latched_s, cleared_s, cleared_by"

    def latched(self) -> LatchedFault | None:
        """The newest fault not cleared yet, or None."""
        rows = self._read(f"SELECT {self._COLUMNS} FROM latched_faults WHERE cleared_s IS NULL "
                          "ORDER BY id DESC LIMIT 1")
        return self._row(rows[0]) if rows else None

    def fault(self, fault_id: int) -> LatchedFault | None:
        """One recorded fault by id, cleared or not (one indexed row: cheap enough to poll)."""
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
        _require_text("code", code)
        if not isinstance(detail, str):
            raise InvalidValue(f"detail must be a string, got {detail!r}", field="detail", value=detail)
        _require_number("time_s", time_s)

        def work(conn):
            row = conn.execute(f"SELECT {self._COLUMNS} FROM latched_faults WHERE cleared_s IS NULL AND code = ? "
                               "ORDER BY id DESC LIMIT 1", (code,)).fetchone()
            if row is not None:
                return self._row(row)
            cur = conn.execute("INSERT INTO latched_faults (code, detail, latched_s) VALUES (?, ?, ?)",
                               (code, detail, float(time_s)))
            return LatchedFault(id=cur.lastrowid, code=code, detail=detail, latched_s=float(time_s),
                                cleared_s=None, cleared_by=None)

        return self._write(work)

    def clear(self, time_s: float, *, by: str) -> list[LatchedFault]:
        """Mark every uncleared fault cleared (durable on return); returns what was cleared.

        Only a local reset may call this: the agent after its gate cleared, or ``urja fault
        reset`` at the charger. Nothing on the network reaches it.
        """
        _require_number("time_s", time_s)
        _require_text("by", by)

        def work(conn):
            rows = conn.execute(f"SELECT {self._COLUMNS} FROM latched_faults WHERE cleared_s IS NULL "
                                "ORDER BY id").fetchall()
            conn.execute("UPDATE latched_faults SET cleared_s = ?, cleared_by = ? WHERE cleared_s IS NULL",
                         (float(time_s), by))
            return [LatchedFault(id=r[0], code=_as_text(r[1]), detail=_as_text(r[2]), latched_s=r[3],
                                 cleared_s=float(time_s), cleared_by=by) for r in rows]

        return self._write(work)


__all__ = [
    "CheckpointPolicy", "FaultStore", "Journal", "JournalError", "LatchedFault", "OrderRecord", "OutboxEntry",
    "ReceiptConflict", "SCHEMA_VERSION", "fault_store_path",
    "SchemaError", "SessionClosed", "SessionExists", "SessionRecord", "StorageError", "UnknownMessage",
    "UnknownSession", "InvalidValue",
]
