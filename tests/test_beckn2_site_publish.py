"""A Beckn 2.0 charger keeps its catalog current at the reference catalog service: the real
runtime on the simulated board publishes at start and again when a connector's availability or
the price changes, and a discover at the service shows each change. Keys are looked up the
DeDi way, in the reference registry, over real HTTP."""
from __future__ import annotations

import json
import socket
import uuid

import aiohttp
import pytest

from agent.bootstrap import open_runtime
from agent.clock import Clock
from agent.tariff_file import tariff_from_toml
from protocols.beckn2.cds import CatalogDiscoveryService
from protocols.beckn2.cds_client import CdsDiscovery, discover_intent
from protocols.beckn2.dedi import DediRegistryClient, DediRegistryServer, NetworkId, record_from_subscription
from protocols.signing._codec import b64encode, format_time
from tests.cds_support import signer
from tests.mqtt_broker import MOSQUITTO, Broker
from tests.support import sim_config

NETWORK = "urja.local/ev-charging"  # the site's [network] network_id (the default)
CDS_KEY = signer("cds.test", "d1", 7)
NODE_KEY = signer("node.test", "n1", 8)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def listing(s, now_s: float) -> dict:
    """A registry record for a key that is not in a keyring (the service's, the node's)."""
    request = {"subscriber_id": s.subscriber_id, "unique_key_id": s.key_id,
               "signing_public_key": b64encode(s.public_key_bytes), "valid_from": format_time(now_s - 3600),
               "valid_until": format_time(now_s + 86_400)}
    return record_from_subscription(request, network=NetworkId.parse(NETWORK), url="http://127.0.0.1/",
                                    now_s=now_s)


class World:
    """The reference registry and catalog service, and a node asking the service."""

    def __init__(self, clock):
        self.clock = clock
        self.registry = DediRegistryServer()

    async def start(self):
        now = self.clock.wall_s()
        for s in (CDS_KEY, NODE_KEY):
            self.registry.add(listing(s, now))
        self.registry_url = f"http://127.0.0.1:{await self.registry.start()}/dedi"
        self.session = aiohttp.ClientSession()
        lookup = DediRegistryClient(session=self.session, base_url=self.registry_url, clock=self.clock.wall_s,
                                    network=NETWORK, cache_ttl_s=0.0, negative_ttl_s=0.0)
        self.cds = CatalogDiscoveryService(signer=CDS_KEY, lookup=lookup, clock=self.clock.wall_s,
                                           network_id=NETWORK, retry_delay_s=0.01)
        self.cds_url = f"http://127.0.0.1:{await self.cds.start()}"
        self.node = CdsDiscovery(cds_url=self.cds_url, signer=NODE_KEY, lookup=lookup, clock=self.clock.wall_s,
                                 network_id=NETWORK)
        await self.node.start()
        return self

    def list_charger(self, key_dir):
        request = json.loads((key_dir / "subscription-request.json").read_text())
        self.registry.add(record_from_subscription(request, network=NetworkId.parse(NETWORK),
                                                   url="http://charger.test/", now_s=self.clock.wall_s()))

    async def close(self):
        await self.node.close()
        await self.cds.close()
        await self.session.close()
        await self.registry.close()

    async def seen(self, site_id: str) -> tuple[list[str], list]:
        """What a discover around the site answers for it: (resource codes, unit prices)."""
        catalogs = await self.node.discover(discover_intent(lat=12.9352, lon=77.6245, radius_km=2.0))
        ours = [c for c in catalogs if c.get("bppId") == site_id]
        codes = [r["descriptor"].get("code") for c in ours for r in c.get("resources", [])]
        prices = [cons["considerationAttributes"].get("value") for c in ours for o in c.get("offers", [])
                  for cons in o.get("considerations", []) if "considerationAttributes" in cons]
        return codes, prices


@pytest.fixture
async def world():
    clock = Clock(speed=1)
    w = await World(clock).start()
    yield w
    await w.close()


async def _follows_changes(rt, world, site_id: str, publisher) -> None:
    """Each change is published (every service accepted one more catalog), then a discover
    shows it."""
    async def published(count: int) -> None:
        await publisher.wait_for(lambda services: all(s.accepted_count >= count and s.state == "accepted"
                                                      for s in services.values()), 20)

    await published(1)
    assert await world.seen(site_id) == (["Available"], [21.24])
    connector = rt.connectors()[0].connector_id
    await rt.reserve(reservation_id="r-1", connector_id=connector, expires_s=rt.now_s() + 3600)
    await published(2)
    assert await world.seen(site_id) == (["Reserved"], [21.24])
    # what the owner's page does when it saves a tariff: the facade's listeners get ("tariff", ...)
    rt.set_tariff(tariff_from_toml({"tariff": {"id": "flat-21", "currency": "INR", "gst_percent": 18,
                                               "element": [{"energy_per_kwh": 21.0}]}}))
    await published(3)
    assert await world.seen(site_id) == (["Reserved"], [24.78])


