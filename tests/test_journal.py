"""The journal's contract, call by call, on real files (every test reopens what it wrote)."""
from __future__ import annotations

import json
import math
import sqlite3

import pytest

from agent.core.errors import AgentError
from agent.journal import (
    SCHEMA_VERSION,
    CheckpointPolicy,
    InvalidValue,
    Journal,
    JournalError,
    ReceiptConflict,
    SchemaError,
    SessionClosed,
    SessionExists,
    StorageError,
    UnknownMessage,
    UnknownSession,
)

AUTH = {"source": "beckn", "contract_id": "ord-42", "limits": {"energy_wh": 20000}}


class Clock:
    def __init__(self, now_s=1_000.0):
        self.now_s = now_s

    def __call__(self):
        return self.now_s


@pytest.fixture
def path(tmp_path):
    return tmp_path / "journal.db"


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def journal(path, clock):
    with Journal.open(path, clock=clock) as j:
        yield j


def start(j, sid="s1", *, start_wh=10_000, start_time_s=1_000.0, **kw):
    return j.start_session(sid, connector_id=1, auth=AUTH, start_wh=start_wh, start_time_s=start_time_s,
                           meter_serial="EM-1", tariff_id="t-flat", **kw)


def receipt_of(record):
    return json.dumps({"id": record.session_id, "energy_wh": record.energy_wh}).encode()


def test_a_session_survives_reopen_with_everything_the_bill_needs(path, clock):
    with Journal.open(path, clock=clock) as j:
        start(j)
        assert j.checkpoint("s1", 10_100, 1_060.0)
        stopped = j.stop_session("s1", stop_wh=10_740, stop_time_s=1_360.0, reason="ev-stop")
        assert stopped.energy_wh == 740
    with Journal.open(path, clock=clock) as j:
        s = j.session("s1")
        assert (s.start_wh, s.stop_wh, s.start_time_s, s.stop_time_s) == (10_000, 10_740, 1_000.0, 1_360.0)
        assert (s.auth, s.meter_serial, s.tariff_id, s.connector_id, s.stop_reason) == (
            AUTH, "EM-1", "t-flat", 1, "ev-stop")
        assert j.checkpoints("s1") == [(1_060.0, 10_100)]
        assert j.open_sessions() == []
        assert j.schema_version == SCHEMA_VERSION
        assert j.integrity_check() == ["ok"]


def test_file_is_wal_with_full_sync_and_versioned(path, journal):
    conn = journal._conn
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION


def test_double_start_is_refused_and_keeps_the_first(journal):
    start(journal, start_wh=500)
    with pytest.raises(SessionExists) as info:
        start(journal, start_wh=900)
    assert info.value.code == "journal-session-exists" and isinstance(info.value, AgentError)
    assert journal.session("s1").start_wh == 500


def test_stop_of_unknown_or_stopped_session_is_an_error(journal):
    with pytest.raises(UnknownSession, match="nope"):
        journal.stop_session("nope", stop_wh=1, stop_time_s=2.0, reason="x")
    start(journal)
    journal.stop_session("s1", stop_wh=10_000, stop_time_s=1_001.0, reason="ev-stop")
    with pytest.raises(SessionClosed):
        journal.stop_session("s1", stop_wh=10_500, stop_time_s=1_002.0, reason="again")
    assert journal.session("s1").stop_wh == 10_000


@pytest.mark.parametrize("kwargs, field", [
    ({"stop_wh": 9_999}, "stop_wh"),              # below the start reading
    ({"stop_wh": 10_150}, "stop_wh"),             # below a recorded checkpoint
    ({"stop_time_s": 999.0}, "stop_time_s"),      # before the start
    ({"stop_wh": math.nan}, "stop_wh"),
    ({"reason": ""}, "reason"),
])
def test_bad_stop_is_refused_and_the_session_stays_open(journal, kwargs, field):
    start(journal)
    journal.checkpoint("s1", 10_200, 1_100.0, force=True)
    args = {"stop_wh": 10_300, "stop_time_s": 1_200.0, "reason": "ev-stop", **kwargs}
    with pytest.raises(InvalidValue) as info:
        journal.stop_session("s1", **args)
    assert info.value.details["field"] == field
    assert journal.session("s1").is_open


@pytest.mark.parametrize("kwargs, field", [
    ({"start_wh": -1}, "start_wh"),
    ({"start_wh": True}, "start_wh"),
    ({"start_wh": math.inf}, "start_wh"),
    ({"start_time_s": "now"}, "start_time_s"),
    ({"auth": "token"}, "auth"),
    ({"auth": {"limit": object()}}, "auth"),
    ({"meter_serial": ""}, "meter_serial"),
    ({"connector_id": -1}, "connector_id"),
])
def test_bad_start_is_refused_without_a_trace(journal, kwargs, field):
    args = {"connector_id": 1, "auth": AUTH, "start_wh": 0, "start_time_s": 1.0, "meter_serial": "EM-1", **kwargs}
    with pytest.raises(InvalidValue) as info:
        journal.start_session("s1", **args)
    assert info.value.details["field"] == field
    assert journal.sessions() == []


