"""The simulated contactor, its mirror contact and the weld check share the runtime's clock.

At simulated speeds the runtime's clock runs many times faster than real time, so anything
that looks at the contactor on a real-time cadence sees it seconds (of simulated time) late,
and a contactor that opened correctly looks welded.
"""
from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from agent.bootstrap import open_runtime
from agent.clock import Clock
from tests.support import sim_config, wait_until

pytestmark = pytest.mark.asyncio

SIM_PROFILE = Path(__file__).resolve().parent.parent / "board" / "profiles" / "sim.toml"


async def test_many_fast_sessions_never_latch_a_weld_on_a_contactor_that_opened(tmp_path):
    """Forty short sessions at 120x with a contactor that takes 40 ms to move: none latches."""
    profile = tmp_path / "sim-40ms.toml"
    profile.write_text(SIM_PROFILE.read_text().replace("switch_delay_ms = 0", "switch_delay_ms = 40"))
    cfg = sim_config(tmp_path, auth="free_vend", default_limit_wh=15, board=str(profile))
    sessions = 40
    receipts: list = []
    async with open_runtime(cfg, clock=Clock(speed=120)) as rt:
        rt.add_listener(lambda kind, obj: receipts.append(obj) if kind == "receipt" else None)
        car = rt.board.sim.car

        async def drive() -> None:
            for n in range(sessions):
                car.plug_in()
                car.request_power()
                await wait_until(lambda: rt.board.relay.closed or rt.safety.latched_fault is not None,
                                 what=f"session {n}: relay closed")
                await wait_until(lambda: rt.core.stop_reason is not None or rt.safety.latched_fault is not None,
                                 what=f"session {n}: the energy limit")
                # the weld settle time (2 s) passes while the car is still parked
                await rt.clock.sleep(3)
                car.unplug()
                await wait_until(lambda n=n: len(receipts) > n or rt.safety.latched_fault is not None,
                                 what=f"session {n}: receipt")
                assert rt.safety.latched_fault is None, (n, rt.safety.latched_fault, rt.safety.latched_detail)

        await asyncio.wait_for(drive(), 240)
        assert len(receipts) == sessions
        assert rt.safety.latched_fault is None
