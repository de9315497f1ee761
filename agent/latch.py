"""Latched faults that outlive restarts and clear only by a local reset.

A part of ``agent.runtime.Runtime`` (a mixin sharing its state). A latched fault is recorded
in ``agent.journal.FaultStore`` (a small file beside the journal) and latched again at boot
before anything can close the relay, so a reboot or power cut is no way around a welded
contactor. ``urja fault reset`` at the charger writes the clearing to that file; the running
agent, checking it about once a second while a fault is latched, then asks the gate to clear
(which it refuses while the condition is still there).
"""
from __future__ import annotations

import asyncio
import logging
import time

from agent.core.errors import AgentError
from agent.core.safety import FaultPersists
from agent.core.session import Fault

log = logging.getLogger("urja.runtime")

FAULT_CHECK_S = 1.0  # how often (real time) a latched fault's record is checked for a local reset


class RuntimeLatch:
    """Durable latches and the local reset that clears them."""

    def _journal_space_low(self, detail: str) -> None:
        """The journal's file system is full and it now writes on its reserve: the session in
        progress ends at once (its end and receipt go in that room) and nothing more is sold."""
        log.critical("the journal's file system is full: the session in progress ends now with its receipt; the "
                     "charger is out of order until the file system has room and a local reset")
        if self.safety.latched_fault is None:
            self.post(lambda t, d=detail: Fault("journal_unwritable", t, latch=True, detail=f"file system full: {d}"))

    async def _restore_latch(self) -> None:
        """Latch again a fault recorded before the restart and never cleared by a local reset.

        Runs right after the boot open, before the meter, the pilot or any task can ask for
        power: a reboot or a power cut must not be a way around a welded contactor.
        """
        if self.faults is None:
            return
        recorded = self.faults.latched()
        if recorded is None:
            return
        log.error("fault %s latched at %s is still recorded (%s): the charger stays out of order until a "
                  "local reset at the charger (urja fault reset)", recorded.code, _utc(recorded.latched_s),
                  recorded.detail)
        self._latch_record_id = recorded.id
        event = Fault(recorded.code, self._now_ms(), latch=True, detail=recorded.detail)
        for cmd in self.safety.handle(event):
            await self._execute(cmd)

    async def _fault_reset_loop(self) -> None:
        """Take a local reset that ``urja fault reset`` wrote to the fault file.

        Kept off the safety tick: one indexed read a second, and only while a fault is latched.
        """
        while True:
            await asyncio.sleep(FAULT_CHECK_S)
            if self.safety.latched_fault is None:
                continue
            try:
                await self._check_fault_record()
            except AgentError as exc:  # the file is unreadable or full: the latch stays, as it must
                log.error("latched fault %s: %s", self.safety.latched_fault, exc)

    async def _check_fault_record(self) -> None:
        code = self.safety.latched_fault
        detail = self.safety.latched_detail or code
        if self._latch_record_id is None:
            # Latched but not recorded (the write failed, or is still on its way): record it now,
            # so that it survives a power cut and a local reset can reach it.
            self._latch_record_id = self.faults.latch(code, detail, self.clock.wall_s()).id
            return
        recorded = self.faults.fault(self._latch_record_id)
        if recorded is not None and recorded.is_latched:
            return
        if recorded is None:
            self._latch_record_id = self.faults.latch(code, detail, self.clock.wall_s()).id
            return
        log.warning("local reset of fault %s recorded at %s (%s): clearing the latch", code,
                    _utc(recorded.cleared_s), recorded.cleared_by)
        try:
            await self.local_reset()
        except FaultPersists as exc:
            log.error("%s: the fault stays latched", exc)
            self._latch_record_id = self.faults.latch(code, f"{detail}; {exc}", self.clock.wall_s()).id

    def _record_latch(self, code: str, detail: str) -> None:
        """Make the gate's latch durable before anything else happens (the relay is already open)."""
        if self.faults is not None:
            self._latch_record_id = self.faults.latch(code, detail, self.clock.wall_s()).id
        # Out of order from now, not only once the session's end has been carried out.
        self._refresh_connector()

    def _record_clearing(self, code: str) -> None:
        """The gate cleared on a local reset; the record follows (``urja fault reset`` may have cleared it first)."""
        if self.faults is not None:
            self.faults.clear(self.clock.wall_s(), by="local reset")
        self._latch_record_id = None
        log.warning("fault %s cleared by a local reset", code)


def _utc(time_s: float | None) -> str:
    if time_s is None:
        return "-"
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time_s))