def test_checkpoints_are_rate_limited_by_time_and_energy(path, clock):
    policy = CheckpointPolicy(interval_s=60, step_wh=500, min_interval_s=15)
    with Journal.open(path, clock=clock, policy=policy) as j:
        start(j, start_wh=0, start_time_s=0.0)
        written = [t for t in range(1, 181) if j.checkpoint("s1", t * 2, float(t))]  # 7.2 kW
        assert written == [60, 120, 180]
        # Fast energy: 600 Wh in 20 s triggers the energy step once min_interval_s passed.
        assert not j.checkpoint("s1", 400, 190.0)
        assert j.checkpoint("s1", 960, 200.0)
        assert not j.checkpoint("s1", 2_000, 210.0)  # step reached but min_interval_s not yet
        commits = j.commits
        assert not j.checkpoint("s1", 2_000, 200.0)  # time not after the last: ignored
        assert j.commits == commits
    with Journal.open(path, clock=clock, policy=policy) as j:
        # The policy continues from the last written checkpoint after a restart.
        assert not j.checkpoint("s1", 2_100, 212.0)
        assert j.checkpoint("s1", 2_100, 216.0)
        assert j.session("s1").last_wh == 2_100


def test_checkpoint_errors(journal):
    with pytest.raises(UnknownSession):
        journal.checkpoint("ghost", 1, 1.0)
    start(journal)
    journal.checkpoint("s1", 10_500, 1_100.0, force=True)
    with pytest.raises(InvalidValue, match="below the last recorded"):
        journal.checkpoint("s1", 10_400, 1_200.0, force=True)
    with pytest.raises(InvalidValue, match="not after"):
        journal.checkpoint("s1", 10_600, 1_100.0, force=True)
    journal.stop_session("s1", stop_wh=10_600, stop_time_s=1_300.0, reason="ev-stop")
    with pytest.raises(SessionClosed):
        journal.checkpoint("s1", 10_700, 1_400.0, force=True)


def test_policy_rejects_nonsense():
    with pytest.raises(InvalidValue, match="interval_s"):
        CheckpointPolicy(interval_s=-1)
    with pytest.raises(InvalidValue, match="min_interval_s"):
        CheckpointPolicy(interval_s=10, min_interval_s=20)


def test_receipt_is_stored_exactly_once(journal):
    start(journal)
    with pytest.raises(InvalidValue, match="still open"):
        journal.store_receipt("s1", b"early")
    rec = journal.stop_session("s1", stop_wh=10_500, stop_time_s=1_100.0, reason="ev-stop")
    assert journal.store_receipt("s1", receipt_of(rec), deliver_to="receipts") is True
    assert journal.store_receipt("s1", receipt_of(rec), deliver_to="receipts") is False
    with pytest.raises(ReceiptConflict):
        journal.store_receipt("s1", b"something else")
    with pytest.raises(UnknownSession):
        journal.store_receipt("ghost", b"x")
    assert journal.receipt("s1") == receipt_of(rec)
    assert [(m.topic, m.key, m.payload) for m in journal.due(2_000.0)] == [
        ("receipts", "receipt:s1", receipt_of(rec))]


def test_outbox_due_ack_retry_and_dedup_survive_reopen(path, clock):
    with Journal.open(path, clock=clock) as j:
        a = j.enqueue("status", b"a")
        b = j.enqueue("status", "b", key="k-b")
        assert j.enqueue("status", b"b-again", key="k-b") == b
        later = j.enqueue("status", b"later", deliver_after=5_000.0)
        assert [m.id for m in j.due(1_000.0)] == [a, b]
        assert [m.id for m in j.due(1_000.0, limit=1)] == [a]
        assert j.retry(a, 1_500.0) == 1
        assert j.retry(a, 1_600.0) == 2
    with Journal.open(path, clock=clock) as j:
        assert [m.id for m in j.due(1_000.0)] == [b]
        due = j.due(5_000.0)
        assert [(m.id, m.attempts, m.payload) for m in due] == [(b, 0, b"b"), (a, 2, b"a"), (later, 0, b"later")]
        assert j.ack(a) is True
        assert j.ack(a) is False  # a redelivery acked again is fine
        with pytest.raises(JournalError, match="already acked"):
            j.retry(a, 9_000.0)
        with pytest.raises(UnknownMessage):
            j.ack(999)
        assert j.pending_count() == 2
        # The key stays reserved after the ack: the same logical message is not sent twice.
        j.ack(b)
        assert j.enqueue("status", b"b", key="k-b") == b
        assert [m.id for m in j.due(9_000.0)] == [later]


