"""End to end over MQTT: a node discovers the real runtime's charger on the simulated board,
buys a charge (select, init, simulated UPI payment, confirm, start), follows it to the end and
verifies the receipt offline."""
from __future__ import annotations

import asyncio

import pytest

from agent.bootstrap import open_runtime
from agent.clock import Clock
from protocols.mqtt.identity import make_identity
from protocols.mqtt.stack import ChargerNetwork, NetworkConfig
from protocols.mqtt.transport import MqttSettings, MqttTransport
from protocols.node.charge import ChargeFlow
from protocols.node.client import NetworkNode
from protocols.signing.agency import load_agency
from tests.mqtt_broker import MOSQUITTO, Broker
from tests.support import sim_config

pytestmark = pytest.mark.skipif(MOSQUITTO is None, reason="mosquitto is not installed (apt install mosquitto)")


@pytest.fixture
def broker(tmp_path):
    with Broker(tmp_path) as b:
        yield b


def node_for(rt, cfg, tmp_path, url, *, sid="node-1"):
    agency = load_agency(tmp_path / cfg.site_id / "agency")
    ident = make_identity(agency, sid, lat=cfg.place.lat, lon=cfg.place.lon, now_s=rt.now_s(), kind="BAP")
    transport = MqttTransport(MqttSettings(brokers=(url,), client_id=sid, backoff_initial_s=0.05, backoff_max_s=0.3))
    return NetworkNode(transport=transport, subscriber_id=sid, signer=ident.signer,
                       agency_public_key=agency.public_key, clock=rt.now_s, certificate=ident.certificate)


async def test_discover_and_charge_with_the_real_runtime(tmp_path, broker):
    cfg = sim_config(tmp_path, auth="network")
    async with open_runtime(cfg, clock=Clock(speed=20)) as rt:
        network = ChargerNetwork.for_runtime(rt, config=NetworkConfig(brokers=(broker.url,)))
        await network.start(connect_timeout_s=5)
        node = node_for(rt, cfg, tmp_path, broker.url)
        try:
            await node.start()
            found = await node.discover(cfg.place.lat + 0.01, cfg.place.lon, 5, timeout_s=5, expect=1)
            assert [c.subscriber_id for c in found] == [cfg.site_id]
            charger = found[0]
            assert charger.connectors and charger.connectors[0].available
            assert charger.price is not None and charger.certificate["subscriber_id"] == cfg.site_id
            car = rt.board.sim.car
            updates = []

            def step(action, answer):
                if action == "confirm":  # the driver plugs in once the contract is made
                    car.plug_in()
                    car.request_power()
            def progress(p):
                updates.append(p)
                if rt.core.stop_reason == "limit_energy" and car.plugged:
                    car.unplug()  # the contract's energy is delivered: the driver leaves
            flow = ChargeFlow(node, cfg.site_id, energy_wh=150, poll_s=0.3, on_progress=progress,
                              on_step=step)
            try:
                result = await asyncio.wait_for(flow.run(), 30)
            except asyncio.TimeoutError:
                raise AssertionError(f"charge did not finish: {flow.result}, updates {updates[-3:]}, "
                                     f"link {network.link.stats}, bpp {network.bpp.counters}, node {node.stats} "
                                     f"{node.last_rejection}, stop {rt.core.stop_reason}") from None
        finally:
            await node.close()
            await network.close()
    check = result.receipt_check
    assert check is not None and check.subscriber_id == cfg.site_id
    assert check.energy_wh >= 150
    assert result.paid_paise >= check.total_paise and check.refund_due_paise == result.paid_paise - check.total_paise
    assert any(u.energy_wh > 0 for u in updates)
    assert network.link.stats["provider_errors"] == 0


async def test_a_charge_bought_through_a_broker_outage_retries_and_pays_once(tmp_path, broker):
    cfg = sim_config(tmp_path, auth="network")
    async with open_runtime(cfg, clock=Clock(speed=20)) as rt:
        network = ChargerNetwork.for_runtime(rt, config=NetworkConfig(brokers=(broker.url,)))
        await network.start(connect_timeout_s=5)
        node = node_for(rt, cfg, tmp_path, broker.url)
        back = []
        try:
            await node.start()
            await node.discover(cfg.place.lat + 0.01, cfg.place.lon, 5, timeout_s=5, expect=1)
            car = rt.board.sim.car

            async def restart_when_the_buyer_noticed():
                node.transport.failed.clear()
                await asyncio.wait_for(node.transport.failed.wait(), 10)
                broker.start()
                back.append(True)

            def step(action, answer):
                if action == "init":  # the broker goes away between the offer and the payment
                    broker.stop()
                    back.append(asyncio.get_running_loop().create_task(restart_when_the_buyer_noticed()))
                if action == "confirm":
                    car.plug_in()
                    car.request_power()

            def progress(p):
                if rt.core.stop_reason == "limit_energy" and car.plugged:
                    car.unplug()
            flow = ChargeFlow(node, cfg.site_id, energy_wh=150, poll_s=0.3, on_progress=progress, on_step=step,
                              request_timeout_s=3)
            result = await asyncio.wait_for(flow.run(), 60)
        finally:
            await node.close()
            await network.close()
    assert back[-1] is True  # the broker did go away and come back during the purchase
    assert result.receipt_check is not None and result.receipt_check.energy_wh >= 150
    assert result.order_id is not None and result.paid_paise >= result.receipt_check.total_paise
