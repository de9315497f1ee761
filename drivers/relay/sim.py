"""A simulated contactor with a mirror contact and the two faults that matter in the field.

Welded contacts (they stay closed after the coil drops) and a jammed contactor (the coil is
driven but the contacts never meet) are the failures the feedback contact exists to catch, so
the simulation can produce both on demand.
"""
from __future__ import annotations

import asyncio
import time
from typing import Awaitable, Callable

from drivers.relay.base import Listener, Relay, log


class SimRelay(Relay):
    """In-memory relay for the ``sim`` board and for tests.

    ``switch_delay_ms`` is the contactor's operate time: ``close()``/``open()`` return after it,
    through the injected ``sleep``. Contact listeners (``add_contact_listener``) see where the
    contacts physically are, which is what the simulated board uses to let the car's current
    reach the meter.
    """

    def __init__(
        self,
        *,
        switch_delay_ms: int = 0,
        has_feedback: bool = True,
        settle_ms: int = 100,
        poll_ms: int = 1,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ):
        super().__init__(settle_ms=settle_ms, poll_ms=poll_ms, clock=clock, sleep=sleep)
        if switch_delay_ms < 0:
            raise ValueError("switch_delay_ms must be >= 0")
        self.switch_delay_ms = switch_delay_ms
        self._has_feedback = has_feedback
        self._contacts = False
        self._welded = False
        self._jammed = False
        self._contact_listeners: list[Listener] = []

    @property
    def has_feedback(self) -> bool:
        return self._has_feedback

    @property
    def contacts_closed(self) -> bool:
        """Where the contacts really are, feedback wired or not."""
        return self._contacts

    @property
    def feedback(self) -> bool | None:
        return self._contacts if self._has_feedback else None

    # ----- fault injection --------------------------------------------------------------
    def weld(self) -> None:
        """Fuse the contacts: once closed (now or at the next close) they stay closed."""
        self._welded = True

    def jam(self) -> None:
        """Break the coil: the contacts stay where they are whatever is commanded."""
        self._jammed = True

    def repair(self) -> None:
        """Clear both faults; the contacts follow the command again from the next switch."""
        self._welded = False
        self._jammed = False

    # ----- coupling -----------------------------------------------------------------------
    def add_contact_listener(self, callback: Listener) -> None:
        """Call ``callback(contacts_closed)`` whenever the contacts physically move."""
        self._contact_listeners.append(callback)

    def remove_contact_listener(self, callback: Listener) -> None:
        self._contact_listeners.remove(callback)

    async def _drive(self, on: bool) -> None:
        if self.switch_delay_ms:
            await self._sleep(self.switch_delay_ms / 1000)
        if self._jammed:
            return
        # Welded contacts close normally but never open again.
        target = on or (self._welded and self._contacts)
        if target == self._contacts:
            return
        self._contacts = target
        for callback in list(self._contact_listeners):
            try:
                callback(target)
            except Exception:
                log.exception("contact listener %r failed", callback)
