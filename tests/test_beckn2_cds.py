"""The reference catalog discovery service over real HTTP: publish, on_publish, discover, on_discover."""
from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest
from aiohttp import web

from protocols.beckn2 import cds_wire as w
from protocols.beckn2.cds import CatalogDiscoveryService
from protocols.beckn2.cds_client import CdsDiscovery, DiscoveryError, discover_intent
from protocols.http.serve import serve
from protocols.mqtt import geohash
from protocols.signing.beckn import Verifier
from protocols.signing.countersign import verify_counter_signature
from protocols.signing.keys import StaticKeyLookup
from tests.cds_support import NOW_S, Clock, ack_errors, ev_catalog, new_id, record, request_errors, signer

NETWORK = "acmenet.org/charge-net"
CDS_KEY = signer("cds.example.in", "d1", 7)
NODE_KEY = signer("node.example.in", "n1", 8)
CHARGERS = [signer(f"charger{i}.example.in", "k1", 10 + i) for i in range(3)]
BENGALURU = (12.9716, 77.5946)


class Publisher:
    """A charger's endpoint for catalog/on_publish, recording what arrives."""

    def __init__(self, clock):
        self.verifier = Verifier(lookup=StaticKeyLookup([record(CDS_KEY)]), clock=clock)
        self.received: asyncio.Queue = asyncio.Queue()
        self.runner = None
        self.uri = ""

    async def start(self):
        app = web.Application()
        app.router.add_post("/catalog/on_publish", self.handle)
        self.runner, port = await serve(app, "127.0.0.1", 0)
        self.uri = f"http://127.0.0.1:{port}"

    async def handle(self, request):
        body = await request.read()
        verified = await self.verifier.verify_message(body, request.headers["Authorization"])
        await self.received.put((json.loads(body), verified))
        return web.json_response(w.ack(request_body=body, message_id=json.loads(body)["context"]["messageId"],
                                       signer=CDS_KEY, now_s=NOW_S))


@pytest.fixture
async def world():
    clock = Clock()
    lookup = StaticKeyLookup([record(k) for k in (CDS_KEY, NODE_KEY, *CHARGERS)])
    cds = CatalogDiscoveryService(signer=CDS_KEY, lookup=lookup, clock=clock, network_id=NETWORK,
                                  retry_delay_s=0.01)
    port = await cds.start()
    pub = Publisher(clock)
    await pub.start()
    session = aiohttp.ClientSession()
    node = CdsDiscovery(cds_url=f"http://127.0.0.1:{port}", signer=NODE_KEY, lookup=lookup, clock=clock,
                        network_id=NETWORK)
    await node.start()
    world = type("World", (), {})()
    world.clock, world.cds, world.pub, world.node, world.session, world.url = clock, cds, pub, node, session, \
        f"http://127.0.0.1:{port}"
    yield world
    await node.close()
    await session.close()
    await pub.runner.cleanup()
    await cds.close()


def publish_body(pub_uri: str, key, catalogs: list, *, message_id: str | None = None, **ctx_over) -> bytes:
    ctx = w.context(action="catalog/publish", message_id=message_id or new_id(), transaction_id=new_id(),
                    now_s=NOW_S, network_id=NETWORK, bppId=key.subscriber_id, bppUri=pub_uri)
    ctx.update(ctx_over)
    return w.encode({"context": ctx, "message": {"catalogs": catalogs}})


async def post(world, path: str, body: bytes, key) -> tuple[int, dict, dict]:
    headers = w.signed_headers(body, key, NOW_S)
    async with world.session.post(world.url + path, data=body, headers=headers) as resp:
        return resp.status, json.loads(await resp.read()), dict(resp.headers)


async def publish(world, key, catalogs, **kw) -> dict:
    body = publish_body(world.pub.uri, key, catalogs, **kw)
    assert request_errors(json.loads(body), "/catalog/publish") == []
    status, ack, _ = await post(world, "/catalog/publish", body, key)
    assert status == 200 and ack["status"] == "ACK" and ack_errors(ack) == []
    await verify_counter_signature(ack, request_body=body, message_id=json.loads(body)["context"]["messageId"],
                                   verifier=world.node.verifier)
    on_publish, verified = await asyncio.wait_for(world.pub.received.get(), 5)
    assert verified.sender.subscriber_id == "cds.example.in"
    assert on_publish["context"]["requestDigest"] == w.request_digest(body)
    assert request_errors(on_publish, "/catalog/on_publish") == []
    return on_publish


