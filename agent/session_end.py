"""How a session ends: the stop reading it is billed to, its receipt, and the end at shutdown.

A part of ``agent.runtime.Runtime`` (a mixin sharing its state). Every ending closes the session
at once, with its receipt: a stop reading that went backwards or jumped, or a charger going
down, must not leave a session open until the next boot (nobody would be told, and the
buyer's money would wait for a reboot).

The stop reading is the last trustworthy one: the meter is read once more after the relay
settled (the core's last reading may predate the relay opening by up to a poll), but never
past a reading before an energy jump, never above a register that went backwards, and never
below the start reading or what the journal already recorded for the session. When that end
read itself shows a fault, the fault is latched here: the meter driver moves its baseline on
after a fault, so the next poll would not see it again.
"""
from __future__ import annotations

import asyncio
import json
import logging

from agent.billing import _cost_detail
from agent.core.errors import AgentError
from agent.core.session import Fault, StopRequested
from agent.service import ReceiptSigned

log = logging.getLogger("urja.runtime")
meter_log = logging.getLogger("urja.meter")

# How long a shutdown waits for the sessions to close before it opens the relay regardless.
END_AT_SHUTDOWN_S = 10.0


class RuntimeSessionEnd:
    """Session endings for ``Runtime``."""

    async def end_sessions(self, reason: str = "shutdown") -> None:
        """Close the running session now, with its receipt, even if the car stays plugged in.

        Called at shutdown before the bindings stop, so the buyer is told; no session starts
        after it (a car still plugged in would otherwise be authorized again). Waits for the
        dispatcher to carry the end out; a dispatcher that is gone (or hung) leaves the session
        to the next boot's reconcile, as a crash would.
        """
        self._shutting_down = True
        dispatcher = self._tasks.get("urja-dispatch")
        if self.core.session_id is None or dispatcher is None or dispatcher.done() or self._stopping:
            return
        try:
            await asyncio.wait_for(self.post_and_wait(lambda t: StopRequested(t, reason, finish=True)),
                                   END_AT_SHUTDOWN_S)
        except (AgentError, asyncio.TimeoutError) as exc:
            log.error("session %s could not be closed at shutdown (%r); the next boot closes it",
                      self.core.session_id, exc)

    def _bill_no_further_than(self, energy_wh: int) -> None:
        """The session in progress is billed to at most ``energy_wh`` (a reading a fault made
        untrustworthy lies beyond it)."""
        if self.core.session_id is None:
            return
        if self._bill_until_wh is None or energy_wh < self._bill_until_wh:
            self._bill_until_wh = energy_wh

    async def _end_reading_wh(self, summary: dict, meta) -> int | None:
        """Read the meter after the relay settled; latch a fault the end read shows."""
        from drivers.meter.base import MeterEnergyBackwards, MeterEnergyJump, MeterFault

        await self.board.relay.wait_settled(timeout_ms=2000)
        try:
            reading = await self.board.meter.read()
        except (MeterEnergyBackwards, MeterEnergyJump) as exc:
            meter_log.error("fault %s at the session's stop reading: %s", exc.code, exc)
            bound = exc.details.get("energy_wh" if isinstance(exc, MeterEnergyBackwards) else "previous_wh")
            if isinstance(bound, int):
                self._bill_no_further_than(bound)
            code = "meter_energy_backwards" if isinstance(exc, MeterEnergyBackwards) else "meter_energy_jump"
            self.post(lambda t, c=code, d=str(exc): Fault(c, t, latch=True, detail=d))
        except MeterFault as exc:
            meter_log.warning("stop reading failed (%s); billing from the last good reading", exc.code)
        else:
            self._last_reading = reading
            read_ms = self.clock.monotonic_ms()
            self.post(lambda t, r=reading, m=read_ms: self._reading_event(r, t, m))
            return reading.energy_import_wh
        if self._last_reading is not None:
            return self._last_reading.energy_import_wh
        return summary.get("meter_end_wh")

    def _trustworthy_stop_wh(self, sid: str, read_wh, meta) -> int:
        start_wh = int(meta.start_wh) if meta is not None and meta.start_wh is not None \
            else int(self.journal.session(sid).start_wh)
        stop_wh = start_wh if read_wh is None else int(read_wh)
        bill_until_wh, self._bill_until_wh = self._bill_until_wh, None
        if bill_until_wh is not None and stop_wh > bill_until_wh:
            log.warning("session %s billed to %d Wh, the last trustworthy reading (the meter shows %d Wh)",
                        sid, bill_until_wh, stop_wh)
            stop_wh = bill_until_wh
        # The journal refuses a stop below what it recorded: the start, then its checkpoints.
        floor_wh = max([start_wh] + [int(wh) for _, wh in self.journal.checkpoints(sid)])
        if stop_wh < floor_wh:
            log.warning("session %s: stop reading %d Wh is below the %d Wh already recorded; billed to %d Wh",
                        sid, stop_wh, floor_wh, floor_wh)
            stop_wh = floor_wh
        return stop_wh

    async def _session_ended(self, summary: dict) -> None:
        """Close the session with its last trustworthy reading and store and announce its receipt."""
        sid = summary["session_id"]
        meta = self._meta.get(sid)
        read_wh = await self._end_reading_wh(summary, meta)
        stop_wh = self._trustworthy_stop_wh(sid, read_wh, meta)
        now_s = self.clock.wall_s()
        if meta is not None and meta.pricer is not None:
            try:
                meta.pricer.close(int(now_s), stop_wh)
            except AgentError as exc:
                log.error("session %s: its live price could not be closed at %d Wh: %s", sid, stop_wh, exc)
        held = self._receipt_held(sid)  # a time the clock cannot vouch for is never signed
        rec = self.journal.stop_session(sid, stop_wh=stop_wh, reason=summary.get("reason"),
                                        stop_time_s=self._held_stop_time_s(sid, now_s) if held else now_s)
        if held:
            self._hold_end(sid, rec, summary.get("reason"))
            return
        cost, periods = self._priced(rec, meta)
        receipt = self._receipt_for_record(rec, cost, periods)
        self.journal.store_receipt(sid, receipt, cost_detail=_cost_detail(cost, periods))
        view = self._update_view(sid, final=True)
        self._prune_views()
        log.info("session %s ended: %s Wh, %s %s, reason %s", sid, rec.energy_wh,
                 view.cost.paid_text() if view.cost else "-", self._tariff.currency, summary.get("reason"))
        self._notify("receipt", ReceiptSigned(sid, json.loads(receipt)))
