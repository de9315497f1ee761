"""Suite-wide policing: no test may leave an asyncio task running behind it."""
from __future__ import annotations

import asyncio

import pytest


@pytest.fixture(autouse=True)
async def no_leaked_tasks():
    """Fail any async test that leaves tasks running; a forgotten task is a forgotten relay."""
    before = {t for t in asyncio.all_tasks()}
    yield
    current = asyncio.current_task()
    leaked = [t for t in asyncio.all_tasks() if t is not current and t not in before and not t.done()]
    if leaked:
        for task in leaked:
            task.cancel()
        await asyncio.gather(*leaked, return_exceptions=True)
        names = ", ".join(sorted(t.get_name() for t in leaked))
        pytest.fail(f"test leaked {len(leaked)} task(s): {names}")
