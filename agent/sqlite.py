"""One way to open a SQLite store and write to it: WAL, fsync at every commit, all or nothing.

The journal, the fault latch file and the OCPI registrations make the same promises: a write
that returns is on stable storage (WAL with ``synchronous=FULL``), and a write that fails
leaves nothing half-done. Those promises hang on details that are easy to get subtly wrong in
one copy (a ``BEGIN IMMEDIATE`` so two writers queue on the busy timeout instead of failing
mid-transaction, a rollback also after a failed ``COMMIT``, a connection closed when setting up
fails), so every store goes through these few functions. Each store keeps its own error class
and messages: the helpers take functions that turn a ``sqlite3.Error`` into the store's error,
and without them the ``sqlite3.Error`` itself propagates.
"""
from __future__ import annotations

import sqlite3
from contextlib import contextmanager
from pathlib import Path
from typing import Callable, Iterator

MEMORY = ":memory:"

ErrorMap = Callable[[sqlite3.Error], BaseException]


CACHE_KIB = 256  # page cache per connection


def connect(path, *, timeout_s: float, make_parent: bool = False) -> sqlite3.Connection:
    """A connection in autocommit mode (every transaction is explicit), waiting up to
    ``timeout_s`` for another process's lock; ``make_parent`` creates the folder first."""
    path = str(path)
    if make_parent and path != MEMORY:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
    return sqlite3.connect(path, isolation_level=None, timeout=timeout_s)


def use_wal(conn: sqlite3.Connection, *, page_size: int | None = None, exclusive: bool = False,
            wal_refused: Callable[[object], BaseException] | None = None) -> None:
    """WAL mode with the WAL fsynced at every commit (``synchronous=FULL``).

    ``page_size`` only takes effect on a new file; ``exclusive`` keeps the WAL index in process
    memory (one process only). With ``wal_refused``, a file system that refuses WAL mode raises
    ``wal_refused(mode_reported)``; without it, whatever mode SQLite kept is accepted.
    """
    if page_size is not None:
        conn.execute(f"PRAGMA page_size={int(page_size)}")
    if exclusive:
        conn.execute("PRAGMA locking_mode=EXCLUSIVE")
    mode = conn.execute("PRAGMA journal_mode=WAL").fetchone()[0]
    if wal_refused is not None and str(mode).lower() != "wal":
        raise wal_refused(mode)
    conn.execute("PRAGMA synchronous=FULL")


def set_up(conn: sqlite3.Connection, setup: Callable[[sqlite3.Connection], None], *,
           unusable: ErrorMap | None = None) -> sqlite3.Connection:
    """Run ``setup(conn)`` (pragmas, schema); on any failure the connection is closed, and a
    ``sqlite3.DatabaseError`` (not a database, locked, corrupt) becomes ``unusable(exc)``."""
    try:
        # SQLite's default page cache is up to 2 MiB a connection, filled as the file grows: on
        # a board that runs for years that is resident memory rising for the first thousand
        # sessions. The hot pages (open sessions, the outbox head) fit in far less.
        conn.execute(f"PRAGMA cache_size=-{CACHE_KIB}")
        setup(conn)
    except sqlite3.DatabaseError as exc:
        conn.close()
        if unusable is None:
            raise
        raise unusable(exc) from exc
    except BaseException:
        conn.close()
        raise
    return conn


@contextmanager
def write_transaction(conn: sqlite3.Connection, *, failed: ErrorMap | None = None,
                      begin_failed: ErrorMap | None = None) -> Iterator[sqlite3.Connection]:
    """``BEGIN IMMEDIATE`` ... ``COMMIT``: durable when the block exits, rolled back on any error.

    A ``sqlite3.Error`` while beginning becomes ``begin_failed(exc)`` (default ``failed``), one
    in the block or at commit ``failed(exc)``; other exceptions pass through unchanged after the
    rollback.
    """
    begin_failed = begin_failed or failed
    try:
        conn.execute("BEGIN IMMEDIATE")
    except sqlite3.Error as exc:
        if begin_failed is None:
            raise
        raise begin_failed(exc) from exc
    try:
        yield conn
        conn.execute("COMMIT")
    except BaseException as exc:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        if failed is not None and isinstance(exc, sqlite3.Error):
            raise failed(exc) from exc
        raise


def write(conn: sqlite3.Connection, work: Callable[[sqlite3.Connection], object], *,
          failed: ErrorMap | None = None, begin_failed: ErrorMap | None = None):
    """``work(conn)`` in one ``write_transaction``; returns what it returned."""
    with write_transaction(conn, failed=failed, begin_failed=begin_failed):
        return work(conn)


def execute_all(conn: sqlite3.Connection, statements) -> None:
    """Run schema statements in order (inside the caller's transaction)."""
    for statement in statements:
        conn.execute(statement)


class SqliteFile:
    """One open SQLite file: its connection, closed once (later calls are no-ops), and usable
    in a ``with`` block so a tool that opens a store cannot leave it open on an error."""

    def __init__(self, conn: sqlite3.Connection, path: str):
        self._conn = conn
        self.path = path

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self.close()
