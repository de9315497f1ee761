"""The runtime's meter side: the poll loop, a reading turned into the core's event (with the
live price and the journal's checkpoint), and the readings boot and receipts need.

A mixin of ``agent.runtime.Runtime`` (its state lives there): split out because the meter's
faults, the billing stop they set and the checkpoints are one concern, apart from dispatching
events and executing the core's commands.
"""
from __future__ import annotations

import logging

from agent.core.errors import AgentError
from agent.core.session import Fault, MeterReading

log = logging.getLogger("urja.runtime")
meter_log = logging.getLogger("urja.meter")

PROGRESS_S = 15  # how often a charging session's progress is announced to listeners (clock time)


class RuntimeMetering:
    async def _meter_loop(self) -> None:
        from drivers.meter.base import MeterEnergyBackwards, MeterEnergyJump, MeterFault

        period_s = self.config.meter_poll_ms / 1000
        polls = 0
        while not self._stopping:
            try:
                reading = await self.board.meter.read()
                # When the meter was read, not when the dispatcher gets to it: the weld check
                # must not take a reading from before the relay opened for current after it.
                read_ms = self.clock.monotonic_ms()
            except MeterEnergyBackwards as exc:
                # The register can no longer be billed from above where it went back to.
                meter_log.error("fault %s: %s", exc.code, exc)
                if isinstance(exc.details.get("energy_wh"), int):
                    self._bill_no_further_than(exc.details["energy_wh"])
                self.post(lambda t, d=str(exc): Fault("meter_energy_backwards", t, latch=True, detail=d))
            except MeterEnergyJump as exc:
                # More energy than the measured power explains: the register can no longer be
                # billed from. Stop there (the session is billed up to the reading before the
                # jump) and keep the charger out of service until someone looks at the meter.
                meter_log.error("fault %s: %s", exc.code, exc)
                previous_wh = exc.details.get("previous_wh")
                if isinstance(previous_wh, int):
                    self._bill_no_further_than(previous_wh)
                self.post(lambda t, d=str(exc): Fault("meter_energy_jump", t, latch=True, detail=d))
            except MeterFault as exc:
                meter_log.warning("fault %s: %s (health: %s)", exc.code, exc, self.board.meter.health)
            else:
                self._last_reading = reading
                if self._reconcile_pending:
                    # before this reading reaches the core: no new session can have begun
                    # (the gate closes nothing without a valid reading)
                    self._reconcile_pending = False
                    try:
                        self._reconcile_with(reading, notify=True)
                    except AgentError as exc:
                        log.error("unfinished sessions could not be closed: %s", exc)
                self._post_contact()  # the contact as of this reading's turn, not the last tick's
                self.post(lambda t, r=reading, m=read_ms: self._reading_event(r, t, m))
                polls += 1
                # One line a minute while idle, every ten seconds while charging (simulated time).
                every = 10 if self.core.state == "charging" else 60
                if (polls - 1) % max(1, int(every / period_s)) == 0:
                    meter_log.info("energy_wh=%d power_w=%.0f current_a=%s voltage_v=%s frequency_hz=%s quality=%s",
                                   reading.energy_import_wh, reading.power_w,
                                   "/".join(f"{a:.1f}" for a in reading.current_a),
                                   "/".join(f"{v:.0f}" for v in reading.voltage_v),
                                   None if reading.frequency_hz is None else f"{reading.frequency_hz:.2f}",
                                   ",".join(sorted(reading.quality)))
            await self.clock.sleep(period_s)

    def _reading_event(self, reading, time_ms: int, read_ms: int | None = None):
        sid = self.core.session_id
        meta = self._meta.get(sid) if sid else None
        if meta is not None and meta.pricer is not None and self._bill_until_wh is None:  # no pricing past a jump
            now_s = self.clock.wall_s()
            charging = self.core.state == "charging" and reading.power_w > 1
            try:
                meta.pricer.reading(int(now_s), reading.energy_import_wh, power_w=int(reading.power_w),
                                    # OCPI min/max_current restrict the sum over phases
                                    current_ma=int(sum(reading.current_a) * 1000), charging=charging)
            except AgentError as exc:
                log.warning("pricer refused reading: %s", exc)
            try:
                self.journal.checkpoint(sid, reading.energy_import_wh, now_s)
            except AgentError as exc:
                # Energy the journal cannot record must not be sold: stop now, and stay out of
                # order (the latch goes to the slot kept for a full disk) until a local reset.
                log.critical("checkpoint not written: %s; stopping the session, the charger is out of order "
                             "until the journal's file system has room and a local reset", exc)
                if self.safety.latched_fault is None:
                    self.post(lambda t, d=str(exc): Fault("journal_unwritable", t, latch=True, detail=d))
            # Progress for status pages and eMSPs, at a pace that does not flood them.
            if now_s - self._progress_s >= PROGRESS_S:
                self._progress_s = now_s
                self._update_view(sid)
        return MeterReading(time_ms, reading.energy_import_wh, float(reading.power_w), tuple(reading.current_a),
                            read_ms=None if read_ms is None else min(read_ms, time_ms))

    async def _read_meter_for_boot(self):
        from drivers.meter.base import MeterFault

        for _ in range(3):
            try:
                reading = await self.board.meter.read()
                self._last_reading = reading
                return reading
            except MeterFault as exc:
                meter_log.warning("boot read failed: %s: %s", exc.code, exc)
        return None

    def _meter_serial(self) -> str:
        if self._last_reading is not None and self._last_reading.serial:
            return self._last_reading.serial
        return getattr(self.board.meter, "serial", None) or "unknown"