def test_outbox_rejects_bad_input(journal):
    with pytest.raises(InvalidValue, match="payload"):
        journal.enqueue("status", {"not": "bytes"})
    with pytest.raises(InvalidValue, match="topic"):
        journal.enqueue("", b"x")
    with pytest.raises(InvalidValue, match="limit"):
        journal.due(0.0, limit=0)
    assert journal.pending_count() == 0


def test_reconcile_closes_open_sessions_at_the_meter_reading_and_receipts_once(path, clock):
    with Journal.open(path, clock=clock) as j:
        start(j, "done", start_wh=1_000)
        j.stop_session("done", stop_wh=1_500, stop_time_s=1_050.0, reason="ev-stop")  # crashed before receipt
        start(j, "open", start_wh=1_500, start_time_s=1_100.0)
        j.checkpoint("open", 1_800, 1_200.0, force=True)
    made = []

    def make(record):
        made.append(record.session_id)
        return receipt_of(record)

    with Journal.open(path, clock=clock) as j:
        closed = j.reconcile(2_000, 3_000.0, make_receipt=make, receipt_topic="receipts")
        assert [(s.session_id, s.stop_wh, s.energy_wh, s.stop_reason, s.has_receipt) for s in closed] == [
            ("open", 2_000, 500, "recovered", True)]
        assert sorted(made) == ["done", "open"]
        assert j.reconcile(2_000, 3_100.0, make_receipt=make, receipt_topic="receipts") == []
        assert sorted(made) == ["done", "open"]
        assert {m.key for m in j.due(4_000.0)} == {"receipt:done", "receipt:open"}
        assert json.loads(j.receipt("open")) == {"id": "open", "energy_wh": 500}


@pytest.mark.parametrize("meter_wh, serial, stop_wh, reason", [
    (1_700, "EM-1", 1_800, "recovered-meter-regressed"),   # below the last checkpoint
    (50, "EM-2", 1_800, "recovered-meter-replaced"),
    (1_800, None, 1_800, "recovered"),
])
def test_reconcile_never_invents_or_drops_energy_when_the_meter_disagrees(journal, meter_wh, serial, stop_wh, reason):
    start(journal, start_wh=1_500)
    journal.checkpoint("s1", 1_800, 1_200.0, force=True)
    [closed] = journal.reconcile(meter_wh, 900.0, meter_serial=serial)
    assert (closed.stop_wh, closed.stop_reason) == (stop_wh, reason)
    assert closed.stop_time_s == 1_200.0  # a clock set back at boot does not end before the evidence


def test_reconcile_keeps_receipts_made_before_one_fails(journal):
    for n in range(3):
        start(journal, f"s{n}", start_wh=n * 100, start_time_s=float(n))
        journal.stop_session(f"s{n}", stop_wh=n * 100 + 50, stop_time_s=n + 0.5, reason="ev-stop")

    def make(record):
        if record.session_id == "s1":
            raise RuntimeError("signing key unavailable")
        return receipt_of(record)

    with pytest.raises(JournalError, match="s1.*signing key unavailable") as info:
        journal.reconcile(1_000, 10.0, make_receipt=make)
    assert info.value.details["session_id"] == "s1"
    assert journal.receipt("s0") is not None and journal.receipt("s1") is None
    journal.reconcile(1_000, 11.0, make_receipt=receipt_of)
    assert all(s.has_receipt for s in journal.sessions())


def test_sessions_listing_by_start_time(journal):
    for n, t in enumerate([30.0, 10.0, 20.0]):
        start(journal, f"s{n}", start_wh=n, start_time_s=t)
    assert [s.session_id for s in journal.sessions()] == ["s1", "s2", "s0"]
    assert [s.session_id for s in journal.sessions(since=20.0)] == ["s2", "s0"]
    assert [s.session_id for s in journal.sessions(limit=1)] == ["s1"]
    assert [s.session_id for s in journal.open_sessions()] == ["s0", "s1", "s2"]
    with pytest.raises(InvalidValue):
        journal.sessions(limit=0)


def test_prune_forgets_only_finished_history(journal, clock):
    start(journal, start_wh=0, start_time_s=0.0)
    journal.checkpoint("s1", 10, 60.0, force=True)
    rec = journal.stop_session("s1", stop_wh=20, stop_time_s=100.0, reason="ev-stop")
    journal.store_receipt("s1", receipt_of(rec), deliver_to="receipts")
    keep = journal.enqueue("status", b"pending")
    [sent] = [m.id for m in journal.due(clock()) if m.key == "receipt:s1"]
    journal.ack(sent)
    clock.now_s = 10_000.0
    assert journal.prune(before_s=5_000.0) == {"messages": 1, "checkpoints": 1}
    assert journal.session("s1").energy_wh == 20 and journal.receipt("s1") is not None
    assert [m.id for m in journal.due(20_000.0)] == [keep]


