"""Sessions and their meter checkpoints: the durable start, progress and stop of each charge.

Billed energy is always ``stop_wh - start_wh``, two readings that are each durable before the
relay moves (``agent.journal``'s contract, points 2 to 4); checkpoints are evidence of progress
and the fallback when the meter is replaced or goes backwards.
"""
from __future__ import annotations

import json

from agent.journal.errors import InvalidValue, SessionClosed, SessionExists, UnknownSession
from agent.journal.records import SessionRecord
from agent.journal.values import require_number, require_text


class JournalSessions:
    """Session and checkpoint calls of ``Journal`` (a mixin: it uses the journal's connection,
    write transaction and last-checkpoint cache)."""

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

    def start_session(self, session_id: str, *, connector_id: int, auth: dict, start_wh, start_time_s,
                      meter_serial: str, tariff_id: str | None = None) -> SessionRecord:
        require_text("session_id", session_id)
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
        require_number("start_wh", start_wh, minimum=0)
        require_number("start_time_s", start_time_s)
        require_text("meter_serial", meter_serial)
        require_text("tariff_id", tariff_id, optional=True)

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
        require_number("energy_wh", energy_wh, minimum=0)
        require_number("time_s", time_s)
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
        require_number("stop_wh", stop_wh, minimum=0)
        require_number("stop_time_s", stop_time_s)
        require_text("reason", reason)

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

    def sessions(self, *, since: float | None = None, limit: int = 100,
                 active_since: float | None = None) -> list[SessionRecord]:
        """Sessions started at or after ``since`` (start time, seconds), oldest first; with
        ``active_since``, sessions whose last activity (stop, else last checkpoint, else start)
        is at or after it, which is what "changed since" means to a poller: a session that
        started before its last sync and stopped after it is one it must see."""
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise InvalidValue(f"limit must be a positive integer, got {limit!r}", field="limit", value=limit)
        if since is not None:
            require_number("since", since)
        if active_since is not None:
            require_number("active_since", active_since)
        rows = self._db().execute(
            f"""SELECT {self._SESSION_COLUMNS} FROM sessions s
                WHERE (? IS NULL OR s.start_time_s >= ?)
                  AND (? IS NULL OR COALESCE(s.stop_time_s,
                        (SELECT MAX(time_s) FROM checkpoints c WHERE c.session_id = s.session_id),
                        s.start_time_s) >= ?)
                ORDER BY s.start_time_s, s.seq LIMIT ?""",
            (since, since, active_since, active_since, limit)).fetchall()
        return [self._record(r) for r in rows]

    def checkpoints(self, session_id: str) -> list[tuple[float, float]]:
        """(time_s, energy_wh) pairs written for a session, oldest first."""
        self.session(session_id)
        return [tuple(r) for r in self._db().execute(
            "SELECT time_s, energy_wh FROM checkpoints WHERE session_id = ? ORDER BY time_s", (session_id,))]
