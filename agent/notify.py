"""Telling the service manager and the board's watchdog that the agent is alive.

systemd's ``Type=notify`` waits for ``READY=1`` on the datagram socket it names in
``NOTIFY_SOCKET``; the agent sends it only once the relay is known open and the journal
reconciled (``open_runtime`` has returned), so ``systemctl start`` and an upgrade's health
check mean "safe and serving", not "process exists". With ``WatchdogSec`` systemd also expects
``WATCHDOG=1`` within ``WATCHDOG_USEC``; the pings come from the runtime's dispatcher
(``Heartbeat.beat``), not from a timer task of their own, so a stuck event loop or a dispatcher
that no longer runs stops the pings and systemd restarts the agent (the relay's fail-safe
wiring opens the contactor while it is down).

A board whose profile names a hardware watchdog (``[board] watchdog = "/dev/watchdog0"``) is
pinged from the same beat: if the whole system hangs, the SoC resets. Closing it cleanly
writes the magic ``V`` so a stopped agent does not reset the board; a crash leaves it armed.

Nothing here is imported unless ``urja run`` uses it; the protocol is four lines of socket code,
so no library is needed.
"""
from __future__ import annotations

import logging
import os
import socket
import time
from typing import Callable, Mapping

log = logging.getLogger("urja.notify")


class SystemdNotifier:
    """``sd_notify`` over the unix datagram socket in ``NOTIFY_SOCKET`` (a no-op without one)."""

    def __init__(self, *, environ: Mapping[str, str] | None = None):
        env = os.environ if environ is None else environ
        address = env.get("NOTIFY_SOCKET", "")
        if address.startswith("@"):  # abstract namespace
            address = "\0" + address[1:]
        self.address = address or None
        self.watchdog_s = _watchdog_s(env)
        self._sock: socket.socket | None = None

    @property
    def enabled(self) -> bool:
        return self.address is not None

    def send(self, *fields: str) -> bool:
        """One datagram of ``KEY=value`` lines; False (logged once) when nothing listens."""
        if self.address is None:
            return False
        try:
            if self._sock is None:
                self._sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC)
            self._sock.sendto("\n".join(fields).encode(), self.address)
            return True
        except OSError as exc:
            log.warning("service manager unreachable at NOTIFY_SOCKET: %s", exc)
            return False

    def ready(self, status: str = "") -> bool:
        return self.send("READY=1", *([f"STATUS={status}"] if status else []))

    def stopping(self) -> bool:
        return self.send("STOPPING=1")

    def watchdog(self) -> bool:
        return self.send("WATCHDOG=1")

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


def _watchdog_s(env: Mapping[str, str]) -> float | None:
    """systemd's watchdog interval, when it is meant for this process."""
    usec = env.get("WATCHDOG_USEC")
    pid = env.get("WATCHDOG_PID")
    if not usec or (pid and pid != str(os.getpid())):
        return None
    try:
        value = int(usec)
    except ValueError:
        return None
    return value / 1e6 if value > 0 else None


class HardwareWatchdog:
    """A Linux watchdog device (``/dev/watchdog*``): any write is a ping, ``V`` then close disarms."""

    def __init__(self, path: str, *, opener: Callable[[str], int] | None = None):
        self.path = path
        self._fd = (opener or (lambda p: os.open(p, os.O_WRONLY | os.O_CLOEXEC)))(path)

    def ping(self) -> None:
        os.write(self._fd, b"\0")

    def close(self) -> None:
        """Disarm (magic close) and close; a process that dies without this leaves it armed."""
        if self._fd < 0:
            return
        try:
            os.write(self._fd, b"V")
        finally:
            os.close(self._fd)
            self._fd = -1


class Heartbeat:
    """Called by the dispatcher on every turn; pings at most every ``interval_s``.

    The dispatcher turns at least every safety tick (50 ms), so the check is a clock read and
    a comparison; the pings go to systemd (half its ``WatchdogSec``, as sd_watchdog_enabled
    advises) and to the hardware watchdog.
    """

    def __init__(self, *, interval_s: float, sinks: list[Callable[[], object]],
                 monotonic_s: Callable[[], float] = time.monotonic):
        self.interval_s = interval_s
        self._sinks = sinks
        self._monotonic_s = monotonic_s
        self._last_s: float | None = None
        self.pings = 0

    def beat(self) -> None:
        now_s = self._monotonic_s()
        if self._last_s is not None and now_s - self._last_s < self.interval_s:
            return
        self._last_s = now_s
        self.pings += 1
        for sink in self._sinks:
            try:
                sink()
            except OSError as exc:  # a watchdog that cannot be pinged resets the board: say so
                log.error("watchdog ping failed: %s", exc)


def heartbeat_for(notifier: SystemdNotifier, hardware: HardwareWatchdog | None, *,
                  hardware_interval_s: float = 5.0,
                  monotonic_s: Callable[[], float] = time.monotonic) -> Heartbeat | None:
    """The heartbeat the environment asks for, or None when nobody watches."""
    sinks: list[Callable[[], object]] = []
    intervals = []
    if notifier.watchdog_s:
        sinks.append(notifier.watchdog)
        intervals.append(notifier.watchdog_s / 2)
    if hardware is not None:
        sinks.append(hardware.ping)
        intervals.append(hardware_interval_s)
    if not sinks:
        return None
    return Heartbeat(interval_s=min(intervals), sinks=sinks, monotonic_s=monotonic_s)
