"""Fleet mode: many chargers' real network stacks in one process on one broker."""
from __future__ import annotations

import random
import time

import pytest

from agent.tariff_file import load_tariff_file
from protocols.mqtt.identity import make_identity, memory_agency
from protocols.mqtt.transport import MqttSettings, MqttTransport
from protocols.node.client import NetworkNode
from tests.fleet import EXAMPLE_TARIFF, Fleet
from tests.mqtt_broker import MOSQUITTO, Broker

pytestmark = pytest.mark.skipif(MOSQUITTO is None, reason="mosquitto is not installed (apt install mosquitto)")


async def test_fleet_discovery_reaches_only_the_searched_cells(tmp_path):
    rng = random.Random(5)
    inside = [(f"blr-{i}", 12.9716 + rng.uniform(-0.02, 0.02), 77.5946 + rng.uniform(-0.02, 0.02)) for i in range(10)]
    far = [(f"del-{i}", 28.61 + rng.uniform(-0.05, 0.05), 77.21 + rng.uniform(-0.05, 0.05)) for i in range(30)]
    agency = memory_agency()
    with Broker(tmp_path) as broker:
        fleet = Fleet(brokers=(broker.url,), agency=agency, sites=inside + far,
                      tariff=load_tariff_file(EXAMPLE_TARIFF), clock=time.time, rng=rng)
        ident = make_identity(agency, "node-f", lat=12.97, lon=77.59, now_s=time.time(), kind="BAP")
        node = NetworkNode(transport=MqttTransport(MqttSettings(brokers=(broker.url,), client_id="node-f")),
                           subscriber_id="node-f", signer=ident.signer, agency_public_key=agency.public_key,
                           clock=time.time, certificate=ident.certificate)
        async with fleet, node:
            found = await node.discover(12.9716, 77.5946, 5, timeout_s=10, expect=len(inside))
            assert sorted(c.subscriber_id for c in found) == sorted(s[0] for s in inside)
            assert fleet.received_outside({s[0] for s in inside}) == 0
            assert all(c.connectors[0].connector_type == "IEC_62196_T2" for c in found)
            retained = await node.discover_retained(12.9716, 77.5946, 5, timeout_s=5)
            assert sorted(c.subscriber_id for c in retained) == sorted(s[0] for s in inside)


async def test_a_refused_request_comes_back_as_an_error_callback(tmp_path):
    from protocols.beckn import messages
    from protocols.node.client import NodeError

    agency = memory_agency()
    with Broker(tmp_path) as broker:
        fleet = Fleet(brokers=(broker.url,), agency=agency, sites=[("blr-1", 12.97, 77.59)],
                      tariff=load_tariff_file(EXAMPLE_TARIFF), clock=time.time)
        ident = make_identity(agency, "node-n", lat=12.97, lon=77.59, now_s=time.time(), kind="BAP")
        node = NetworkNode(transport=MqttTransport(MqttSettings(brokers=(broker.url,), client_id="node-n")),
                           subscriber_id="node-n", signer=ident.signer, agency_public_key=agency.public_key,
                           clock=time.time, certificate=ident.certificate)
        async with fleet, node:
            await node.fetch_catalog("blr-1")
            doc = messages.select(node.context("select", transaction_id="t-nack", bpp_id="blr-1"),
                                  provider_id="someone-else", energy_wh=1000, certificate=ident.certificate)
            with pytest.raises(NodeError) as err:
                await node.request(doc, timeout_s=5)
            assert err.value.code == "nack" and err.value.details["error"]["code"] == "30001"
            assert fleet.members[0].link.stats["nacked"] == 1
