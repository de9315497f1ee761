"""The one SQLite write transaction every store uses: durable on success, nothing left on failure."""
from __future__ import annotations

import sqlite3

import pytest

from agent import sqlite as db


class StoreError(Exception):
    pass


@pytest.fixture
def conn(tmp_path):
    conn = db.connect(tmp_path / "sub" / "store.sqlite", timeout_s=0.1, make_parent=True)
    db.use_wal(conn)
    db.write(conn, lambda c: db.execute_all(c, ["CREATE TABLE t (k TEXT PRIMARY KEY)"]))
    yield conn
    conn.close()


def rows(conn):
    return [r[0] for r in conn.execute("SELECT k FROM t ORDER BY k")]


def test_connection_is_wal_and_fsyncs_every_commit(conn):
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert conn.isolation_level is None


def test_write_commits_and_returns_the_result(conn):
    assert db.write(conn, lambda c: c.execute("INSERT INTO t VALUES ('a')").rowcount) == 1
    assert not conn.in_transaction
    assert rows(conn) == ["a"]


def test_an_exception_in_the_work_rolls_everything_back_and_passes_through(conn):
    def work(c):
        c.execute("INSERT INTO t VALUES ('a')")
        raise KeyError("boom")

    with pytest.raises(KeyError):
        db.write(conn, work, failed=lambda exc: StoreError(str(exc)))
    assert not conn.in_transaction
    assert rows(conn) == []


def test_a_sqlite_error_is_mapped_to_the_store_error_after_the_rollback(conn):
    def work(c):
        c.execute("INSERT INTO t VALUES ('a')")
        c.execute("INSERT INTO t VALUES ('a')")

    with pytest.raises(StoreError, match="UNIQUE") as caught:
        db.write(conn, work, failed=lambda exc: StoreError(f"write failed: {exc}"))
    assert isinstance(caught.value.__cause__, sqlite3.IntegrityError)
    assert rows(conn) == []


def test_without_a_mapping_the_sqlite_error_itself_propagates(conn):
    with pytest.raises(sqlite3.IntegrityError):
        db.write(conn, lambda c: c.executemany("INSERT INTO t VALUES (?)", [("a",), ("a",)]))
    assert rows(conn) == []


def test_a_failed_begin_has_its_own_mapping(tmp_path):
    path = tmp_path / "held.sqlite"
    holder = db.connect(path, timeout_s=0.1)
    db.use_wal(holder)
    other = db.connect(path, timeout_s=0.05)
    try:
        holder.execute("BEGIN IMMEDIATE")
        with pytest.raises(StoreError, match="cannot begin"):
            db.write(other, lambda c: None, failed=lambda exc: StoreError("write failed"),
                     begin_failed=lambda exc: StoreError(f"cannot begin: {exc}"))
        with pytest.raises(StoreError, match="write failed"):
            db.write(other, lambda c: None, failed=lambda exc: StoreError("write failed"))
        assert not other.in_transaction
    finally:
        holder.execute("ROLLBACK")
        holder.close()
        other.close()


def test_set_up_closes_the_connection_and_maps_a_file_that_is_not_a_database(tmp_path):
    path = tmp_path / "junk.sqlite"
    path.write_bytes(b"this is not a database" * 100)
    conn = db.connect(path, timeout_s=0.1)
    with pytest.raises(StoreError, match="not usable"):
        db.set_up(conn, db.use_wal, unusable=lambda exc: StoreError(f"not usable: {exc}"))
    with pytest.raises(sqlite3.ProgrammingError):
        conn.execute("SELECT 1")


def test_wal_refused_is_raised_before_anything_else(tmp_path):
    conn = db.connect(db.MEMORY, timeout_s=0.1)
    with pytest.raises(StoreError, match="memory"):
        db.use_wal(conn, wal_refused=lambda mode: StoreError(f"refused: {mode}"))
    conn.close()


def test_a_store_file_closes_once(conn):
    store = db.SqliteFile(conn, "store.sqlite")
    with store:
        pass
    store.close()
    with pytest.raises(sqlite3.ProgrammingError):
        conn.execute("SELECT 1")


def test_every_store_keeps_a_bounded_page_cache(tmp_path):
    """SQLite's default cache (2 MiB a connection) filled as the journal grew: resident memory
    rose for the first thousand sessions (bench/soak.py). Journal, fault file and OCPI store
    all connect through ``db.connect``."""
    from agent.journal import FaultStore, Journal
    from protocols.ocpi.store import OcpiStore

    stores = [Journal.open(tmp_path / "j.sqlite"), FaultStore.open(tmp_path / "f.sqlite"),
              OcpiStore.open(tmp_path / "o.sqlite")]
    try:
        for store in stores:
            assert store._conn.execute("PRAGMA cache_size").fetchone()[0] == -db.CACHE_KIB
    finally:
        for store in stores:
            store.close()
