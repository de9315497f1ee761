"""The runtime's clocks: monotonic milliseconds for the core, wall seconds for receipts.

Why one object: a simulation may run faster than real time (a two-hour charge shown in a
minute), and then the meter's energy integration, the session's timers, the safety gate's
timeouts and the receipt's times must all agree on one accelerated time, or the meter driver
would see energy jump faster than power explains. ``speed`` scales every reading and every
sleep; with ``speed=1`` it is plain wall time.
"""
from __future__ import annotations

import asyncio
import time
from typing import Callable


class Clock:
    def __init__(self, *, speed: float = 1.0, monotonic: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time):
        if not speed > 0:
            raise ValueError(f"clock speed must be > 0, got {speed!r}")
        self.speed = float(speed)
        self._monotonic = monotonic
        self._m0 = monotonic()
        self._wall = wall

    def monotonic_s(self) -> float:
        return self._m0 + (self._monotonic() - self._m0) * self.speed

    def monotonic_ms(self) -> int:
        return int(self.monotonic_s() * 1000)

    def wall_s(self) -> float:
        """The system's wall time, plus the simulated acceleration since start.

        Read from ``wall`` every time (not the boot-time value plus elapsed time), so a clock
        that NTP corrects after boot dates everything after the correction correctly.
        """
        return self._wall() + (self._monotonic() - self._m0) * (self.speed - 1)

    async def sleep(self, seconds: float) -> None:
        """Sleep ``seconds`` of this clock's time."""
        await asyncio.sleep(max(0.0, seconds) / self.speed)
