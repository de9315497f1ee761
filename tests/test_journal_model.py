"""Random call sequences, with restarts in between, against a plain-Python model of the journal.

Each misuse must raise and leave the state as the model says; each accepted call must be
visible after any number of reopenings.
"""
from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from agent.journal import (
    InvalidValue,
    Journal,
    JournalError,
    ReceiptConflict,
    SessionClosed,
    SessionExists,
    UnknownSession,
)

SIDS = st.sampled_from(["a", "b", "c", "d"])
KEYS = st.one_of(st.none(), st.sampled_from(["k1", "k2", "k3"]))


class JournalModel(RuleBasedStateMachine):
    def __init__(self):
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="journal-model-"))
        self.path = self.dir / "j.db"
        self.now_s = 1_000.0
        self.journal = Journal.open(self.path, clock=lambda: self.now_s)
        self.meter_wh = 0
        self.sessions: dict[str, dict] = {}   # sid -> start_wh, last_wh, stop_wh
        self.receipts: dict[str, bytes] = {}
        self.pending: dict[int, str | None] = {}   # id -> key
        self.acked: set[int] = set()
        self.keys: dict[str, int] = {}

    def teardown(self):
        self.journal.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _tick(self):
        self.now_s += 1.0

    @rule(sid=SIDS)
    def start(self, sid):
        self._tick()
        if sid in self.sessions:
            try:
                self.journal.start_session(sid, connector_id=1, auth={}, start_wh=self.meter_wh,
                                           start_time_s=self.now_s, meter_serial="M")
            except SessionExists:
                return
            raise AssertionError("double start accepted")
        self.journal.start_session(sid, connector_id=1, auth={}, start_wh=self.meter_wh,
                                   start_time_s=self.now_s, meter_serial="M")
        self.sessions[sid] = {"start_wh": self.meter_wh, "last_wh": self.meter_wh, "stop_wh": None}

    @rule(sid=SIDS, delta_wh=st.integers(-50, 200), force=st.booleans())
    def checkpoint(self, sid, delta_wh, force):
        self._tick()
        model = self.sessions.get(sid)
        reading = max(0, self.meter_wh + delta_wh)
        try:
            written = self.journal.checkpoint(sid, reading, self.now_s, force=force)
        except UnknownSession:
            assert model is None
            return
        except SessionClosed:
            assert model["stop_wh"] is not None
            return
        except InvalidValue:
            assert reading < model["last_wh"]
            return
        assert model is not None and model["stop_wh"] is None and reading >= model["last_wh"]
        self.meter_wh = max(self.meter_wh, reading)
        assert written or not force
        if written:
            model["last_wh"] = reading

    @rule(sid=SIDS, delta_wh=st.integers(-20, 100))
    def stop(self, sid, delta_wh):
        self._tick()
        model = self.sessions.get(sid)
        reading = max(0, self.meter_wh + delta_wh)
        try:
            self.journal.stop_session(sid, stop_wh=reading, stop_time_s=self.now_s, reason="ev")
        except UnknownSession:
            assert model is None
            return
        except SessionClosed:
            assert model["stop_wh"] is not None
            return
        except InvalidValue:
            assert reading < model["last_wh"]
            return
        assert model["stop_wh"] is None
        model["stop_wh"] = reading
        self.meter_wh = max(self.meter_wh, reading)

    @rule(sid=SIDS, body=st.sampled_from([b"r1", b"r2"]))
    def receipt(self, sid, body):
        model = self.sessions.get(sid)
        try:
            stored = self.journal.store_receipt(sid, body)
        except UnknownSession:
            assert model is None
            return
        except ReceiptConflict:
            assert self.receipts[sid] != body
            return
        except InvalidValue:
            assert model["stop_wh"] is None
            return
        assert stored == (sid not in self.receipts)
        self.receipts[sid] = body

    @rule(key=KEYS)
    def enqueue(self, key):
        message_id = self.journal.enqueue("t", b"p", key=key)
        if key is not None and key in self.keys:
            assert message_id == self.keys[key]
            return
        self.pending[message_id] = key
        if key is not None:
            self.keys[key] = message_id

    @precondition(lambda self: self.pending)
    @rule(data=st.data(), ack=st.booleans())
    def deliver(self, data, ack):
        message_id = data.draw(st.sampled_from(sorted(self.pending)))
        if ack:
            assert self.journal.ack(message_id) is True
            del self.pending[message_id]
            self.acked.add(message_id)
        else:
            self.journal.retry(message_id, self.now_s)

    @precondition(lambda self: self.acked)
    @rule(data=st.data())
    def ack_again(self, data):
        assert self.journal.ack(data.draw(st.sampled_from(sorted(self.acked)))) is False

    @rule()
    def restart(self):
        self.journal.close()
        self.journal = Journal.open(self.path, clock=lambda: self.now_s)

    @rule(extra_wh=st.integers(0, 100))
    def reconcile(self, extra_wh):
        self._tick()
        self.meter_wh += extra_wh
        closed = self.journal.reconcile(self.meter_wh, self.now_s, make_receipt=lambda r: f"auto:{r.session_id}")
        opened = sorted(s for s, m in self.sessions.items() if m["stop_wh"] is None)
        assert sorted(r.session_id for r in closed) == opened
        for sid, model in self.sessions.items():
            if model["stop_wh"] is None:
                model["stop_wh"] = self.meter_wh
            self.receipts.setdefault(sid, f"auto:{sid}".encode())

    @invariant()
    def matches_the_model(self):
        stored = {s.session_id: s for s in self.journal.sessions(limit=100)}
        assert set(stored) == set(self.sessions)
        for sid, model in self.sessions.items():
            assert (stored[sid].start_wh, stored[sid].stop_wh) == (model["start_wh"], model["stop_wh"])
            assert stored[sid].has_receipt == (sid in self.receipts)
            if sid in self.receipts:
                assert self.journal.receipt(sid) == self.receipts[sid]
        assert {m.id for m in self.journal.due(1e12, limit=1000)} == set(self.pending)
        assert self.journal.integrity_check() == ["ok"]


TestJournalModel = JournalModel.TestCase
TestJournalModel.settings = settings(max_examples=40, stateful_step_count=30, deadline=None)


def test_model_machine_catches_a_wrong_model():
    """The machine is not vacuous: a journal that forgot a stop would be caught by the invariant."""
    machine = JournalModel()
    try:
        machine.start("a")
        machine.sessions["a"]["stop_wh"] = 5  # the model believes in a stop the journal never got
        try:
            machine.matches_the_model()
        except AssertionError:
            return
        raise JournalError("invariant accepted a mismatch")
    finally:
        machine.teardown()
