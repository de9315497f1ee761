"""The charger's catalog publisher against the reference catalog service, over real HTTP."""
from __future__ import annotations

import asyncio
import json
import logging
import random
import time

import pytest
from aiohttp import web

from agent.aio import cancel_and_wait
from drivers.configfile import ConfigError, Section
from protocols.beckn2 import cds_wire as w
from protocols.beckn2.cds import CatalogDiscoveryService
from protocols.beckn2.cds_client import CdsDiscovery, discover_intent
from protocols.beckn2.publish import CatalogPublisher, catalog_services
from protocols.http.serve import serve
from protocols.signing.keys import StaticKeyLookup
from tests.cds_support import ev_catalog, new_id, record, signer

NETWORK = "acmenet.org/charge-net"
CDS_KEY = signer("cds.example.in", "d1", 7)
NODE_KEY = signer("node.example.in", "n1", 8)
CHARGER = signer("charger.example.in", "k1", 3)
LOOKUP = StaticKeyLookup([record(k) for k in (CDS_KEY, NODE_KEY, CHARGER)])


class Charger:
    """The part of a charger the publisher sees: its catalog and its HTTP server."""

    def __init__(self):
        self.status = "Available"
        self.bpp_id = CHARGER.subscriber_id
        self.calls = 0

    def catalog(self) -> dict:
        self.calls += 1
        return ev_catalog(self.bpp_id, 12.975, 77.60, status=self.status)


async def start_cds(port: int = 0):
    cds = CatalogDiscoveryService(signer=CDS_KEY, lookup=LOOKUP, clock=time.time, network_id=NETWORK,
                                  retry_delay_s=0.01)
    return cds, await cds.start(port=port)


@pytest.fixture
async def site():
    cds_a, port_a = await start_cds()
    cds_b, port_b = await start_cds()
    charger = Charger()
    app = web.Application()

    # the route is on the app before it serves; the publisher it reaches is made by each test
    holder = {}

    async def on_publish(request):
        return await holder["p"].handle_on_publish(request)

    app.router.add_post("/catalog/on_publish", on_publish)
    runner, port = await serve(app, "127.0.0.1", 0)
    uri = f"http://127.0.0.1:{port}"
    tasks = []

    def go(services, **kw):
        p = CatalogPublisher(catalog=charger.catalog, signer=CHARGER, clock=time.time, services=services,
                             bpp_id=CHARGER.subscriber_id, bpp_uri=uri, lookup=LOOKUP, network_id=NETWORK,
                             rng=random.Random(1), **{"debounce_s": 0.05, "retry_initial_s": 0.05,
                                                      "retry_max_s": 0.2, **kw})
        holder["p"] = p
        tasks.append(asyncio.get_running_loop().create_task(p.run()))
        return p

    s = type("Site", (), {})()
    s.cds_a, s.cds_b, s.url_a, s.url_b, s.charger, s.go = (cds_a, cds_b, f"http://127.0.0.1:{port_a}",
                                                          f"http://127.0.0.1:{port_b}", charger, go)
    yield s
    await cancel_and_wait(tasks)
    await runner.cleanup()
    await cds_a.close()
    await cds_b.close()


def all_accepted(n: int = 1):
    return lambda services: all(st.state == "accepted" and st.accepted_count >= n for st in services.values())


async def found_status(cds_url: str) -> list[str]:
    async with CdsDiscovery(cds_url=cds_url, signer=NODE_KEY, lookup=LOOKUP, clock=time.time,
                            network_id=NETWORK) as node:
        found = await node.discover(discover_intent(lat=12.9716, lon=77.5946, radius_km=5))
    return [c["resources"][0]["resourceAttributes"]["stationStatus"] for c in found]


async def test_the_catalog_is_published_to_every_service_at_start(site):
    p = site.go([site.url_a, site.url_b])
    await p.wait_for(all_accepted(), 10)
    assert await found_status(site.url_a) == ["Available"] and await found_status(site.url_b) == ["Available"]


