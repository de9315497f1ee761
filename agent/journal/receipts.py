"""Receipts, stored exactly once, and reconciliation after a crash.

A receipt and its delivery (and the priced detail it was made from) are written in one
transaction, so a receipt is never stored without being sent nor sent without being stored;
``reconcile`` closes what a crash left open and issues the receipts a crash prevented.
"""
from __future__ import annotations

from typing import Callable

from agent.journal.errors import InvalidValue, JournalError, ReceiptConflict, UnknownSession
from agent.journal.records import SessionRecord
from agent.journal.values import payload_bytes, require_number, require_text


class JournalReceipts:
    """Receipt and reconciliation calls of ``Journal`` (a mixin: it uses the journal's
    connection, write transaction, session reads and outbox)."""

    def store_receipt(self, session_id: str, receipt, *, deliver_to: str | None = None,
                      deliver_after_s: float | None = None, cost_detail: str | None = None) -> bool:
        """Store the session's receipt once; True if stored now, False if the same one was already.

        With ``deliver_to`` its delivery is queued in the same transaction (key
        ``receipt:<session_id>``), so a receipt is never stored without being sent nor sent
        without being stored. ``cost_detail`` (JSON text: the priced breakdown and periods the
        receipt was made from) is kept in the same transaction too (``cost_detail()``).
        """
        blob = payload_bytes("receipt", receipt)
        require_text("deliver_to", deliver_to, optional=True)
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
                  meter_serial: str | None = None, receipt_topic: str | None = None,
                  connector_id: int | None = None) -> list[SessionRecord]:
        """Close every session a crash left open, issue missing receipts; return the sessions closed now.

        Each open session is closed at ``meter_wh_now`` (the relay was forced open before this
        call, so no energy has flowed since the crash). If the meter now reads below what the
        journal already recorded, or ``meter_serial`` differs from the session's (the meter was
        replaced), the session is closed at its last durable reading instead, with a reason
        that says so: energy is neither invented nor silently dropped. Then every closed
        session without a receipt gets one from ``make_receipt`` (stored exactly once, queued
        to ``receipt_topic`` when given). Outbox entries are left queued: ``due()`` returns
        them until they are acked. With ``connector_id`` only that connector's sessions are closed
        (each connector has its own meter, so another's register says nothing of them).
        """
        require_number("meter_wh_now", meter_wh_now, minimum=0)
        require_number("now_s", now_s)
        require_text("meter_serial", meter_serial, optional=True)

        def close_all(conn):
            closed = []
            for record in self.open_sessions():
                if connector_id is not None and record.connector_id != connector_id:
                    continue
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
                      AND NOT EXISTS (SELECT 1 FROM clock_holds h WHERE h.session_id = s.session_id)
                    ORDER BY s.seq LIMIT ?""", (batch,)).fetchall()
            if not rows:
                return
            made = []
            failure = None
            for row in rows:
                record = self._record(row)
                try:
                    made.append((record.session_id, payload_bytes("receipt", make_receipt(record))))
                except Exception as exc:  # keep the receipts already made, then report which failed
                    failure = (record.session_id, exc)
                    break
            now_s = self._clock()

            def work(conn, made=made, now_s=now_s):  # bound now: defined anew each round
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
