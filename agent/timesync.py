"""Whether the system clock can be trusted: the kernel's and timesyncd's own word, and a floor.

Charger boards often have no battery-backed clock and boot with a time that is days or years
off until NTP corrects it. Signed offers and receipts dated then are refused by every verifier
(certificate not yet valid, expired) and would state what is not true, so the runtime sells
only while this says the clock is synchronised. The signals are the ones the system keeps:
systemd-timesyncd touches ``/run/systemd/timesync/synchronized`` once it has synchronised, and
the kernel clears ``STA_UNSYNC`` (``adjtimex`` stops answering ``TIME_ERROR``) while an NTP
daemon (timesyncd, chrony, ntpd) disciplines the clock. A time before ``FLOOR_S`` (this
release's date) is wrong whatever the flags say.
"""
from __future__ import annotations

import asyncio
import ctypes
import ctypes.util
import logging
import time
from pathlib import Path
from typing import Callable

log = logging.getLogger("urja.runtime")

CLOCK_CHECK_S = 10.0  # real seconds between looks at the clock's synchronisation
TIMESYNCD_FLAG = Path("/run/systemd/timesync/synchronized")
FLOOR_S = 1767225600  # 2026-01-01T00:00:00Z: no correct clock reads earlier than this release
_TIME_ERROR = 5
_STA_UNSYNC = 0x0040


class _Timeval(ctypes.Structure):
    _fields_ = [("tv_sec", ctypes.c_long), ("tv_usec", ctypes.c_long)]


class _Timex(ctypes.Structure):
    """``struct timex`` of Linux (``man 2 adjtimex``); only ``status`` and the result are read."""

    _fields_ = [("modes", ctypes.c_uint), ("offset", ctypes.c_long), ("freq", ctypes.c_long),
                ("maxerror", ctypes.c_long), ("esterror", ctypes.c_long), ("status", ctypes.c_int),
                ("constant", ctypes.c_long), ("precision", ctypes.c_long), ("tolerance", ctypes.c_long),
                ("time", _Timeval), ("tick", ctypes.c_long), ("ppsfreq", ctypes.c_long),
                ("jitter", ctypes.c_long), ("shift", ctypes.c_int), ("stabil", ctypes.c_long),
                ("jitcnt", ctypes.c_long), ("calcnt", ctypes.c_long), ("errcnt", ctypes.c_long),
                ("stbcnt", ctypes.c_long), ("tai", ctypes.c_int), ("_pad", ctypes.c_int * 11)]


def kernel_synchronised() -> bool | None:
    """The kernel's NTP state (read-only ``adjtimex``): True, False, or None where unavailable."""
    name = ctypes.util.find_library("c")
    if name is None:
        return None
    try:
        adjtimex = ctypes.CDLL(name, use_errno=True).adjtimex
    except (OSError, AttributeError):
        return None
    tx = _Timex()  # modes = 0: read only
    state = adjtimex(ctypes.byref(tx))
    if state < 0:
        return None
    return state != _TIME_ERROR and not tx.status & _STA_UNSYNC


class ClockTrust:
    """``check() -> (trusted, reason)``; every source is injectable (tests, other daemons)."""

    def __init__(self, *, required: bool = True, kernel: Callable[[], bool | None] = kernel_synchronised,
                 flag_path: Path | None = TIMESYNCD_FLAG, wall: Callable[[], float] = time.time,
                 floor_s: float = FLOOR_S):
        self.required = required
        self._kernel = kernel
        self._flag_path = flag_path
        self._wall = wall
        self.floor_s = floor_s

    def check(self) -> tuple[bool, str]:
        if not self.required:
            return True, "not checked (simulated board)"
        now_s = self._wall()
        if now_s < self.floor_s:
            return False, (f"the clock reads {_iso(now_s)}, before {_iso(self.floor_s)}: it has not been set "
                           f"since the board booted")
        if self._flag_path is not None and self._flag_path.exists():
            return True, "synchronised (systemd-timesyncd)"
        kernel = self._kernel()
        if kernel:
            return True, "synchronised (the kernel's NTP state)"
        if kernel is None:
            return False, "no synchronisation signal (no timesyncd flag, kernel state unavailable)"
        return False, "not synchronised (the kernel reports its clock unsynchronised, no timesyncd flag)"


class RuntimeClockTrust:
    """The runtime's part (a mixin over its state): the trust taken at start, then every 10 s."""

    def _check_clock(self) -> None:
        """Take the clock's trust now; say so in the log when it is new or changed."""
        trusted, reason = self.clock_trust.check()
        changed = (trusted, reason) != (self.clock_trusted, self.clock_reason)
        first = self.clock_reason == "not checked yet"
        self.clock_trusted, self.clock_reason = trusted, reason
        if not changed:
            return
        if not first:  # the bindings say it in their status (MQTT presence)
            self._notify("clock", self.clock_status())
        if trusted:
            log.info("clock: %s; selling and signing", reason)
            self._release_held()
        else:
            log.warning("clock not trusted: %s; network orders and OCPI starts are refused until it is "
                        "synchronised, free vend and allow-listed cards still charge, their receipts held "
                        "until then", reason)

    async def _clock_loop(self) -> None:
        while True:
            await asyncio.sleep(CLOCK_CHECK_S)
            self._check_clock()


def _iso(epoch_s: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(epoch_s))