async def test_a_change_of_availability_is_published_again_once_and_settled(site):
    p = site.go([site.url_a])
    await p.wait_for(all_accepted(), 10)
    site.charger.status = "Charging"
    for _ in range(5):  # a session start changes several things at once
        p.changed()
    await p.wait_for(all_accepted(2), 10)
    assert await found_status(site.url_a) == ["Charging"]
    await site.cds_a.idle()
    assert site.cds_a.counters["published"] == 2


async def test_an_unchanged_catalog_is_not_sent_again(site):
    p = site.go([site.url_a])
    await p.wait_for(all_accepted(), 10)
    calls = site.charger.calls
    p.changed()
    await p.wait_for(lambda _: site.charger.calls > calls, 10)
    await p.wait_for(all_accepted(), 10)
    assert site.cds_a.counters["published"] == 1


async def test_a_refused_catalog_is_logged_in_one_line_and_retried_with_backoff(site, caplog):
    site.charger.bpp_id = "someone.else.in"  # a catalog the service must refuse
    p = site.go([site.url_a])
    with caplog.at_level(logging.WARNING, logger="urja.publish"):
        await p.wait_for(lambda s: s[site.url_a].attempts >= 3, 10)
    state = p.services[site.url_a]
    assert state.state == "refused" and "NOT_OWNER" in state.last_error
    lines = [r.getMessage() for r in caplog.records if "refused the catalog" in r.getMessage()]
    assert len(lines) >= 2 and all("\n" not in line and "retrying in" in line for line in lines)
    site.charger.bpp_id = CHARGER.subscriber_id
    p.changed()
    await p.wait_for(all_accepted(), 10)


async def test_a_service_that_is_down_does_not_hold_back_the_others_and_is_caught_up_later(site):
    spare, port = await start_cds()
    await spare.close()
    down_url = f"http://127.0.0.1:{port}"
    p = site.go([site.url_a, down_url])
    await p.wait_for(lambda s: s[site.url_a].state == "accepted" and s[down_url].attempts >= 2, 10)
    assert p.services[down_url].state == "failed" and "not reachable" in p.services[down_url].last_error
    back, _ = await start_cds(port)
    try:
        await p.wait_for(all_accepted(), 10)
        assert await found_status(down_url) == ["Available"]
    finally:
        await back.close()


async def test_a_forged_on_publish_is_refused_and_changes_nothing(site):
    p = site.go([site.url_a])
    await p.wait_for(all_accepted(), 10)
    forger = signer("cds.example.in", "d1", 77)
    body = w.encode({"context": w.context(action="catalog/on_publish", message_id=new_id(), transaction_id=new_id(),
                                          now_s=time.time()),
                     "message": {"results": [{"catalogId": "x", "status": "REJECTED"}]}})
    status, ack = await p.receive_on_publish(body, w.signed_headers(body, forger, time.time())["Authorization"])
    assert status == 401 and ack["status"] == "NACK" and p.services[site.url_a].state == "accepted"
    status, ack = await p.receive_on_publish(body, w.signed_headers(body, CDS_KEY, time.time())["Authorization"])
    assert status == 400 and "answers no publish" in ack["error"]["errorMessage"]


def test_catalog_services_are_read_from_the_network_table_or_refused_in_one_line():
    assert catalog_services(Section({"catalog_services": ["https://cds.example.net/"]}, "site.toml", "network")) \
        == ("https://cds.example.net",)
    for bad in (["ftp://x"], "https://x", ["https://a", "https://a"], [1]):
        with pytest.raises(ConfigError) as e:
            catalog_services(Section({"catalog_services": bad}, "site.toml", "network"))
        assert "network.catalog_services" in str(e.value) and "site.toml" in str(e.value)
    assert json.dumps(catalog_services(Section({}, "site.toml", "network"))) == "[]"


def test_the_network_table_takes_catalog_services_and_names_a_bad_one():
    from protocols.mqtt.stack import NetworkConfig

    cfg = NetworkConfig.from_table({"catalog_services": ["https://cds.example.in"]}, "site.toml")
    assert cfg.catalog_services == ("https://cds.example.in",)
    assert NetworkConfig.from_table({}, "site.toml").catalog_services == ()
    with pytest.raises(ConfigError) as e:
        NetworkConfig.from_table({"catalog_services": ["cds.example.in"]}, "site.toml")
    assert "network.catalog_services" in str(e.value)