@pytest.mark.runtime
async def test_a_charger_with_http_publishes_each_change_of_availability_and_price(tmp_path, world):
    port = free_port()
    cfg = sim_config(tmp_path, auth="network", extra_toml=(
        f'\n[http]\nlisten = "127.0.0.1:{port}"\nprofile = "beckn-2.0"\ndedi_url = "{world.registry_url}"\n'
        f'catalog_services = ["{world.cds_url}"]\n'))
    world.list_charger(tmp_path / cfg.site_id / "keys")
    async with open_runtime(cfg, clock=world.clock) as rt:
        publisher = rt.bindings["http"].publisher
        assert publisher is not None and publisher.publisher.bpp_uri == f"http://127.0.0.1:{port}"
        await _follows_changes(rt, world, cfg.site_id, publisher.publisher)
        # the results came by /catalog/on_publish to the charger's own server
        assert world.cds.counters.get("catalog/on_publish_sent") == 3


@pytest.mark.runtime
async def test_a_charger_on_mqtt_only_publishes_without_a_callback_and_takes_the_results_from_the_answer(
        tmp_path, world):
    if MOSQUITTO is None:
        pytest.skip("mosquitto is not installed (apt install mosquitto)")
    with Broker(tmp_path) as broker:
        cfg = sim_config(tmp_path, auth="network", extra_toml=(
            f'\n[network]\nbrokers = ["{broker.url}"]\nprofile = "beckn-2.0"\nnetwork_id = "{NETWORK}"\n'
            f'dedi_url = "{world.registry_url}"\ncatalog_services = ["{world.cds_url}"]\n'))
        world.list_charger(tmp_path / cfg.site_id / "keys")
        async with open_runtime(cfg, clock=world.clock) as rt:
            network = rt.bindings["network"].network
            assert network.publisher is not None and network.publisher.publisher.bpp_uri is None
            await _follows_changes(rt, world, cfg.site_id, network.publisher.publisher)
            assert world.cds.counters.get("catalog/on_publish_sent") is None  # no callback: the answer was it


@pytest.mark.runtime
async def test_a_buyer_without_a_certificate_is_known_by_the_dedi_registry_and_one_of_another_network_is_not(
        tmp_path, world):
    from protocols.beckn import messages as m
    from protocols.beckn2 import codec
    from protocols.http.bap import BapReceiver
    from protocols.signing.beckn import sign_body

    outsider = signer("outsider.test", "o1", 9)
    world.registry.add(record_from_subscription(
        {"subscriber_id": outsider.subscriber_id, "unique_key_id": outsider.key_id,
         "signing_public_key": b64encode(outsider.public_key_bytes), "valid_from": format_time(0),
         "valid_until": format_time(world.clock.wall_s() + 86_400)},
        network=NetworkId.parse("elsewhere.org/other-net"), url="http://127.0.0.1/", now_s=world.clock.wall_s()))
    cfg = sim_config(tmp_path, auth="network", extra_toml=(
        f'\n[http]\nlisten = "127.0.0.1:0"\nprofile = "beckn-2.0"\ndedi_url = "{world.registry_url}"\n'))
    async with open_runtime(cfg, clock=world.clock) as rt:
        http = rt.bindings["http"]
        assert http.publisher is None  # no catalog services named: nothing to publish to
        receiver = BapReceiver(profile="beckn-2.0", signer=NODE_KEY, clock=rt.now_s)
        port = await receiver.start()

        async def select(buyer) -> tuple[int, dict, dict]:
            ctx = m.new_context(action="select", bap_id=buyer.subscriber_id, bap_uri=f"http://127.0.0.1:{port}/",
                                transaction_id=str(uuid.uuid4()), message_id=str(uuid.uuid4()),
                                timestamp_s=rt.now_s(), bpp_id=cfg.site_id, bpp_uri=http.bpp.bpp_uri)
            doc = codec.request_v2(m.select(ctx, provider_id=cfg.site_id, energy_wh=1000), network_id=NETWORK)
            body = m.encode(doc)
            now = int(rt.now_s())
            async with aiohttp.ClientSession() as client:
                async with client.post(f"http://127.0.0.1:{http.port}/select", data=body, headers={
                        "Authorization": sign_body(body, buyer, created_s=now, expires_s=now + 60)}) as r:
                    return r.status, await r.json(), doc
        try:
            status, ack, doc = await select(NODE_KEY)
            assert status == 200 and ack["status"] == "ACK", ack
            await receiver.wait_for("on_select", transaction_id=doc["context"]["transactionId"], timeout_s=10)
            status, ack, _ = await select(outsider)
            assert status == 401 and ack["status"] == "NACK"
            assert "not a member of network" in str(ack["error"]), ack
        finally:
            await receiver.close()


def test_dedi_url_is_checked_in_one_line_naming_the_key():
    from drivers.configfile import ConfigError
    from protocols.http.binding import parse_table
    from protocols.mqtt.stack import NetworkConfig

    cfg = NetworkConfig.from_table({"dedi_url": "https://dedi.example/dedi", "network_id": NETWORK}, "site.toml")
    assert cfg.dedi_url == "https://dedi.example/dedi"
    assert parse_table({"dedi_url": "http://127.0.0.1:9/dedi"}, "site.toml").dedi_url == "http://127.0.0.1:9/dedi"
    for table, where in (({"dedi_url": "dedi.example"}, "network.dedi_url"),
                         ({"dedi_url": "https://d.example", "registry_url": "https://r.example"}, "network.dedi_url"),
                         ({"dedi_url": "https://d.example", "network_id": "acme/net/x"}, "network.network_id")):
        with pytest.raises(ConfigError) as e:
            NetworkConfig.from_table(table, "site.toml")
        assert where in str(e.value) and "site.toml" in str(e.value) and "\n" not in str(e.value)
