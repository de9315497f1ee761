"""``urja run`` as a service: READY to systemd, watchdog pings, the upgrade's health check.

``up`` is called once ``open_runtime`` has returned, that is with the relay forced open, latched
faults restored and the journal reconciled at the meter's register; a journal whose meter did
not answer at boot is not reconciled yet, and READY waits for it (systemd's start timeout then
restarts an agent whose meter never answers, which is what a maker wants to see in the log).
"""
from __future__ import annotations

import asyncio
import logging
import time

from drivers.errors import DriverError

log = logging.getLogger("urja.service")

RECONCILE_POLL_S = 0.1


class ServiceLink:
    """The agent's side of the service manager: READY, watchdog, STOPPING."""

    def __init__(self, *, environ=None, opener=None, monotonic_s=time.monotonic):
        from agent.notify import SystemdNotifier

        self.notifier = SystemdNotifier(environ=environ)
        self._opener = opener
        self._monotonic_s = monotonic_s
        self.hardware = None
        self.heartbeat = None

    async def up(self, rt) -> None:
        from agent.notify import HardwareWatchdog, heartbeat_for

        while getattr(rt, "_reconcile_pending", False):
            await asyncio.sleep(RECONCILE_POLL_S)
        device = getattr(rt.board.profile, "watchdog", None)
        if device:
            try:
                self.hardware = HardwareWatchdog(device, opener=self._opener)
            except OSError as exc:
                raise DriverError(f"board watchdog {device}: {exc.strerror or exc}") from None
        self.heartbeat = heartbeat_for(self.notifier, self.hardware, monotonic_s=self._monotonic_s)
        if self.heartbeat is not None:
            rt.heartbeat = self.heartbeat.beat
            self.heartbeat.beat()
        if self.notifier.ready(f"serving {rt.config.site_id}"):
            log.info("READY sent to the service manager")

    async def check(self, rt) -> None:
        """The health check an upgrade runs: one meter read through the running board."""
        reading = await rt.board.meter.read()
        log.info("health check: meter %s answered, %s Wh", reading.serial or "-", reading.energy_import_wh)
        print(f"health check passed: relay open, journal reconciled, meter read {reading.energy_import_wh} Wh",
              flush=True)

    def down(self) -> None:
        self.notifier.stopping()
        self.notifier.close()
        if self.hardware is not None:
            self.hardware.close()
            self.hardware = None