def test_newer_schema_is_refused(path, clock):
    Journal.open(path, clock=clock).close()
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version={SCHEMA_VERSION + 1}")
    conn.close()
    with pytest.raises(SchemaError, match=f"schema version {SCHEMA_VERSION + 1}"):
        Journal.open(path, clock=clock)


def test_migration_hook_upgrades_in_place(path, clock):
    with Journal.open(path, clock=clock) as j:
        start(j)

    def add_column(conn):
        conn.execute("ALTER TABLE sessions ADD COLUMN vehicle_id TEXT")

    with Journal.open(path, clock=clock, migrations={SCHEMA_VERSION: add_column}) as j:
        assert j.schema_version == SCHEMA_VERSION + 1
        assert j.session("s1").start_wh == 10_000
        assert "vehicle_id" in [r[1] for r in j._conn.execute("PRAGMA table_info(sessions)")]


def test_failed_migration_leaves_the_file_untouched(path, clock):
    with Journal.open(path, clock=clock) as j:
        start(j)

    def broken(conn):
        conn.execute("ALTER TABLE sessions ADD COLUMN half TEXT")
        raise RuntimeError("disk full halfway")

    with pytest.raises(RuntimeError):
        Journal.open(path, clock=clock, migrations={SCHEMA_VERSION: broken})
    with Journal.open(path, clock=clock) as j:
        assert j.schema_version == SCHEMA_VERSION
        assert "half" not in [r[1] for r in j._conn.execute("PRAGMA table_info(sessions)")]


def test_not_a_journal_and_second_opener_are_refused(path, tmp_path, clock):
    garbage = tmp_path / "garbage.db"
    garbage.write_bytes(b"this is not sqlite" * 300)
    with pytest.raises(StorageError, match="garbage.db"):
        Journal.open(garbage, clock=clock)
    with Journal.open(path, clock=clock):
        with pytest.raises(StorageError, match="journal.db is held by another process"):
            Journal.open(path, clock=clock, busy_timeout_s=0)


def test_closed_journal_says_so(path, clock):
    j = Journal.open(path, clock=clock)
    j.close()
    with pytest.raises(JournalError, match="closed"):
        j.open_sessions()


def test_a_charging_hour_at_the_default_policy_writes_little(tmp_path):
    """Flash wear budget: 3600 readings at 7.4 kW must stay far below 500 KB of journal writes."""
    db = tmp_path / "hour.db"
    clock = Clock(0.0)
    with Journal.open(db, clock=clock) as j:
        base_bytes = db.stat().st_size + (tmp_path / "hour.db-wal").stat().st_size
        commits = j.commits
        start(j, "hour", start_wh=0, start_time_s=0.0)
        written = sum(j.checkpoint("hour", round(7_400 * t / 3_600, 1), float(t)) for t in range(1, 3_601))
        j.stop_session("hour", stop_wh=7_400, stop_time_s=3_600.0, reason="ev-stop")
        grown = db.stat().st_size + (tmp_path / "hour.db-wal").stat().st_size - base_bytes
        assert written == 60
        assert j.commits - commits == 62
        assert grown < 100_000, grown


def test_policy_from_config_names_file_and_key():
    from drivers.configfile import ConfigError, Section

    section = Section({"checkpoint_interval_s": 120, "checkpoint_step_wh": 1_000}, "agent.toml", "journal")
    policy = CheckpointPolicy.from_section(section)
    section.finish()
    assert (policy.interval_s, policy.step_wh, policy.min_interval_s) == (120.0, 1_000.0, 15.0)
    bad = Section({"checkpoint_interval_s": 30, "checkpoint_min_interval_s": 45}, "agent.toml", "journal")
    with pytest.raises(ConfigError) as info:
        CheckpointPolicy.from_section(bad)
    assert "agent.toml" in str(info.value) and "journal.checkpoint_min_interval_s" in str(info.value)


def test_due_keeps_bindings_to_their_own_topics(tmp_path):
    """Regression: the MQTT link and the OCPI pusher share one outbox; neither may take the other's."""
    j = Journal.open(tmp_path / "j.sqlite", clock=lambda: 100.0)
    try:
        j.enqueue("urja/v1/inbox/app-1", b"m")
        j.enqueue("ocpi/push", b"o")
        assert [e.topic for e in j.due(200, topic_prefix="urja/v1/")] == ["urja/v1/inbox/app-1"]
        assert [e.topic for e in j.due(200, topic_prefix="ocpi/")] == ["ocpi/push"]
        assert len(j.due(200)) == 2
    finally:
        j.close()
