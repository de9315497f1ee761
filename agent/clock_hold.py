"""Receipts that wait for a synchronised clock, and their times fixed up once it is.

A part of ``agent.runtime.Runtime`` (a mixin sharing its state). While the clock is not
trusted the charger still charges free vend and allow-listed cards, but a receipt dated by that
clock would state a time that is not true (and every verifier would refuse its certificate's
dates). So such a session ends at once with its stop reading journaled, but its receipt is
held: its times are kept as the monotonic clock read them (``agent.journal.clock_holds``).
When the clock is synchronised, each held session's times become the synchronised wall time
less the monotonic time elapsed since, it is priced from those true times (one period: the
live pricer saw the wrong ones) and only then is its receipt signed and sent. A hold from an
earlier boot, or a session a crash closed at a time nobody measured, cannot be dated: its
receipt stays unsigned and the log and ``health()`` say so.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

from agent.billing import _cost_detail
from agent.service import ReceiptSigned

log = logging.getLogger("urja.runtime")

BOOT_ID_PATH = Path("/proc/sys/kernel/random/boot_id")


def read_boot_id(path: Path = BOOT_ID_PATH) -> str:
    """This boot's id (the monotonic clock counts from it); "unknown" where the kernel has none."""
    try:
        return path.read_text(encoding="ascii").strip() or "unknown"
    except (OSError, UnicodeDecodeError):
        return "unknown"


class RuntimeClockHold:
    """Holding and releasing receipts for ``Runtime``."""

    boot_id: str | None = None  # read once; a test may set another boot

    def _boot(self) -> str:
        if self.boot_id is None:
            self.boot_id = read_boot_id()
        return self.boot_id

    def _hold_start(self, sid: str) -> None:
        """A session starting on an untrusted clock: its start is taken monotonic too."""
        if self.clock_trusted:
            return
        self.journal.hold_times(sid, boot_id=self._boot(), start_mono_s=self.clock.monotonic_s(),
                                now_s=self.clock.wall_s())
        log.warning("session %s starts while the clock is not trusted (%s): its receipt waits for the clock",
                    sid, self.clock_reason)

    def _receipt_held(self, sid: str) -> bool:
        return not self.clock_trusted or bool(self.journal.held(sid))

    def _held_stop_time_s(self, sid: str, now_s: float) -> float:
        """The journaled stop of a held session: not before its start (the clock may have been
        stepped back since); the true time replaces it once it is known."""
        return max(now_s, self.journal.session(sid).start_time_s)

    def _hold_end(self, sid: str, rec, reason) -> None:
        """The session is over, its receipt held; signed now if the clock is already trusted."""
        self.journal.hold_times(sid, boot_id=self._boot(), stop_mono_s=self.clock.monotonic_s(),
                                now_s=self.clock.wall_s())
        self._update_view(sid, final=True)
        self._prune_views()
        log.warning("session %s ended: %s Wh, reason %s; its receipt is held until the clock is synchronised",
                    sid, rec.energy_wh, reason)
        self._release_held()

    def held_receipts(self) -> int:
        """Finished sessions whose receipts wait for a synchronised clock."""
        return sum(1 for rec in self._held_records() if rec.stop_wh is not None)

    def _held_records(self):
        """This connector's held sessions (a site's connectors share one journal)."""
        for held in self.journal.held():
            rec = self.journal.session(held.session_id)
            if rec.connector_id == int(self.connector_id):
                yield rec

    def _release_held(self) -> None:
        """Sign every held receipt whose times can now be made true."""
        if not self.clock_trusted:
            return
        for held in self.journal.held():
            sid = held.session_id
            rec = self.journal.session(sid)
            if rec.connector_id != int(self.connector_id) or rec.stop_wh is None:
                continue  # another connector's, or still charging: released at its end
            if rec.has_receipt:  # signed before a crash could release it
                self.journal.release(sid)
                continue
            if held.boot_id != self._boot() or held.stop_mono_s is None:
                log.error("session %s: its times were taken on an unsynchronised clock %s; they cannot be made "
                          "true, so its receipt is not signed", sid,
                          "in an earlier boot" if held.boot_id != self._boot() else "and it was closed after a crash")
                continue
            self._sign_held(sid, rec, held)

    def _sign_held(self, sid: str, rec, held) -> None:
        now_s, now_mono_s = self.clock.wall_s(), self.clock.monotonic_s()
        start_s = rec.start_time_s if held.start_mono_s is None else now_s - (now_mono_s - held.start_mono_s)
        stop_s = now_s - (now_mono_s - held.stop_mono_s)
        self.journal.fix_times(sid, start_time_s=start_s, stop_time_s=stop_s)
        rec = self.journal.session(sid)
        self._meta.pop(sid, None)  # its live pricer saw the untrusted times
        cost, periods = self._priced(rec, None)
        receipt = self._receipt_for_record(rec, cost, periods)
        self.journal.store_receipt(sid, receipt, cost_detail=_cost_detail(cost, periods))
        self.journal.release(sid)
        view = self._views[sid] = self._view_from_record(rec)
        self._notify("session", view)
        log.info("session %s: times fixed up on the synchronised clock (%.0f s to %.0f s), receipt signed",
                 sid, rec.start_time_s, rec.stop_time_s)
        self._notify("receipt", ReceiptSigned(sid, json.loads(receipt)))
