"""One delivery loop for the journal's durable outbox, shared by every network binding.

Unsolicited messages (status changes, receipts, OCPI pushes and command results) are written
to the journal first and sent later, so a partner that is down, or a charger that restarts
meanwhile, loses nothing. Each binding reads only its own topic prefix and knows only how to
send one entry; waiting, batching, backing off and acknowledging are the same for all of them
and live here, so the three bindings cannot drift apart (they used to have three backoff
formulas).

A binding hands ``OutboxPump`` a delivery coroutine ``deliver(entry) -> Outcome``:

* ``Outcome.delivered()``: sent; the entry is acknowledged.
* ``Outcome.retry(reason)``: not now; tried again after the backoff.
* ``Outcome.drop(reason)``: can never be sent (unreadable, nobody to send it to); acknowledged
  with a log line so it stops coming back.
* ``Outcome.stop(reason)``: the way out is gone (the broker dropped): this entry backs off as
  for ``retry`` and the rest of the batch stays untouched for the next round, so one outage
  costs one attempt, not one per queued message, and the queue keeps its order.
* ``Outcome.skip()``: not this binding's to send; left as it is.

The backoff is exponential with jitter, ``min(max_s, initial_s * 2**attempts)`` scaled by a
factor drawn from [0.5, 1) of an injected ``random.Random``: chargers that lost the same
partner at the same moment must not all retry at the same instant, and every delay stays
within the bound the binding configured.
"""
from __future__ import annotations

import asyncio
import logging
import random as _random
from typing import Awaitable, Callable

from agent.aio import cancel_and_wait

_log = logging.getLogger("urja.outbox")
_MAX_DOUBLINGS = 20  # 2**20 times the initial delay is beyond any sensible maximum already


class Outcome:
    """What one delivery attempt came to; the pump acts on it."""

    __slots__ = ("kind", "reason")
    DELIVERED, RETRY, DROP, STOP, SKIP = "delivered", "retry", "drop", "stop", "skip"

    def __init__(self, kind: str, reason: str = ""):
        self.kind = kind
        self.reason = reason

    @classmethod
    def delivered(cls) -> "Outcome":
        return cls(cls.DELIVERED)

    @classmethod
    def retry(cls, reason: str = "") -> "Outcome":
        """``reason``, when given, is logged with the delay; empty when the binding logged it."""
        return cls(cls.RETRY, reason)

    @classmethod
    def drop(cls, reason: str) -> "Outcome":
        return cls(cls.DROP, reason)

    @classmethod
    def stop(cls, reason: str = "") -> "Outcome":
        return cls(cls.STOP, reason)

    @classmethod
    def skip(cls) -> "Outcome":
        return cls(cls.SKIP)

    def __repr__(self) -> str:
        return f"Outcome({self.kind!r}, {self.reason!r})"


def backoff_s(attempts: int, *, initial_s: float, max_s: float, rng: _random.Random) -> float:
    """The delay before the next attempt of an entry that failed ``attempts`` times before."""
    nominal_s = min(max_s, initial_s * (2 ** min(max(attempts, 0), _MAX_DOUBLINGS)))
    return nominal_s * (0.5 + 0.5 * rng.random())


class OutboxPump:
    """Delivers one topic prefix of a durable outbox in batches, in a named background task.

    ``outbox`` is the journal (``due``, ``ack``, ``retry``); ``clock`` the one it schedules by.
    ``before_round``, when given, is awaited before each round of the task (not of
    ``run_once``): the MQTT link waits there for a broker, the OCPI pusher refreshes running
    sessions. ``run_once`` may also be called directly; rounds never overlap, so an entry is
    never sent twice at once.
    """

    def __init__(self, *, name: str, outbox, topic_prefix: str, deliver: Callable[[object], Awaitable[Outcome]],
                 clock: Callable[[], float], rng: _random.Random | None = None, batch: int = 20,
                 poll_s: float = 1.0, retry_initial_s: float = 1.0, retry_max_s: float = 60.0,
                 before_round: Callable[[], Awaitable[None]] | None = None, logger: logging.Logger | None = None):
        if not topic_prefix:
            raise ValueError("topic_prefix must name the binding's topics: the outbox is shared")
        if batch < 1:
            raise ValueError(f"batch must be at least 1, got {batch!r}")
        self.name = name
        self.outbox = outbox
        self.topic_prefix = topic_prefix
        self._deliver = deliver
        self._clock = clock
        self._rng = rng or _random.Random()
        self.batch = batch
        self.poll_s = poll_s
        self.retry_initial_s = retry_initial_s
        self.retry_max_s = retry_max_s
        self._before_round = before_round
        self._log = logger or _log
        self._kick = asyncio.Event()
        self._round_lock = asyncio.Lock()
        self._task: asyncio.Task | None = None

    @property
    def running(self) -> bool:
        return self._task is not None

    def kick(self) -> None:
        """Something was queued or the way out came back: run a round now, not at the next poll."""
        self._kick.set()

    def retry_delay_s(self, attempts: int) -> float:
        return backoff_s(attempts, initial_s=self.retry_initial_s, max_s=self.retry_max_s, rng=self._rng)

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name=self.name)

    async def close(self) -> None:
        task, self._task = self._task, None
        await cancel_and_wait([task])

    async def run_once(self, *, limit: int | None = None) -> int:
        """One round over what is due now (at most ``limit`` entries, else ``batch``); returns
        how many entries were delivered."""
        delivered, _ = await self._round(limit or self.batch)
        return delivered

    async def _round(self, limit: int) -> tuple[int, bool]:
        """(delivered, moved): ``moved`` says whether any entry was acknowledged or rescheduled,
        so the task knows whether another round could find more to do."""
        delivered, moved = 0, False
        async with self._round_lock:
            for entry in self.outbox.due(self._clock(), limit, topic_prefix=self.topic_prefix):
                outcome = await self._deliver(entry)
                kind = outcome.kind
                if kind == Outcome.SKIP:
                    continue
                moved = True
                if kind == Outcome.DELIVERED:
                    self.outbox.ack(entry.id)
                    delivered += 1
                elif kind == Outcome.DROP:
                    self.outbox.ack(entry.id)
                    self._log.warning("%s: dropped outbox entry %s (%s): %s", self.name, entry.id, entry.topic,
                                      outcome.reason)
                elif kind in (Outcome.RETRY, Outcome.STOP):
                    delay_s = self.retry_delay_s(entry.attempts)
                    self.outbox.retry(entry.id, self._clock() + delay_s)
                    if outcome.reason:
                        self._log.warning("%s: outbox entry %s not delivered (%s); retry in %.1f s", self.name,
                                          entry.id, outcome.reason, delay_s)
                    if kind == Outcome.STOP:
                        break
                else:
                    raise ValueError(f"{self.name}: unknown delivery outcome {outcome!r}")
        return delivered, moved

    async def _run(self) -> None:
        while True:
            self._kick.clear()  # a kick during the round below makes the wait after it return at once
            moved = False
            try:
                if self._before_round is not None:
                    await self._before_round()
                _, moved = await self._round(self.batch)
            except Exception:  # noqa: BLE001 - keep delivering; the outbox keeps what failed
                self._log.exception("%s: outbox round failed", self.name)
            if moved:
                continue  # more may be due behind this batch
            try:
                await asyncio.wait_for(self._kick.wait(), self.poll_s)
            except asyncio.TimeoutError:
                pass
