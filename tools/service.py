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
STATUS_EVERY_S = 10.0


class ServiceLink:
    """The agent's side of the service manager: READY, watchdog, STOPPING."""

    def __init__(self, *, environ=None, opener=None, monotonic_s=time.monotonic):
        import os

        from agent.notify import SystemdNotifier

        env = os.environ if environ is None else environ
        self.notifier = SystemdNotifier(environ=env)
        # The unit's RuntimeDirectory (tmpfs): counters for ``urja diag`` without wearing the flash.
        runtime_dir = env.get("RUNTIME_DIRECTORY", "").split(":")[0]
        self.status_path = os.path.join(runtime_dir, "status.json") if runtime_dir else None
        self._status_task = None
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
        if self.status_path is not None:
            started_s = time.time()
            self._write_status(rt, started_s)  # before READY: whoever waits for READY finds it
            self._status_task = asyncio.get_running_loop().create_task(self._keep_status(rt, started_s),
                                                                       name="urja-status")
        if self.notifier.ready(f"serving {rt.config.site_id}"):
            log.info("READY sent to the service manager")

    def _write_status(self, rt, started_s: float) -> None:
        try:
            write_status(self.status_path, rt, started_s=started_s)
        except OSError as exc:
            log.warning("status file %s: %s", self.status_path, exc)

    async def _keep_status(self, rt, started_s: float) -> None:
        while True:
            await asyncio.sleep(STATUS_EVERY_S)
            self._write_status(rt, started_s)

    async def check(self, rt) -> None:
        """The health check an upgrade runs: one meter read through the running board."""
        reading = await rt.board.meter.read()
        log.info("health check: meter %s answered, %s Wh", reading.serial or "-", reading.energy_import_wh)
        print(f"health check passed: relay open, journal reconciled, meter read {reading.energy_import_wh} Wh",
              flush=True)

    def down(self) -> None:
        if self._status_task is not None:
            self._status_task.cancel()
        self.notifier.stopping()
        self.notifier.close()
        if self.hardware is not None:
            self.hardware.close()
            self.hardware = None


def write_status(path: str, rt, *, started_s: float) -> None:
    """Meter and bus counters, relay commands and journal commits, replaced atomically."""
    import json
    import os

    health = rt.board.meter.health
    status = {
        "written_s": round(time.time(), 3), "started_s": round(started_s, 3), "site_id": rt.config.site_id,
        "meter": {"good_reads": health.good_reads, "consecutive_failures": health.consecutive_failures,
                  "connected": health.connected, "faults": dict(health.counts),
                  "last_fault": getattr(health.last_fault, "code", None)},
        "relay_commands": rt.relay_commands, "journal_commits": rt.journal.commits,
    }
    tmp = f"{path}.tmp"
    with open(tmp, "w") as fh:
        json.dump(status, fh, indent=2)
    os.replace(tmp, path)