async def test_a_published_charger_is_discovered_by_circle_and_connector(world):
    near = ev_catalog("charger0.example.in", 12.975, 77.60)
    far = ev_catalog("charger1.example.in", 13.30, 77.60)
    other_plug = ev_catalog("charger2.example.in", 12.972, 77.59, connector="Type2")
    for key, cat in zip(CHARGERS, (near, far, other_plug), strict=True):
        result = await publish(world, key, [cat])
        assert result["message"]["results"] == [{"catalogId": cat["id"], "status": "ACCEPTED",
                                                 "stats": {"itemCount": 1, "providerCount": 1}}]
    intent = discover_intent(lat=BENGALURU[0], lon=BENGALURU[1], radius_km=5, connector="CCS2")
    body, _ = world.node.request(intent)
    assert request_errors(json.loads(body), "/discover") == []
    found = await world.node.discover(intent)
    assert [c["bppId"] for c in found] == ["charger0.example.in"]
    assert request_errors({"context": {"action": "on_discover"}, "message": {"catalogs": found}}, "/on_discover") == []
    both = await world.node.discover(discover_intent(lat=BENGALURU[0], lon=BENGALURU[1], radius_km=5))
    assert sorted(c["bppId"] for c in both) == ["charger0.example.in", "charger2.example.in"]


async def test_a_geohash_cell_finds_what_lies_inside_it(world):
    await publish(world, CHARGERS[0], [ev_catalog("charger0.example.in", 12.975, 77.60)])
    await publish(world, CHARGERS[1], [ev_catalog("charger1.example.in", 13.30, 77.60)])
    cell = geohash.encode(12.975, 77.60, 5)
    found = await world.node.discover(discover_intent(cell=cell))
    assert [c["bppId"] for c in found] == ["charger0.example.in"]


async def test_a_new_publish_replaces_the_old_state_and_inactive_withdraws(world):
    key = CHARGERS[0]
    await publish(world, key, [ev_catalog(key.subscriber_id, 12.975, 77.60, status="Available")])
    await publish(world, key, [ev_catalog(key.subscriber_id, 12.975, 77.60, status="Charging")])
    intent = discover_intent(lat=BENGALURU[0], lon=BENGALURU[1], radius_km=5)
    [found] = await world.node.discover(intent)
    assert found["resources"][0]["resourceAttributes"]["stationStatus"] == "Charging"
    await publish(world, key, [{**ev_catalog(key.subscriber_id, 12.975, 77.60), "isActive": False}])
    assert await world.node.discover(intent) == []


async def test_a_catalog_of_another_provider_is_rejected_in_on_publish(world):
    theirs = ev_catalog("charger1.example.in", 12.975, 77.60)
    result = await publish(world, CHARGERS[0], [theirs, ev_catalog("charger0.example.in", 12.975, 77.60)])
    rejected, accepted = result["message"]["results"]
    assert rejected["status"] == "REJECTED" and rejected["errors"][0]["errorCode"] == "NOT_OWNER"
    assert "charger1.example.in" in rejected["errors"][0]["errorMessage"] and accepted["status"] == "ACCEPTED"
    assert world.cds.index.get("charger0.example.in", theirs["id"]) is None


async def test_a_forged_publish_is_refused_unauthorized_and_changes_nothing(world):
    body = publish_body(world.pub.uri, CHARGERS[0], [ev_catalog("charger0.example.in", 12.975, 77.60)])
    forger = signer("charger0.example.in", "k1", 99)
    status, nack, headers = await post(world, "/catalog/publish", body, forger)
    assert status == 401 and nack["status"] == "NACK" and headers["WWW-Authenticate"].startswith("Signature ")
    assert ack_errors(nack, "NackUnauthorized") == [] and "does not verify" in nack["error"]["errorMessage"]
    assert len(world.cds.index) == 0 and world.pub.received.empty()


async def test_a_publish_signed_by_someone_else_than_the_bpp_is_refused(world):
    body = publish_body(world.pub.uri, CHARGERS[0], [ev_catalog("charger0.example.in", 12.975, 77.60)])
    status, nack, _ = await post(world, "/catalog/publish", body, CHARGERS[1])
    assert status == 400 and nack["error"]["errorCode"] == "SENDER_MISMATCH"
    assert ack_errors(nack, "NackBadRequest") == [] and len(world.cds.index) == 0


@pytest.mark.parametrize("override, field", [
    ({"networkId": "other.org/net"}, "context.networkId"),
    ({"version": "1.1.0"}, "context.version"),
    ({"action": "discover"}, "context.action"),
    ({"messageId": "not-a-uuid"}, "context.messageId"),
    ({"bppUri": "ftp://x"}, "context.bppUri"),
])
async def test_a_publish_that_does_not_fit_is_refused_naming_the_field(world, override, field):
    body = publish_body(world.pub.uri, CHARGERS[0], [ev_catalog("charger0.example.in", 12.975, 77.60)], **override)
    status, nack, _ = await post(world, "/catalog/publish", body, CHARGERS[0])
    assert status == 400 and nack["error"]["errorMessage"].startswith(field) and len(world.cds.index) == 0


