"""A bounded wait stays bounded even when the awaited code swallows a cancellation."""
from __future__ import annotations

import asyncio

import pytest

from agent.aio import within


async def _stubborn(swallow: int, log: list):
    """Work that ignores the first ``swallow`` cancellations, as a loop over Python 3.11's
    ``wait_for`` does when the event it waits on fires just as it is cancelled."""
    while True:
        try:
            await asyncio.sleep(0.001)
        except asyncio.CancelledError:
            log.append("swallowed")
            if len(log) > swallow:
                raise


async def test_work_that_swallows_a_cancellation_is_still_stopped_at_its_bound():
    log: list = []
    with pytest.raises(asyncio.TimeoutError, match="stubborn: not done within"):
        await within(_stubborn(3, log), 0.01, name="stubborn")
    assert log == ["swallowed"] * 4  # cancelled again until it ended


async def test_work_done_in_time_gives_its_result():
    async def quick():
        return 42

    assert await within(quick(), 5, name="quick") == 42


async def test_an_error_of_the_work_is_raised_as_it_is():
    async def broken():
        raise ValueError("no meter")

    with pytest.raises(ValueError, match="no meter"):
        await within(broken(), 5, name="broken")