async def test_a_charger_that_cannot_be_called_back_takes_the_result_from_the_answer(site):
    p = CatalogPublisher(catalog=site.charger.catalog, signer=CHARGER, clock=time.time, services=[site.url_a],
                         bpp_id=CHARGER.subscriber_id, bpp_uri=None, lookup=LOOKUP, network_id=NETWORK,
                         debounce_s=0.0, retry_initial_s=0.05, retry_max_s=0.2, rng=random.Random(1))
    task = asyncio.get_running_loop().create_task(p.run())
    try:
        await p.wait_for(all_accepted(), 10)
        assert await found_status(site.url_a) == ["Available"]
        site.charger.bpp_id = "someone.else.in"
        p.changed()
        await p.wait_for(lambda s: s[site.url_a].state == "refused", 10)
        assert "HTTP 409" in p.services[site.url_a].last_error and "NOT_OWNER" not in p.services[site.url_a].last_error
        assert "someone.else.in" in p.services[site.url_a].last_error
    finally:
        await cancel_and_wait([task])


async def test_a_charger_behind_bridges_keeps_a_signed_publish_and_withdrawal_on_its_broker_and_renews_them():
    from protocols.beckn2.publish import RETAINED
    from protocols.errors import ProtocolError
    from protocols.signing.beckn import Verifier, parse_frame

    kept, refusals = [], [ProtocolError("broker away")]

    async def retain(publish: bytes, withdraw: bytes) -> None:
        if refusals:
            raise refusals.pop()
        kept.append((publish, withdraw))
    charger = Charger()
    with pytest.raises(ValueError):
        CatalogPublisher(catalog=charger.catalog, signer=CHARGER, clock=time.time, services=(RETAINED,),
                         bpp_id=CHARGER.subscriber_id, bpp_uri=None, lookup=LOOKUP)
    p = CatalogPublisher(catalog=charger.catalog, signer=CHARGER, clock=time.time, services=(RETAINED,),
                         bpp_id=CHARGER.subscriber_id, bpp_uri=None, lookup=LOOKUP, network_id=NETWORK,
                         rng=random.Random(1), debounce_s=0.05, retry_initial_s=0.05, retry_max_s=0.2,
                         retain=retain, retained_window_s=600)
    task = asyncio.get_running_loop().create_task(p.run())
    try:
        # the broker refused once: tried again; then kept, and signed afresh on a change
        await p.wait_for(lambda s: s[RETAINED].accepted_count == 1, 5)
        charger.status = "Charging"
        p.changed()
        await p.wait_for(lambda s: s[RETAINED].accepted_count == 2, 5)
    finally:
        await cancel_and_wait([task])
    verifier = Verifier(lookup=LOOKUP, clock=time.time)
    (first, _), (publish, withdraw) = kept
    assert first != publish
    docs = []
    for payload in (publish, withdraw):
        frame = parse_frame(payload)
        sender = (await verifier.verify_message(frame.body, frame.authorization)).sender
        assert sender.subscriber_id == CHARGER.subscriber_id and sender.expires_s - sender.created_s == 600
        docs.append(json.loads(frame.body))
    for doc in docs:  # the NAT form: a service answers whoever forwards it, no callback
        assert doc["context"]["action"] == "catalog/publish" and "bppUri" not in doc["context"]
        assert doc["context"]["ttl"] == "PT600S"
    (catalog,), (gone,) = docs[0]["message"]["catalogs"], docs[1]["message"]["catalogs"]
    assert gone == {**catalog, "isActive": False} and catalog.get("isActive") is not False
    assert "Charging" in json.dumps(catalog)
    # renewed halfway through the window, without a change
    assert p.services[RETAINED].dirty and p.services[RETAINED].next_try_at > asyncio.get_running_loop().time() + 200
