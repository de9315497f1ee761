"""The site's own upkeep through the facade: a new tariff, the latched fault, a reset, health.

A part of ``agent.runtime.Runtime`` (a mixin sharing its state). The owner's page reaches the
charger only through these, like any binding: it never decides safety. A reset from the page is
the same local reset ``urja fault reset`` asks for, judged by the gate.
"""
from __future__ import annotations

import logging

from agent.core.safety import FaultPersists
from agent.core.tariff import Tariff
from agent.service import ClockView, FaultView, HealthView, SelfTestCheck, ServiceError
from agent.tariff_file import tariff_digest

log = logging.getLogger("urja.runtime")


class RuntimeUpkeep:
    """Tariff changes, fault reset and health for the site's own people."""

    def set_tariff(self, tariff: dict) -> None:
        parsed = Tariff(tariff)  # a TariffError leaves the old tariff in place
        self._tariff_dict = tariff
        self._tariff = parsed
        self._tariff_digest = tariff_digest(tariff)
        log.info("tariff %s in force for new sessions", tariff.get("id"))
        self._notify("tariff", tariff)

    def latched_fault(self) -> FaultView | None:
        code = self.safety.latched_fault
        if code is None:
            return None
        recorded = self.faults.latched() if self.faults is not None else None
        if recorded is not None:
            return FaultView(code=code, detail=recorded.detail, latched_s=recorded.latched_s)
        return FaultView(code=code, detail=self.safety.latched_detail or code, latched_s=None)

    async def reset_fault(self, *, by: str) -> None:
        if self.safety.latched_fault is None:
            return
        try:
            await self.local_reset()
        except FaultPersists as exc:
            raise ServiceError(str(exc), code=ServiceError.INOPERATIVE) from None
        log.warning("fault reset by %s", by)

    def health(self) -> list[HealthView]:
        out = []
        meter = getattr(self.board.meter, "health", None)
        if meter is not None:
            out.append(HealthView(part="meter", ok=bool(getattr(meter, "healthy", True)),
                                  detail=f"{getattr(meter, 'consecutive_failures', 0)} failures in a row"))
        relay = self.board.relay
        feedback = getattr(relay, "feedback", None)
        out.append(HealthView(part="relay", ok=self.safety.latched_fault is None,
                              detail=("closed" if relay.closed else "open")
                              + ("" if feedback is None else f", mirror contact {'closed' if feedback else 'open'}")))
        pilot = self.core.pilot if getattr(self.board.pilot, "has_pilot", False) else None
        out.append(HealthView(part="pilot", ok=None if pilot is None else pilot not in ("E", "F"),
                              detail="no pilot (socket outlet)" if pilot is None else f"state {pilot}"))
        clock = self.clock_status()
        held = f"; {clock.held_receipts} receipts held until it is synchronised" if clock.held_receipts else ""
        speed = "" if self.clock.speed == 1 else f"; simulated at {self.clock.speed:g}x"
        out.append(HealthView(part="clock", ok=clock.trusted, detail=f"{clock.reason}{held}{speed}"))
        for table, binding in self.bindings.items():
            check = getattr(binding, "healthy", None)
            # a binding that cannot say how it is, is shown running, not well
            out.append(HealthView(part=table, ok=check() if callable(check) else None,
                                  detail=binding.describe()))
        return out

    def check_selftest_allowed(self, connector_id: str | None = None) -> None:
        """Refusals of the self-test, before anything is touched."""
        if connector_id not in (None, self.connector_id):
            raise ServiceError(f"unknown connector {connector_id!r}", code=ServiceError.UNKNOWN_CONNECTOR)
        if getattr(self, "_selftest_running", False):
            raise ServiceError("the self-test is already running", code=ServiceError.OCCUPIED)
        if self.core.busy or self._reservation is not None:
            raise ServiceError(f"connector {self.connector_id} is in use; the self-test runs when it is free",
                               code=ServiceError.OCCUPIED)
        if self._shutting_down:
            raise ServiceError("the charger is shutting down", code=ServiceError.INOPERATIVE)

    async def run_selftest(self, *, by: str, connector_id: str | None = None) -> list[SelfTestCheck]:
        from board.selftest import passed, run_running_checks

        self.check_selftest_allowed(connector_id)
        self._selftest_running = True  # ``_check_startable`` refuses starts meanwhile
        try:
            results = await run_running_checks(self.board, read_meter=self._next_reading,
                                               relay_lock=self._relay_lock,
                                               meter_timeout_s=self.config.meter_timeout_ms / 1000)
        finally:
            self._selftest_running = False
            self._post_contact()  # the gate sees the contact as the test left it
        log.warning("self-test on connector %s by %s: %s", self.connector_id, by,
                    "passed" if passed(results) else "FAILED " + "; ".join(
                        f"{r.name}: {r.detail}" for r in results if r.status == "fail"))
        return [SelfTestCheck(connector_id=self.connector_id, name=r.name, status=r.status, detail=r.detail)
                for r in results]

    async def _next_reading(self):
        """The next reading the charger's own poll takes (its clock: a simulation runs fast)."""
        before = self._last_reading
        while self._last_reading is before:
            await self.clock.sleep(self.config.meter_poll_ms / 4000)
        return self._last_reading

    def clock_status(self) -> ClockView:
        return ClockView(trusted=bool(self.clock_trusted), reason=self.clock_reason,
                         held_receipts=self.held_receipts())
