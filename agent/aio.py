"""Stopping background tasks so that a stop always ends.

Every component that owns tasks (the runtime's loops, the MQTT link and transport, the OCPI
pusher, the HTTP server, the network node) stops them here rather than with a bare
``cancel()`` and ``gather``: on Python 3.11 ``asyncio.wait_for`` swallows a cancellation that
lands just as the future it waits on completes, and every one of those loops waits that way.
One cancel can then leave a loop running, and a plain ``gather`` waits for it forever.
"""
from __future__ import annotations

import asyncio
import logging

log = logging.getLogger("urja.aio")


async def cancel_and_wait(tasks, *, rounds: int = 20, patience_s: float = 0.5) -> list:
    """Cancel ``tasks`` and wait for them, cancelling again while any survives.

    Returns the tasks still running after ``rounds`` attempts (logged; normally none), so a
    caller can say so rather than hang.
    """
    tasks = [t for t in tasks if t is not None]
    pending = [t for t in tasks if not t.done()]
    for _ in range(rounds):
        if not pending:
            break
        for task in pending:
            task.cancel()
        _, still = await asyncio.wait(pending, timeout=patience_s)
        pending = list(still)
    if pending:
        log.error("tasks still running after stop: %s", ", ".join(t.get_name() for t in pending))
        return pending
    # Collect the outcomes so no "exception was never retrieved" is left behind.
    await asyncio.gather(*tasks, return_exceptions=True)
    return []


async def within(awaitable, timeout_s: float, *, name: str = "bounded"):
    """Await ``awaitable`` for at most ``timeout_s``; ``asyncio.TimeoutError`` after that.

    Unlike ``asyncio.wait_for`` on Python 3.11, the bound holds even when the awaited code
    swallows the cancellation (its own ``wait_for`` on an event that fires just then): the
    work runs as a task and is stopped with ``cancel_and_wait``, which cancels again until it
    ends, so a wait that was meant to be bounded cannot hang the caller.
    """
    task = asyncio.ensure_future(awaitable)
    if isinstance(task, asyncio.Task):
        task.set_name(name)
    try:
        done, _ = await asyncio.wait({task}, timeout=timeout_s)
    except BaseException:
        await cancel_and_wait([task])
        raise
    if not done:
        await cancel_and_wait([task])
        raise asyncio.TimeoutError(f"{name}: not done within {timeout_s:g} s")
    return task.result()
