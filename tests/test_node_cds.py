"""The reference node discovering through the reference catalog discovery service
(``protocols/beckn2/cds.py``) over real HTTP, with keys looked up in the reference DeDi registry.

What the node must do: check the service's counter-signed Ack and its signed ``on_discover``
(the service's key from the registry), and take only the catalogs it can vouch for: a certified
charger by its agency certificate (no lookup), a charger without one by the key the registry
lists for it; a catalog that shows someone else's certificate is dropped with the reason."""
from __future__ import annotations

import asyncio
import json
import time
import uuid

import pytest
from test_beckn_fakes import FakeCharger

from protocols.beckn.bpp import Bpp
from protocols.beckn2 import cds_wire as w
from protocols.beckn2.catalog import catalog_v2
from protocols.beckn2.cds import CatalogDiscoveryService
from protocols.beckn2.dedi import DediRegistryClient, DediRegistryServer, NetworkId, record_from_subscription
from protocols.beckn2.profile import Beckn2Profile
from protocols.mqtt.identity import make_identity
from protocols.mqtt.transport import MqttSettings, MqttTransport
from protocols.node.cds import discover_via_cds
from protocols.node.client import NetworkNode, NodeError
from protocols.signing._codec import b64encode, format_time
from protocols.signing.agency import init_agency
from protocols.signing.beckn import Verifier
from protocols.signing.keys import StaticKeyLookup

NETWORK = "acmenet.org/charge-net"


def listing(s, now_s: float, network: str = NETWORK) -> dict:
    request = {"subscriber_id": s.subscriber_id, "unique_key_id": s.key_id,
               "signing_public_key": b64encode(s.public_key_bytes), "valid_from": format_time(now_s - 3600),
               "valid_until": format_time(now_s + 86_400)}
    return record_from_subscription(request, network=NetworkId.parse(network), url="http://127.0.0.1/",
                                    now_s=now_s)


def charger_catalog(signer, certificate, clock) -> dict:
    """The 2.0 catalog a charger publishes (the reference charger's site, this key and name)."""
    bpp = Bpp(service=FakeCharger(clock=clock), signer=signer, bpp_id=signer.subscriber_id,
              verifier=Verifier(lookup=StaticKeyLookup(), clock=clock), bpp_uri="http://charger.test/", clock=clock,
              certificate=certificate, profile=Beckn2Profile(bpp_id=signer.subscriber_id,
                                                             bpp_uri="http://charger.test/"))
    return catalog_v2(bpp)


async def publish(cds_url: str, signer, catalog: dict, clock) -> int:
    """A publish without a callback URL, as a charger behind NAT sends it; the HTTP status."""
    import aiohttp

    ctx = w.context(action="catalog/publish", message_id=str(uuid.uuid4()), transaction_id=str(uuid.uuid4()), now_s=clock(),
                    network_id=NETWORK, bppId=signer.subscriber_id)
    body = w.encode({"context": ctx, "message": {"catalogs": [catalog]}})
    async with aiohttp.ClientSession() as http:
        async with http.post(cds_url + "/catalog/publish", data=body,
                             headers=w.signed_headers(body, signer, clock())) as resp:
            return resp.status


@pytest.fixture
async def network(tmp_path):
    clock = time.time
    now = clock()
    agency = init_agency(tmp_path / "agency")
    certified = make_identity(agency, "in.test.charger", lat=12.9352, lon=77.6245, now_s=now)
    uncertified = make_identity(agency, "in.test.dedi-charger", lat=12.9400, lon=77.6300, now_s=now)
    other = make_identity(agency, "in.test.other", lat=12.9500, lon=77.6200, now_s=now)
    node_id = make_identity(agency, "app.test", lat=12.93, lon=77.62, now_s=now, kind="BAP")
    cds_id = make_identity(agency, "cds.test", lat=0, lon=0, now_s=now, kind="BPP")
    registry = DediRegistryServer()
    for ident in (certified, uncertified, other, node_id, cds_id):
        registry.add(listing(ident.signer, now))
    registry_url = f"http://127.0.0.1:{await registry.start()}/dedi"
    cds_lookup = DediRegistryClient(session=None, base_url=registry_url, clock=clock, network=NETWORK)
    cds = CatalogDiscoveryService(signer=cds_id.signer, lookup=cds_lookup, clock=clock, network_id=NETWORK)
    cds_url = f"http://127.0.0.1:{await cds.start()}"
    good = charger_catalog(certified.signer, certified.certificate, clock)
    assert await publish(cds_url, certified.signer, good, clock) == 200
    # no certificate in its catalog: the node finds its key in the registry
    assert await publish(cds_url, uncertified.signer, charger_catalog(uncertified.signer, None, clock), clock) == 200
    # someone else's certificate and signed offer, published under its own name
    forged = json.loads(json.dumps(good))
    forged["id"], forged["bppId"] = "in.test.other:catalog", "in.test.other"
    assert await publish(cds_url, other.signer, forged, clock) == 200
    node = NetworkNode(transport=MqttTransport(MqttSettings(brokers=("mqtt://127.0.0.1:1",), client_id="n")),
                       subscriber_id="app.test", signer=node_id.signer, agency_public_key=agency.public_key,
                       clock=clock, certificate=node_id.certificate, profile="beckn-2.0", network_id=NETWORK)
    node.use_registry(DediRegistryClient(session=None, base_url=registry_url, clock=clock, network=NETWORK))
    node.test_paths = (tmp_path, registry_url)
    yield node, cds, cds_url, registry
    await node.registry.close()
    await cds.close()
    await cds_lookup.close()
    await registry.close()


