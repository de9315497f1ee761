"""The clock's trust in the status the network sees: the charger's retained MQTT presence says
whether its clock is trusted and why, and says it again when that changes."""
from __future__ import annotations

import asyncio
import json

import pytest

from agent.bootstrap import open_runtime
from agent.clock import Clock
from agent.timesync import ClockTrust
from protocols.mqtt import framing
from protocols.mqtt.stack import ChargerNetwork, NetworkConfig
from protocols.mqtt.transport import MqttSettings, MqttTransport
from tests.mqtt_broker import MOSQUITTO, Broker
from tests.support import sim_config

pytestmark = [pytest.mark.skipif(MOSQUITTO is None, reason="mosquitto is not installed (apt install mosquitto)"),
              pytest.mark.broker, pytest.mark.runtime]


@pytest.mark.asyncio
async def test_the_presence_says_whether_the_clock_is_trusted_and_why(tmp_path):
    synced = {"now": False}
    trust = ClockTrust(kernel=lambda: synced["now"], flag_path=tmp_path / "no-flag")
    cfg = sim_config(tmp_path, auth="network")
    seen: list[dict] = []
    changed = asyncio.Event()

    def on_message(topic, payload, retained):
        doc = json.loads(framing.unframe(payload).body)
        if doc.get("status") == "ONLINE":
            seen.append(doc["clock"])
            changed.set()

    async def until(predicate):
        async def loop():
            while not predicate():
                changed.clear()
                await changed.wait()
        await asyncio.wait_for(loop(), 10)

    with Broker(tmp_path) as broker:
        async with open_runtime(cfg, clock=Clock(speed=20), clock_trust=trust) as rt:
            network = ChargerNetwork.for_runtime(rt, config=NetworkConfig(brokers=(broker.url,)))
            watcher = MqttTransport(MqttSettings(brokers=(broker.url,), client_id="watcher",
                                                 backoff_initial_s=0.05, backoff_max_s=0.3), on_message=on_message)
            watcher.subscribe(network.link.presence_topic)
            try:
                async with watcher:
                    await network.start(connect_timeout_s=5)
                    await until(lambda: seen)
                    assert seen[-1]["trusted"] is False and "not synchronised" in seen[-1]["reason"]
                    synced["now"] = True
                    rt._check_clock()
                    await until(lambda: seen[-1]["trusted"])
                    assert seen[-1]["reason"] == "synchronised (the kernel's NTP state)"
            finally:
                await network.close()
