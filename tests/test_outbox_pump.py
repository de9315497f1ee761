"""The one outbox pump every binding delivers through: outcomes, backoff, batches, the task."""
from __future__ import annotations

import asyncio
import logging
import random

import pytest

from agent.journal import Journal
from protocols.outbox import OutboxPump, Outcome, backoff_s
from tests.support import wait_until


class Clock:
    def __init__(self, now_s: float = 1000.0):
        self.now_s = now_s

    def __call__(self) -> float:
        return self.now_s


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def journal(tmp_path, clock):
    j = Journal.open(tmp_path / "journal.sqlite", clock=clock)
    yield j
    j.close()


def _pump(journal, clock, deliver, **options) -> OutboxPump:
    options = {"retry_initial_s": 2.0, "retry_max_s": 600.0, "rng": random.Random(5), **options}
    return OutboxPump(name="test-outbox", outbox=journal, topic_prefix="t/", deliver=deliver, clock=clock, **options)


def _pending(journal, clock):
    return {e.payload.decode(): e for e in journal.due(clock() + 10 ** 9, 100)}


@pytest.mark.parametrize("attempts", range(0, 40))
def test_backoff_is_jittered_exponential_and_bounded(attempts):
    rng = random.Random(attempts)
    nominal_s = min(600.0, 2.0 * 2 ** min(attempts, 20))
    for _ in range(50):
        delay_s = backoff_s(attempts, initial_s=2.0, max_s=600.0, rng=rng)
        assert nominal_s / 2 <= delay_s <= nominal_s


def test_backoff_follows_the_injected_random():
    a = [backoff_s(n, initial_s=1.0, max_s=60.0, rng=random.Random(3)) for n in range(8)]
    b = [backoff_s(n, initial_s=1.0, max_s=60.0, rng=random.Random(3)) for n in range(8)]
    assert a == b


async def test_each_outcome_is_acted_on(journal, clock, caplog):
    outcomes = {"ok": Outcome.delivered(), "later": Outcome.retry("partner down"), "bad": Outcome.drop("unreadable"),
                "other": Outcome.skip()}
    for payload in outcomes:
        journal.enqueue("t/x", payload)
    journal.enqueue("u/x", "not-ours")
    seen = []

    async def deliver(entry):
        seen.append(entry.payload.decode())
        return outcomes[entry.payload.decode()]

    pump = _pump(journal, clock, deliver)
    with caplog.at_level(logging.WARNING, logger="urja.outbox"):
        assert await pump.run_once() == 1
    assert seen == ["ok", "later", "bad", "other"]  # another prefix is never handed over
    left = _pending(journal, clock)
    assert set(left) == {"later", "other", "not-ours"}
    assert left["later"].attempts == 1 and clock() + 1.0 <= left["later"].next_attempt_s <= clock() + 2.0
    assert left["other"].attempts == 0 and left["other"].next_attempt_s <= clock()
    text = caplog.text
    assert "unreadable" in text and "partner down" in text


async def test_stop_backs_off_the_entry_and_leaves_the_rest_of_the_batch(journal, clock):
    for i in range(4):
        journal.enqueue("t/x", f"m{i}")
    calls = []

    async def deliver(entry):
        calls.append(entry.payload.decode())
        return Outcome.delivered() if entry.payload == b"m0" else Outcome.stop()

    pump = _pump(journal, clock, deliver)
    assert await pump.run_once() == 1
    assert calls == ["m0", "m1"]
    left = _pending(journal, clock)
    assert left["m1"].attempts == 1 and left["m1"].next_attempt_s > clock()
    assert left["m2"].attempts == 0 and left["m3"].attempts == 0  # untouched, in order for the next round


async def test_retries_back_off_further_each_time_up_to_the_bound(journal, clock):
    journal.enqueue("t/x", "m")

    async def deliver(entry):
        return Outcome.retry()

    pump = _pump(journal, clock, deliver, retry_initial_s=1.0, retry_max_s=8.0)
    delays = []
    for _ in range(7):
        assert await pump.run_once() == 0
        entry = _pending(journal, clock)["m"]
        delays.append(entry.next_attempt_s - clock())
        clock.now_s = entry.next_attempt_s
    for n, delay_s in enumerate(delays):
        nominal_s = min(8.0, 2.0 ** n)
        assert nominal_s / 2 <= delay_s <= nominal_s


async def test_batches_are_bounded_and_run_once_takes_a_limit(journal, clock):
    for i in range(5):
        journal.enqueue("t/x", f"m{i}")
    sent = []

    async def deliver(entry):
        sent.append(entry.payload.decode())
        return Outcome.delivered()

    pump = _pump(journal, clock, deliver, batch=2)
    assert await pump.run_once() == 2
    assert await pump.run_once(limit=1) == 1
    assert sent == ["m0", "m1", "m2"]


async def test_the_task_delivers_on_a_kick_and_stops(journal, clock):
    sent = []
    rounds = []

    async def deliver(entry):
        sent.append(entry.payload.decode())
        return Outcome.delivered()

    async def before_round():
        rounds.append(clock())

    pump = _pump(journal, clock, deliver, poll_s=3600, before_round=before_round)
    pump.start()
    try:
        assert pump.running
        await wait_until(lambda: rounds, what="the first round")
        journal.enqueue("t/x", "m0")
        pump.kick()  # the poll is an hour: only the kick can deliver this in time
        await wait_until(lambda: sent == ["m0"], what="delivery after the kick")
        await wait_until(lambda: journal.pending_count() == 0, what="the ack")
    finally:
        await pump.close()
    assert not pump.running and pump._task is None


async def test_a_failing_round_is_logged_and_the_task_keeps_going(journal, clock, caplog):
    journal.enqueue("t/x", "m0")
    calls = []

    async def deliver(entry):
        calls.append(entry.id)
        if len(calls) == 1:
            raise RuntimeError("boom")
        return Outcome.delivered()

    pump = _pump(journal, clock, deliver, poll_s=0.01)
    with caplog.at_level(logging.ERROR, logger="urja.outbox"):
        pump.start()
        try:
            await wait_until(lambda: journal.pending_count() == 0, what="delivery after the failed round")
        finally:
            await pump.close()
    assert len(calls) == 2 and "outbox round failed" in caplog.text


async def test_rounds_never_overlap(journal, clock):
    journal.enqueue("t/x", "m0")
    gate = asyncio.Event()
    calls = []

    async def deliver(entry):
        calls.append(entry.id)
        await gate.wait()
        return Outcome.delivered()

    pump = _pump(journal, clock, deliver)
    first = asyncio.create_task(pump.run_once())
    await wait_until(lambda: calls, what="the first round to start")
    second = asyncio.create_task(pump.run_once())  # runs up to the lock before the first can finish
    gate.set()
    assert await first == 1 and await second == 0
    assert calls == [calls[0]]


def test_the_prefix_is_required(journal, clock):
    async def deliver(entry):
        return Outcome.delivered()

    with pytest.raises(ValueError):
        OutboxPump(name="x", outbox=journal, topic_prefix="", deliver=deliver, clock=clock)