async def test_the_node_finds_chargers_through_the_cds_and_keeps_only_the_ones_it_can_vouch_for(network):
    node, cds, cds_url, registry = network
    lookups = registry.lookups
    found = await discover_via_cds(node, cds_url, 12.94, 77.62, 3.0, timeout_s=5)
    assert {c.subscriber_id for c in found} == {"in.test.dedi-charger", "in.test.charger"}
    by_id = {c.subscriber_id: c for c in found}
    assert by_id["in.test.charger"].certificate is not None and by_id["in.test.charger"].price == "21.24"
    assert by_id["in.test.dedi-charger"].certificate is None
    assert "in.test.other:catalog" in node.last_rejection and "in.test.charger" in node.last_rejection
    assert cds.counters["discovered"] == 1 and cds.counters["on_discover_sent"] == 1
    # the service's key and the uncertified charger's were asked for; the certified charger's never
    assert registry.lookups > lookups
    assert {subscriber for subscriber, _ in node.registry._cache} == {"cds.test", "in.test.dedi-charger"}


async def test_a_connector_filter_is_asked_of_the_service_in_the_packs_words(network):
    node, _, cds_url, _ = network
    found = await discover_via_cds(node, cds_url, 12.94, 77.62, 3.0, connector_type="IEC_62196_T2", timeout_s=5)
    assert {c.subscriber_id for c in found} == {"in.test.charger", "in.test.dedi-charger"}
    assert await discover_via_cds(node, cds_url, 12.94, 77.62, 3.0, connector_type="CHADEMO", timeout_s=5) == []


async def test_a_service_whose_key_the_registry_does_not_list_is_not_believed(network):
    node, cds, cds_url, registry = network
    assert registry.revoke("cds.test", cds.signer.key_id)
    node.registry.forget("cds.test", cds.signer.key_id)
    with pytest.raises(NodeError) as e:
        await asyncio.wait_for(discover_via_cds(node, cds_url, 12.94, 77.62, 3.0, timeout_s=2), 10)
    assert "without a valid Ack" in str(e.value)


async def test_a_node_without_a_registry_is_told_to_name_one(network):
    node, _, cds_url, _ = network
    registry, node.registry = node.registry, None
    try:
        with pytest.raises(NodeError) as e:
            await discover_via_cds(node, cds_url, 12.94, 77.62, 3.0)
        assert "dedi_url" in str(e.value)
    finally:
        node.registry = registry


async def test_urja_discover_with_cds_asks_the_service_and_lists_the_verified_chargers(network):
    from protocols.signing.keys import Profile, create_keyring
    from tools.cli import build_parser
    from tools.discover_cmd import run

    node, _, cds_url, registry = network
    tmp_path, registry_url = node.test_paths
    keyring = create_keyring(tmp_path / "app-keys", subscriber_id="app.cli", valid_days=1, now_s=time.time(),
                             profile=Profile(type="BAP"))
    registry.add(record_from_subscription(keyring.subscription_request(), network=NetworkId.parse(NETWORK),
                                          url="http://127.0.0.1/", now_s=time.time()))
    config = tmp_path / "app.toml"
    config.write_text(f'''[network]
brokers = ["mqtt://127.0.0.1:1"]
agency_public_key = "{tmp_path / 'agency' / 'agency.pub'}"
profile = "beckn-2.0"
network_id = "{NETWORK}"
dedi_url = "{registry_url}"

[node]
key_dir = "app-keys"
cds_url = "{cds_url}"
''')
    args = build_parser().parse_args(["discover", "--config", str(config), "--near", "12.94,77.62",
                                      "--radius-km", "3", "--timeout", "5"])
    found = await run(args)
    assert {c.subscriber_id for c in found} == {"in.test.charger", "in.test.dedi-charger"}
    # --cds names the service instead of the file's
    args = build_parser().parse_args(["discover", "--config", str(config), "--near", "12.94,77.62",
                                      "--radius-km", "3", "--timeout", "2", "--cds", "http://127.0.0.1:1"])
    with pytest.raises(NodeError) as e:
        await run(args)
    assert "127.0.0.1:1/discover" in str(e.value)
