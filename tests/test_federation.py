"""Federation: two brokers bridged (configuration generated here). A node on one broker finds
and buys a charge at a charger that is connected only to the other."""
from __future__ import annotations

import asyncio

import pytest

from agent.bootstrap import open_runtime
from agent.clock import Clock
from protocols.mqtt.stack import ChargerNetwork, NetworkConfig
from protocols.mqtt.transport import MqttSettings, MqttTransport
from tests.mqtt_broker import MOSQUITTO, Broker
from tests.support import car_charge_flow, sim_config
from tests.test_node_charge import node_for

pytestmark = pytest.mark.skipif(MOSQUITTO is None, reason="mosquitto is not installed (apt install mosquitto)")


async def bridge_ready(a_url: str, b_url: str, timeout_s: float = 10.0) -> None:
    """Wait until a message published on each broker arrives on the other (the bridge is up both ways)."""
    for src, dst, tag in ((a_url, b_url, "a2b"), (b_url, a_url, "b2a")):
        got = asyncio.Event()
        topic = f"urja/v1/probe/bridge-{tag}"
        receiver = MqttTransport(MqttSettings(brokers=(dst,), client_id=f"probe-rx-{tag}"),
                                 on_message=lambda t, p, r, got=got: got.set())
        receiver.subscribe(topic, 1)
        async with receiver, MqttTransport(MqttSettings(brokers=(src,), client_id=f"probe-tx-{tag}")) as sender:
            await receiver.wait_connected(5)
            await sender.wait_connected(5)

            async def keep_probing(got=got, topic=topic, sender=sender):
                while not got.is_set():
                    await sender.publish(topic, b"ping", qos=1)
                    try:
                        await asyncio.wait_for(got.wait(), 0.2)
                    except asyncio.TimeoutError:
                        pass
            await asyncio.wait_for(keep_probing(), timeout_s)


async def test_node_on_one_broker_charges_at_a_charger_on_the_other(tmp_path):
    cfg = sim_config(tmp_path, auth="network")
    with Broker(tmp_path, name="city-a") as a, Broker(tmp_path, name="city-b", bridge_to=a.port) as b:
        await bridge_ready(a.url, b.url)
        async with open_runtime(cfg, clock=Clock(speed=20)) as rt:
            network = ChargerNetwork.for_runtime(rt, config=NetworkConfig(brokers=(b.url,)))
            await network.start(connect_timeout_s=5)
            node = node_for(rt, cfg, tmp_path, a.url)
            try:
                await node.start()
                found = await node.discover(cfg.place.lat, cfg.place.lon + 0.01, 5, timeout_s=5, expect=1)
                assert [c.subscriber_id for c in found] == [cfg.site_id]
                flow = car_charge_flow(node, rt, cfg.site_id)
                result = await asyncio.wait_for(flow.run(), 60)
            finally:
                await node.close()
                await network.close()
    assert network.transport.broker.port == b.port and node.transport.broker.port == a.port
    assert result.receipt_check is not None and result.receipt_check.energy_wh >= 100
