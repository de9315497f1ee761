"""The journal's format steps, both ways, on a file with sessions, receipts and outbox messages."""
from __future__ import annotations

import sqlite3

import pytest

from agent.journal import SCHEMA_VERSION, Journal, SchemaError, StorageError
from agent.journal.migrations import CURRENT_VERSION, STEPS, migrate_file


def populated(path):
    with Journal.open(path, clock=lambda: 100.0) as j:
        j.start_session("s1", connector_id=1, auth={"source": "free_vend"}, start_wh=10, start_time_s=1.0,
                        meter_serial="EM-1")
        j.checkpoint("s1", 15, 30.0, force=True)
        j.stop_session("s1", stop_wh=20, stop_time_s=60.0, reason="ev-stop")
        j.store_receipt("s1", b'{"receipt_id": "r1"}', deliver_to="receipts")
        j.start_session("s2", connector_id=1, auth={"source": "free_vend"}, start_wh=20, start_time_s=70.0,
                        meter_serial="EM-1")
        j.save_order("mqtt", "tx-1", "{}", 2.0)


def rows(path) -> dict:
    conn = sqlite3.connect(path)
    try:
        tables = [r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table' "
                                             "AND name NOT LIKE 'sqlite_%' ORDER BY name")]
        return {t: sorted(conn.execute(f"SELECT * FROM {t}").fetchall(), key=repr) for t in tables}
    finally:
        conn.close()


def indexes(path) -> set[str]:
    conn = sqlite3.connect(path)
    try:
        return {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL")}
    finally:
        conn.close()


def version(path) -> int:
    conn = sqlite3.connect(path)
    try:
        return conn.execute("PRAGMA user_version").fetchone()[0]
    finally:
        conn.close()


def test_the_journal_opens_at_the_format_after_the_last_step():
    assert SCHEMA_VERSION == CURRENT_VERSION == 1 + len(STEPS)
    assert [s.version for s in STEPS] == list(range(1, CURRENT_VERSION))


def test_every_step_down_and_up_again_keeps_every_row(tmp_path):
    path = tmp_path / "journal.sqlite"
    populated(path)
    before = rows(path)
    for target in range(CURRENT_VERSION - 1, 0, -1):
        assert migrate_file(path, to_version=target) == (target + 1, target)
        assert version(path) == target and rows(path) == before
    assert "receipts_created" not in indexes(path)
    assert migrate_file(path, to_version=CURRENT_VERSION) == (1, CURRENT_VERSION)
    assert rows(path) == before and "receipts_created" in indexes(path)


def test_a_file_of_the_first_format_is_carried_up_when_the_agent_opens_it(tmp_path):
    path = tmp_path / "journal.sqlite"
    populated(path)
    migrate_file(path, to_version=1)
    with Journal.open(path) as j:
        assert j.schema_version == CURRENT_VERSION
        assert j.session("s1").energy_wh == 10 and j.receipt("s1") is not None
        assert [s.session_id for s in j.open_sessions()] == ["s2"]
    assert "receipts_created" in indexes(path)


def test_a_journal_held_by_a_running_agent_is_not_migrated(tmp_path):
    path = tmp_path / "journal.sqlite"
    populated(path)
    with Journal.open(path):
        with pytest.raises(StorageError, match="held by another process"):
            migrate_file(path, to_version=1, busy_timeout_s=0.05)
    assert version(path) == CURRENT_VERSION


@pytest.mark.parametrize("target", [0, CURRENT_VERSION + 1])
def test_an_unknown_format_is_refused_and_the_file_untouched(tmp_path, target):
    path = tmp_path / "journal.sqlite"
    populated(path)
    with pytest.raises(SchemaError, match=f"no format version {target}"):
        migrate_file(path, to_version=target)
    assert version(path) == CURRENT_VERSION


def test_a_file_newer_than_this_release_is_not_carried_anywhere(tmp_path):
    path = tmp_path / "journal.sqlite"
    populated(path)
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version={CURRENT_VERSION + 1}")
    conn.close()
    with pytest.raises(SchemaError, match="knows 1 to"):
        migrate_file(path, to_version=1)


def test_urja_journal_migrate_names_the_versions_and_format_prints_this_releases(tmp_path, capsys):
    from tools.cli import main
    from tools.provision import provision_site

    config = provision_site(tmp_path, site_id="in.test.mig", name="Mig", lat=12.9, lon=77.6, auth="free_vend")
    populated(tmp_path / "journal.sqlite")
    assert main(["journal", "format"]) == 0
    assert capsys.readouterr().out.strip() == str(CURRENT_VERSION)
    assert main(["journal", "migrate", "--config", str(config), "--to", "1"]) == 0
    assert "format 2 -> 1" in capsys.readouterr().out
    assert main(["journal", "migrate", "--config", str(config), "--to", "9"]) == 1
    assert "no format version 9" in capsys.readouterr().err
