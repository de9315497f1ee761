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
