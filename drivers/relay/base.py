"""The ``Relay`` contract: the contactor that connects the vehicle to the supply.

This file is the reference for anyone adding a backend. A backend implements ``_drive()``,
``feedback`` and, if it owns hardware, ``start()``/``release()``; the base class keeps the
commanded state, the listeners and the settle check, so every backend behaves the same way
when the safety supervisor asks it to open.

Safety rules every backend keeps:

* The safe state is *open*. Before ``start()`` and after ``release()`` the contacts are open, and
  the board's profile states how the hardware keeps them open when this process is gone
  (a pull-down on the driver input, a normally-open contactor, the line falling back when the
  kernel releases it).
* ``open()`` never refuses: it works before ``start()`` and after ``release()`` (as a no-op), and
  a listener that raises does not stop it.
* ``closed`` is the *commanded* state; ``feedback`` is what the mirror contact reports (``None``
  when the board has none). Only ``feedback`` tells a welded contactor from a healthy one.
"""
from __future__ import annotations

import asyncio
import logging
import time
from abc import ABC, abstractmethod
from typing import Awaitable, Callable

from drivers.errors import DriverError

log = logging.getLogger("urja.relay")

Listener = Callable[[bool], None]


class RelayError(DriverError):
    """The relay could not be commanded or its hardware could not be reached."""

    code = "relay-error"


class Relay(ABC):
    """Base class of every relay backend; see the module docstring for the rules.

    Settings are keyword-only. ``settle_ms`` is how long ``wait_settled()`` waits by default
    for the mirror contact to agree with the command (a contactor needs 20-100 ms);
    ``poll_ms`` is how often it looks. ``clock`` (seconds, monotonic) and ``sleep`` are
    injected so tests can run the settle check on a fake clock.
    """

    #: What the backend does when told to stop or when the process dies.
    safe_state: str = "open (contacts apart, vehicle disconnected from the supply)"

    def __init__(
        self,
        *,
        settle_ms: int = 100,
        poll_ms: int = 5,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ):
        if settle_ms < 0 or poll_ms <= 0:
            raise ValueError("settle_ms must be >= 0 and poll_ms > 0")
        self.settle_ms = settle_ms
        self.poll_ms = poll_ms
        self._clock = clock
        self._sleep = sleep
        self._closed = False
        self._released = False
        self._listeners: list[Listener] = []

    # ----- to be provided by backends -----------------------------------------------------
    @abstractmethod
    async def _drive(self, on: bool) -> None:
        """Put the coil driver in the given state (True = contacts commanded closed)."""

    @property
    @abstractmethod
    def feedback(self) -> bool | None:
        """Mirror contact: True when the contacts are closed, ``None`` when not wired."""

    @property
    def has_feedback(self) -> bool:
        return False

    async def start(self) -> None:  # noqa: B027 (an optional hook, empty by design)
        """Acquire the hardware with the contacts open. Backends without hardware do nothing."""

    async def _release_hardware(self) -> None:  # noqa: B027 (an optional hook, empty by design)
        """Hand the hardware back; the line must then fall to its safe (open) level."""

    # ----- the contract -------------------------------------------------------------------
    @property
    def closed(self) -> bool:
        """The commanded state (not proof that the contacts moved: see ``feedback``)."""
        return self._closed

    @property
    def released(self) -> bool:
        return self._released

    async def close(self) -> None:
        """Command the contacts closed.

        Only the safety gate should call this. If driving the coil fails, the relay is driven
        open again before the error propagates, so a half-done close never leaves it closed.
        """
        if self._released:
            raise RelayError("relay already released; refusing to close", code="relay-released")
        if self._closed:
            return
        self._closed = True
        try:
            await self._drive(True)
        except BaseException:
            self._closed = False
            try:
                await self._drive(False)
            except Exception:
                log.exception("could not drive the relay open after a failed close")
            raise
        self._notify(True)

    async def open(self) -> None:
        """Command the contacts open. Always allowed; a released relay is already open."""
        if self._released:
            return
        was_closed = self._closed
        self._closed = False
        await self._drive(False)
        if was_closed:
            self._notify(False)

    async def wait_settled(self, *, timeout_ms: int | None = None) -> bool:
        """Wait until the mirror contact agrees with the command; False on timeout.

        Returns True at once when there is no feedback contact: nothing can be checked, and
        the caller (the self-test, the supervisor) reports that separately.
        """
        if not self.has_feedback:
            return True
        timeout_s = (self.settle_ms if timeout_ms is None else timeout_ms) / 1000
        deadline = self._clock() + timeout_s
        while True:
            if self.feedback == self._closed:
                return True
            if self._clock() >= deadline:
                return False
            await self._sleep(self.poll_ms / 1000)

    async def release(self) -> None:
        """Open the contacts and hand back the hardware; safe to call more than once."""
        if self._released:
            return
        try:
            await self.open()
        finally:
            self._released = True
            await self._release_hardware()

    def add_listener(self, callback: Listener) -> None:
        """Call ``callback(closed)`` whenever the commanded state changes."""
        self._listeners.append(callback)

    def remove_listener(self, callback: Listener) -> None:
        self._listeners.remove(callback)

    def _notify(self, closed: bool) -> None:
        # A broken status publisher must not stop the relay from opening: log and go on.
        for callback in list(self._listeners):
            try:
                callback(closed)
            except Exception:
                log.exception("relay listener %r failed", callback)

    async def __aenter__(self) -> "Relay":
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.release()