async def test_a_replayed_publish_gets_the_same_answer_and_a_reused_id_with_another_body_is_refused(world):
    mid = new_id()
    body = publish_body(world.pub.uri, CHARGERS[0], [ev_catalog("charger0.example.in", 12.975, 77.60)],
                        message_id=mid)
    first = await post(world, "/catalog/publish", body, CHARGERS[0])
    again = await post(world, "/catalog/publish", body, CHARGERS[0])
    assert first[0] == again[0] == 200
    await asyncio.wait_for(world.pub.received.get(), 5)
    other = publish_body(world.pub.uri, CHARGERS[0], [ev_catalog("charger0.example.in", 13.0, 77.60)],
                         message_id=mid)
    status, nack, _ = await post(world, "/catalog/publish", other, CHARGERS[0])
    assert status == 400 and nack["error"]["errorCode"] == "REPLAY_CONFLICT"
    await world.cds.idle()
    assert world.cds.counters["published"] == 1 and world.pub.received.empty()


async def test_a_discover_beyond_the_search_reach_is_refused_with_the_reach(world):
    with pytest.raises(DiscoveryError) as e:
        await world.node.discover(discover_intent(lat=BENGALURU[0], lon=BENGALURU[1], radius_km=1900))
    assert "distanceMeters" in str(e.value) and "reaches at most" in str(e.value)


@pytest.mark.parametrize("intent, field", [
    ({}, None),
    ({"filters": {"type": "jsonpath", "expression": "$..price"}}, "message.intent.filters.expression"),
    ({"spatial": [{"op": "S_INTERSECTS", "targets": "x", "geometry": {"type": "Point", "coordinates": [1, 2]}}]},
     "message.intent.spatial[0].op"),
    ({"spatial": [{"op": "S_DWITHIN", "targets": "x", "geometry": {"type": "Point", "coordinates": [77.6, 95]},
                   "distanceMeters": 10}]}, "message.intent.spatial[0].geometry.coordinates"),
])
async def test_a_discover_that_is_not_understood_is_refused_naming_the_part(world, intent, field):
    if field is None:
        assert await world.node.discover(intent) == []
        return
    with pytest.raises(DiscoveryError) as e:
        await world.node.discover(intent)
    assert field in str(e.value)


async def test_an_unsigned_discover_is_refused(world):
    body, _ = world.node.request(discover_intent(cell="tdr1"))
    async with world.session.post(world.url + "/discover", data=body) as resp:
        assert resp.status == 401
        assert (await resp.json())["error"]["errorCode"] == "HEADER_MISSING"


async def test_a_publish_without_a_callback_url_gets_its_results_in_the_answer(world):
    good = publish_body(world.pub.uri, CHARGERS[0], [ev_catalog("charger0.example.in", 12.975, 77.60)])
    doc = json.loads(good)
    del doc["context"]["bppUri"]
    body = w.encode(doc)
    assert request_errors(doc, "/catalog/publish") == []
    status, ack, _ = await post(world, "/catalog/publish", body, CHARGERS[0])
    assert status == 200 and ack_errors(ack) == [] and len(world.cds.index) == 1
    doc["context"]["messageId"] = new_id()
    doc["message"]["catalogs"] = [ev_catalog("charger1.example.in", 12.975, 77.60)]
    body = w.encode(doc)
    status, ack, _ = await post(world, "/catalog/publish", body, CHARGERS[0])
    assert status == 409 and ack["status"] == "ACK" and ack_errors(ack, "AckNoCallback") == []
    assert ack["error"]["errorCode"] == "CATALOG_REJECTED" and "charger1.example.in" in ack["error"]["errorMessage"]
    assert (await post(world, "/catalog/publish", body, CHARGERS[0]))[:2] == (status, ack)
    await world.cds.idle()
    assert world.pub.received.empty()


async def test_a_body_arriving_in_many_pieces_is_read_whole_and_one_too_large_is_cut_at_the_limit():
    got = []

    async def take(request):
        got.append(await w.read_body(request.content, 400_000))
        return web.Response(text="ok")
    app = web.Application(client_max_size=1_000_000)
    app.router.add_post("/on_discover", take)
    runner, port = await serve(app, "127.0.0.1", 0)
    piece = bytes(range(256)) * 64  # 16 KiB

    async def pieces(n):
        for _ in range(n):
            yield piece
            await asyncio.sleep(0)  # each piece its own write: the reader sees them arrive apart
    try:
        async with aiohttp.ClientSession() as http:
            async with http.post(f"http://127.0.0.1:{port}/on_discover", data=pieces(24)) as resp:
                assert resp.status == 200  # 384 KiB in pieces: fits the limit
            async with http.post(f"http://127.0.0.1:{port}/on_discover", data=piece * 30) as resp:
                assert resp.status == 200  # 480 KiB: does not
    finally:
        await runner.cleanup()
    assert got[0] == piece * 24
    assert len(got[1]) == 400_001 and got[1] == (piece * 30)[:400_001]
