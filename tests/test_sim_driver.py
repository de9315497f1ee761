"""The simulated car behaves like a driver: it comes when a session waits for it, charges,
leaves after the stop, and comes again for the next buyer; on a pilot board and on a socket
outlet alike."""
from __future__ import annotations

import argparse
import asyncio
import contextlib
import json

import pytest

from agent import bootstrap
from agent.aio import cancel_and_wait
from agent.bootstrap import open_runtime
from agent.clock import Clock
from tests.support import sim_config, wait_until
from tools.sim_site import SimDriver

pytestmark = pytest.mark.asyncio


async def _orders(rt, count: int, energy_wh: int, receipts: list) -> None:
    """Start ``count`` sessions one after another, as a buyer's order starts each one."""
    for n in range(count):
        # a socket outlet cannot see a parked car: the next buyer comes once it has left
        await wait_until(lambda: rt.connectors()[0].status == "AVAILABLE" and not rt.board.sim.car.plugged,
                         timeout_s=20, what=f"order {n}: a free connector")
        await rt.start_session(source="contract", reference=f"order-{n}", energy_limit_wh=energy_wh)
        await wait_until(lambda n=n: len(receipts) > n, timeout_s=30, what=f"order {n}: receipt")


async def test_urja_run_sim_car_leaves_the_connector_free_and_comes_for_every_order(tmp_path, monkeypatch, capsys):
    """On a site that sells over the network the car waits for buyers instead of plugging in
    at start (which made the connector busy and every select refused)."""
    from tools.run_cmd import _run

    cfg = sim_config(tmp_path, auth="network")
    opened: list = []
    real = bootstrap.open_runtime

    @contextlib.asynccontextmanager
    async def spy(*args, **kwargs):
        async with real(*args, **kwargs) as rt:
            opened.append(rt)
            yield rt

    monkeypatch.setattr(bootstrap, "open_runtime", spy)
    args = argparse.Namespace(board=None, sim_car=True, token=None, speed=30.0, duration_s=None)
    run = asyncio.get_running_loop().create_task(_run(cfg, args))
    try:
        await wait_until(lambda: opened and opened[0].core.state == "idle" and not run.done(), what="the agent")
        rt = opened[0]
        assert rt.connectors()[0].status == "AVAILABLE" and not rt.board.sim.car.plugged
        receipts: list = []
        rt.add_listener(lambda kind, obj: receipts.append(obj[1]) if kind == "receipt" else None)
        await _orders(rt, 3, 30, receipts)
        assert [r["energy_wh"] >= 30 for r in receipts] == [True] * 3
        printed = ""

        def all_printed() -> bool:
            nonlocal printed
            printed += capsys.readouterr().out
            return printed.count('"receipt_id"') == 3

        await wait_until(all_printed, what="three receipts printed")
        assert not run.done()  # it keeps waiting for buyers
    finally:
        await cancel_and_wait([run])
    first = printed.index("{\n")  # log lines may come before it when logging goes to stdout
    assert json.loads(printed[first:printed.index("\n}\n", first) + 2])["receipt_id"] == receipts[0]["receipt_id"]


async def test_urja_run_sim_car_on_a_free_vend_site_charges_once_and_stops(tmp_path, capsys):
    from tools.run_cmd import _run

    cfg = sim_config(tmp_path, auth="free_vend", default_limit_wh=40)
    args = argparse.Namespace(board=None, sim_car=True, token=None, speed=30.0, duration_s=None)
    assert await asyncio.wait_for(_run(cfg, args), 60) == 0
    out = capsys.readouterr().out
    receipt = json.loads(out[out.index("{\n"):out.rindex("\n}") + 2])
    assert receipt["energy_wh"] >= 40


async def test_a_socket_outlet_car_arrives_for_each_order_and_leaves_after_the_stop(tmp_path):
    cfg = sim_config(tmp_path, auth="network", board="sim-socket")
    receipts: list = []
    async with open_runtime(cfg, clock=Clock(speed=30)) as rt:
        assert not rt.core.pilot_mode
        rt.add_listener(lambda kind, obj: receipts.append(obj[1]) if kind == "receipt" else None)
        driver = SimDriver(rt, park_s=30, tell=lambda text: None, error=AssertionError)
        serving = asyncio.get_running_loop().create_task(driver.serve())
        try:
            await _orders(rt, 2, 20, receipts)
            await wait_until(lambda: not driver.car.plugged, what="the car to leave")
        finally:
            await cancel_and_wait([serving])
        assert driver.visits == 2 and rt.safety.latched_fault is None
    assert [r["energy_wh"] >= 20 for r in receipts] == [True, True]


async def test_a_free_vend_socket_outlet_charges_a_scripted_arrival(tmp_path):
    cfg = sim_config(tmp_path, auth="free_vend", default_limit_wh=20, board="sim-socket")
    async with open_runtime(cfg, clock=Clock(speed=30)) as rt:
        receipt = await SimDriver(rt, park_s=0, tell=lambda text: None, error=AssertionError).visit()
    assert receipt["energy_wh"] >= 20
