"""A Beckn 2.0 charger on MQTT only, found through the network's catalog discovery service and
bought from through a bridge: the real runtime's charger keeps its own signed ``catalog/publish``
(and the withdrawal of its catalog) retained on a mosquitto broker, its catalog naming the
bridge's URL as ``bppUri``; the bridge forwards them byte-exact to the reference CDS, whose keys
and the charger's come from the reference DeDi registry. A buyer on HTTP only discovers at the
CDS, buys through the bridge at the URL the catalog names, and verifies the receipt offline.

Registration as ``docs/bridge.md`` says: ``urja registry add`` lists the bridge's own key at its
public URL, and the charger's own key at the URL buyers reach it at, the bridge's."""
from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from agent.bootstrap import open_runtime
from agent.clock import Clock
from protocols.beckn.policy import Policy
from protocols.beckn2.dedi import (
    DediRegistryClient,
    DediRegistryServer,
    NetworkId,
    load_registry_file,
    record_from_subscription,
)
from protocols.bridge.cds_sink import CatalogServiceSink
from protocols.bridge.server import Bridge
from protocols.mqtt.identity import make_identity
from protocols.mqtt.stack import ChargerNetwork, NetworkConfig
from protocols.mqtt.topics import Topics
from protocols.mqtt.transport import MqttSettings, MqttTransport
from protocols.node.cds import discover_via_cds
from protocols.signing._codec import b64encode, format_time
from protocols.signing.agency import load_agency
from protocols.signing.keys import create_keyring
from tests.bridge_support import bridge_settings, http_buyer
from tests.mqtt_broker import MOSQUITTO, Broker
from tests.support import car_charge_flow, sim_config, wait_until

pytestmark = [pytest.mark.skipif(MOSQUITTO is None, reason="mosquitto is not installed (apt install mosquitto)"),
              pytest.mark.slow]
NETWORK = "acmenet.org/charge-net"


def listed(signer, now_s: float) -> dict:
    """The parties that are not under test here (the service, the buyer), listed directly."""
    request = {"subscriber_id": signer.subscriber_id, "unique_key_id": signer.key_id,
               "signing_public_key": b64encode(signer.public_key_bytes), "valid_from": format_time(now_s - 3600),
               "valid_until": format_time(now_s + 86_400)}
    return record_from_subscription(request, network=NetworkId.parse(NETWORK), url="http://127.0.0.1/", now_s=now_s)


def registry_add(file: Path, key_dir: Path, url: str, clock) -> None:
    from tools.cli import build_parser
    from tools.registry_cmd import handle_add

    args = build_parser().parse_args(["registry", "add", "--file", str(file), "--key-dir", str(key_dir),
                                      "--network-id", NETWORK, "--url", url])
    assert handle_add(args, clock=clock) == 0


