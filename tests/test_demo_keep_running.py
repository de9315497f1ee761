"""``make demo DEMO_ARGS=--keep-running``: the chargers stay up with a simulated driver each, and
the ``urja charge`` command the demo prints buys from them again and again."""
from __future__ import annotations

import asyncio
import io

import pytest

from agent.clock import Clock
from tests.mqtt_broker import MOSQUITTO, Broker
from tests.support import wait_until
from tools import charge_cmd
from tools.cli import build_parser
from tools.netdemo import Screen, network_story

pytestmark = [pytest.mark.asyncio,
              pytest.mark.skipif(MOSQUITTO is None, reason="mosquitto is not installed (apt install mosquitto)")]


async def test_the_charge_command_the_kept_running_demo_prints_buys_again_and_again(tmp_path):
    speed = 120
    clock = Clock(speed=speed)  # the app shares the chargers' simulated time, as with --speed 1 it shares real time
    screen = Screen(io.StringIO())
    stop = asyncio.Event()
    with Broker(tmp_path) as broker:
        story = asyncio.get_running_loop().create_task(
            network_story(tmp_path / "demo", broker.url, speed=speed, energy_wh=300, keep_running=True,
                          screen=screen, clock=clock, stop=stop))
        try:
            await wait_until(lambda: "urja charge " in screen.out.getvalue() or story.done(), timeout_s=120,
                             what="the demo to print its charge command")
            assert not story.done(), screen.out.getvalue()
            text = screen.out.getvalue()
            command = next(line.split("urja ", 1)[1] for line in text.splitlines() if "urja charge " in line)
            for _ in range(2):  # any number of times: the driver comes for each order
                args = build_parser().parse_args(command.split())
                result = await asyncio.wait_for(charge_cmd.run(args, clock=clock.wall_s, quiet=True), 90)
                check = result.receipt_check
                assert check is not None and check.energy_wh >= 300, result
        finally:
            stop.set()
            await asyncio.wait_for(asyncio.gather(story, return_exceptions=True), 60)
    story.result()  # the chargers shut down cleanly, no driver failed
    assert len(list((tmp_path / "demo" / "receipts").glob("*.json"))) == 1
    assert screen.out.getvalue().count("[simulated car] plugs in") == 3
