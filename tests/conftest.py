"""Suite-wide policing: no test may leave an asyncio task running behind it."""
from __future__ import annotations

import asyncio
import os

import pytest
from hypothesis import HealthCheck, settings

# Machines here are shared and noisy: a per-example deadline would fail on load, not on bugs.
# In CI (CI=true) examples are derandomized so a run is reproducible; locally they explore.
settings.register_profile("local", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("ci", deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI") else "local")


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