async def test_a_buyer_finds_a_charger_on_mqtt_only_at_the_cds_and_buys_through_the_bridge(tmp_path):
    from protocols.beckn2.cds import CatalogDiscoveryService

    cfg = sim_config(tmp_path, auth="network")
    agency = load_agency(tmp_path / cfg.site_id / "agency")
    registry = DediRegistryServer()
    registry_url = f"http://127.0.0.1:{await registry.start()}/dedi"
    lookups = []

    def lookup(clock):
        client = DediRegistryClient(session=None, base_url=registry_url, clock=clock, network=NETWORK)
        lookups.append(client)
        return client
    retained = {}
    with Broker(tmp_path) as broker:
        async with open_runtime(cfg, clock=Clock(speed=20)) as rt:
            clock = rt.now_s  # one time for every party: the runtime's runs fast
            cds_id = make_identity(agency, "cds.test", lat=0, lon=0, now_s=clock(), kind="BPP")
            bridge_keys = create_keyring(tmp_path / "bridge-a" / "keys", subscriber_id="bridge-a", valid_days=2,
                                         now_s=clock())
            cds = CatalogDiscoveryService(signer=cds_id.signer, lookup=lookup(clock), clock=clock, network_id=NETWORK)
            cds_url = f"http://127.0.0.1:{await cds.start()}"
            bridge = Bridge(settings=bridge_settings("bridge-a", broker.url), signer_for=bridge_keys.signer,
                            clock=clock)
            await bridge.start(connect_timeout_s=5)
            bridge.sink = sink = CatalogServiceSink(services=[cds_url], session=bridge.http_session)
            bridge_url = f"http://127.0.0.1:{bridge.port}"
            network = ChargerNetwork.for_runtime(rt, config=NetworkConfig(
                brokers=(broker.url,), bridges=("bridge-a",), bridge_url=bridge_url,
                policy=Policy(profile="beckn-2.0", network_id=NETWORK)))
            node = await http_buyer(agency, [bridge_url], lat=cfg.place.lat, lon=cfg.place.lon, clock=clock,
                                    profile="beckn-2.0", network_id=NETWORK)
            registry_file = tmp_path / "registry.json"
            registry_add(registry_file, tmp_path / "bridge-a" / "keys", bridge.settings.public_url, clock)
            registry_add(registry_file, cfg.key_dir, bridge_url, clock)  # the charger, where buyers reach it
            for record in load_registry_file(registry_file)["records"]:
                registry.add(record)
            for signer in (cds_id.signer, node.identity.signer):
                registry.add(listed(signer, clock()))
            node.use_registry(lookup(clock))
            spy = MqttTransport(MqttSettings(brokers=(broker.url,), client_id="spy"),
                                on_message=lambda topic, payload, _: retained.__setitem__(topic, payload))
            topics = Topics()
            spy.subscribe(topics.catalog_request(cfg.place.lat, cfg.place.lon, cfg.site_id), 1)
            spy.subscribe(topics.catalog_request(cfg.place.lat, cfg.place.lon, cfg.site_id, withdraw=True), 1)
            try:
                async with spy:
                    await network.start(connect_timeout_s=5)
                    await node.start()
                    await wait_until(lambda: sink.stats.get("catalog_published", 0) >= 1, timeout_s=20,
                                     what="the bridge forwarded the charger's publish to the CDS")
                    assert cds.counters["catalogs_accepted"] >= 1
                    assert len(retained) == 2  # the publish and the withdrawal, both kept on the broker
                    found = await discover_via_cds(node, cds_url, cfg.place.lat, cfg.place.lon + 0.01, 5, timeout_s=5)
                    assert [c.subscriber_id for c in found] == [cfg.site_id]
                    # where the charger says it is reached, in the catalog it signed the publish of
                    assert cds.index.get(cfg.site_id, f"{cfg.site_id}:catalog")["bppUri"] == bridge_url
                    flow = car_charge_flow(node, rt, cfg.site_id)
                    result = await asyncio.wait_for(flow.run(), 60)
                    await network.close()  # the charger goes: the bridge forwards its own withdrawal
                    network = None
                    await wait_until(lambda: sink.stats.get("catalog_withdrawn", 0) >= 1, timeout_s=20,
                                     what="the bridge forwarded the charger's withdrawal")
                    assert await discover_via_cds(node, cds_url, cfg.place.lat, cfg.place.lon, 5, timeout_s=5) == []
            finally:
                await node.close()
                if network is not None:
                    await network.close()
                await bridge.close()
                await cds.close()
                for client in lookups:
                    await client.close()
                await registry.close()
    check = result.receipt_check
    assert check is not None and check.subscriber_id == cfg.site_id and check.energy_wh >= 100
    assert result.paid_paise >= check.total_paise
    answers = node.transport.answers
    assert answers and all(status == 200 and url.startswith(bridge_url) for _, status, _, url in answers)
    assert sink.stats.get("catalog_refused", 0) == 0
    # the service knew the charger's key by the charger's own listing, at the bridge's URL
    assert cfg.site_id in {subscriber for subscriber, _ in lookups[0]._cache}
    urls = {r["details"]["subscriber_id"]: r["details"]["url"] for r in load_registry_file(registry_file)["records"]}
    assert urls == {"bridge-a": "https://bridge-a.example", cfg.site_id: bridge_url}
