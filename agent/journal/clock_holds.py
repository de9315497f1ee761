"""Sessions whose times wait for a synchronised clock: the monotonic times they were taken at.

A session that starts or ends while the system clock is not trusted has wall times that may be
days or years off, and a receipt must never state them. Its times are kept here as the
monotonic clock read them (that clock runs true from boot whatever the wall clock does), with
the boot they belong to; once the wall clock is synchronised the runtime turns them into true
times (the synchronised wall time less the monotonic time elapsed since), writes them into the
session and only then signs its receipt. A held session gets no receipt from ``reconcile``.
"""
from __future__ import annotations

from dataclasses import dataclass

from agent.journal.values import require_number, require_text


@dataclass(frozen=True)
class HeldTimes:
    """``start_mono_s`` None: the start was taken on a trusted clock and is true as journaled.
    ``stop_mono_s`` None: the session was closed after a crash, at a time nobody measured."""

    session_id: str
    boot_id: str
    start_mono_s: float | None
    stop_mono_s: float | None
    held_s: float


class JournalClockHolds:
    """Hold calls of ``Journal`` (a mixin over its connection and write transaction)."""

    def hold_times(self, session_id: str, *, boot_id: str, start_mono_s: float | None = None,
                   stop_mono_s: float | None = None, now_s: float) -> None:
        """Hold the session's receipt; a later call for the same session adds its stop."""
        require_text("boot_id", boot_id)
        require_number("now_s", now_s)
        for name, value in (("start_mono_s", start_mono_s), ("stop_mono_s", stop_mono_s)):
            if value is not None:
                require_number(name, value)
        self._write(lambda c: c.execute(
            """INSERT INTO clock_holds (session_id, boot_id, start_mono_s, stop_mono_s, held_s)
               VALUES (?, ?, ?, ?, ?)
               ON CONFLICT(session_id) DO UPDATE SET stop_mono_s = excluded.stop_mono_s""",
            (session_id, boot_id, start_mono_s, stop_mono_s, now_s)))

    def held(self, session_id: str | None = None) -> list[HeldTimes]:
        """Held sessions (all, or the one), oldest first."""
        rows = self._db().execute(
            "SELECT session_id, boot_id, start_mono_s, stop_mono_s, held_s FROM clock_holds "
            "WHERE ? IS NULL OR session_id = ? ORDER BY held_s, rowid", (session_id, session_id)).fetchall()
        return [HeldTimes(*row) for row in rows]

    def fix_times(self, session_id: str, *, start_time_s: float, stop_time_s: float) -> None:
        """Write a held session's true times (its checkpoints move with its start)."""
        require_number("start_time_s", start_time_s)
        require_number("stop_time_s", stop_time_s)

        def work(conn):
            (old_start_s,) = conn.execute("SELECT start_time_s FROM sessions WHERE session_id = ?",
                                          (session_id,)).fetchone()
            conn.execute("UPDATE sessions SET start_time_s = ?, stop_time_s = ? WHERE session_id = ?",
                         (start_time_s, max(start_time_s, stop_time_s), session_id))
            # Through negative times: moving row by row in place could meet a neighbour's key.
            conn.execute("UPDATE checkpoints SET time_s = -(time_s + ?) WHERE session_id = ?",
                         (start_time_s - old_start_s, session_id))
            conn.execute("UPDATE checkpoints SET time_s = -time_s WHERE session_id = ? AND time_s < 0",
                         (session_id,))

        self._write(work)

    def release(self, session_id: str) -> None:
        """The session's receipt is signed with true times: it is held no more."""
        self._write(lambda c: c.execute("DELETE FROM clock_holds WHERE session_id = ?", (session_id,)))
