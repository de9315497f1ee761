"""The charger's MQTT binding and the buyer node, end to end through a real mosquitto.

The provider here is a small honest stand-in for ``protocols.beckn``'s: it verifies every
signature, answers a search only inside its circle, and signs what it sends; the binding under
test does not know the difference.
"""
from __future__ import annotations

import asyncio
import json
import math
import random
import time
from dataclasses import dataclass, field

import pytest
from hypothesis import given
from hypothesis import settings as hsettings
from hypothesis import strategies as st

from agent.journal import Journal
from protocols.beckn import messages
from protocols.beckn.trust import verify_sender_certificate
from protocols.mqtt import framing, geohash
from protocols.mqtt.charger import ChargerLink
from protocols.mqtt.identity import make_identity, memory_agency
from protocols.mqtt.topics import Topics
from protocols.mqtt.transport import MqttSettings, MqttTransport
from protocols.node.client import NetworkNode
from protocols.signing.beckn import Verifier, parse_frame
from protocols.signing.errors import SignatureError
from protocols.signing.keys import StaticKeyLookup
from tests.mqtt_broker import MOSQUITTO, Broker

needs_broker = pytest.mark.skipif(MOSQUITTO is None, reason="mosquitto is not installed (apt install mosquitto)")

BLR = (12.9716, 77.5946)
DELHI = (28.6139, 77.2090)


@dataclass
class Outgoing:
    action: str
    body: bytes
    headers: dict
    receiver_id: str
    receiver_uri: str


@dataclass
class Reply:
    ack: dict
    callbacks: list = field(default_factory=list)
    refusal: Outgoing | None = None

    @property
    def acked(self):
        return self.ack["message"]["ack"]["status"] == "ACK"


class StandInProvider:
    """Verifies, answers search inside its circle, select with a quote; records what it saw."""

    def __init__(self, identity, agency_public_key, *, lat, lon, clock):
        self.identity, self.lat, self.lon, self.clock = identity, lat, lon, clock
        self.agency_public_key = agency_public_key
        self.seen: list[tuple[str, str]] = []
        self.known = StaticKeyLookup()  # buyers met before (their certificate came with an earlier message)
        self.gate: asyncio.Event | None = None

    def _sign(self, doc) -> tuple[bytes, dict]:
        body = messages.encode(doc)
        now = self.clock()
        frame = framing.sign_and_frame(body, self.identity.signer, now_s=now, window_s=300)
        return body, {"Authorization": parse_frame(frame).authorization}

    def _catalog_message(self) -> dict:
        return {"catalog": {"descriptor": {"name": "Urja network"}, "providers": [{
            "id": self.identity.subscriber_id, "descriptor": {"name": f"Site {self.identity.subscriber_id}"},
            "locations": [{"id": "site", "gps": f"{self.lat:.6f},{self.lon:.6f}"}],
            "items": [{"id": "energy", "price": {"currency": "INR", "value": "18.00"}}],
            "fulfillments": [{"id": "1", "type": "CHARGING", "tags": [messages.tag_group(
                messages.TAG_SPECS, {"connector-type": "IEC_62196_T2", "power-rating-kw": "7.4",
                                     "availability": "AVAILABLE"})]}],
            "tags": [messages.signed_tag(messages.TAG_CERTIFICATE, self.identity.certificate)]}]}}

    def catalog(self) -> Outgoing:
        ctx = messages.new_context(action="on_search", bap_id=self.identity.subscriber_id,
                                   bap_uri="mqtt://network/catalog", transaction_id="catalog",
                                   message_id=f"catalog-{int(self.clock())}", timestamp_s=self.clock(),
                                   bpp_id=self.identity.subscriber_id, bpp_uri="mqtt://network/x")
        body, headers = self._sign(messages.callback(ctx, self._catalog_message()))
        return Outgoing("on_search", body, headers, self.identity.subscriber_id, "")

    async def receive(self, action, body, headers) -> Reply:
        doc = messages.decode(body)
        try:
            req = messages.parse_request(doc, action=action)
            cert = verify_sender_certificate(req.certificate, self.agency_public_key, now_s=self.clock()) \
                if req.certificate else None
            if cert is not None:
                self.known.add(cert)
            await Verifier(lookup=self.known, clock=self.clock).verify_message(body, headers["Authorization"])
        except Exception as exc:  # noqa: BLE001 - a stand-in: any failure is a NACK
            return Reply(messages.nack("30000", str(exc)))
        self.seen.append((action, req.context.message_id))
        if self.gate is not None and len(self.seen) == 1:
            await self.gate.wait()
        ctx = messages.reply_context(req.context.raw, action="on_" + action, timestamp_s=self.clock(),
                                     bpp_id=self.identity.subscriber_id, bpp_uri="mqtt://network/x")
        if action == "search":
            lat, lon = req.body.gps if hasattr(req.body, "gps") else (None, None)
            radius_m = getattr(req.body, "radius_m", None)
            if lat is not None and radius_m is not None and \
                    messages.distance_m((lat, lon), (self.lat, self.lon)) > radius_m:
                return Reply(messages.nack("30001", "outside the searched circle"))
            message = self._catalog_message()
        else:
            message = {"order": {"provider": {"id": self.identity.subscriber_id}, "quote": {
                "price": {"currency": "INR", "value": "180.00"}}}}
        body, headers = self._sign(messages.callback(ctx, message))
        return Reply(messages.ack(), [Outgoing("on_" + action, body, headers, req.context.bap_id, req.context.bap_uri)])


def fast(*urls, client_id, **kw):
    kw.setdefault("backoff_initial_s", 0.05)
    kw.setdefault("backoff_max_s", 0.3)
    return MqttSettings(brokers=tuple(urls), client_id=client_id, **kw)


class Net:
    """An agency, chargers and one node on one broker."""

    def __init__(self, broker_url, *, protocol="5", clock=time.time):
        self.url, self.protocol, self.clock = broker_url, protocol, clock
        self.agency = memory_agency()
        self.links: list[ChargerLink] = []
        self.node: NetworkNode | None = None

    async def charger(self, sid, lat, lon, *, journal=None, start=True):
        ident = make_identity(self.agency, sid, lat=lat, lon=lon, now_s=self.clock())
        provider = StandInProvider(ident, self.agency.public_key, lat=lat, lon=lon, clock=self.clock)
        transport = MqttTransport(fast(self.url, client_id=sid, protocol=self.protocol), rng=random.Random(7))
        link = ChargerLink(transport=transport, provider=provider, subscriber_id=sid, lat=lat, lon=lon,
                           signer_for=ident.signer_for, clock=self.clock, journal=journal, rng=random.Random(3),
                           outbox_retry_initial_s=0.05, outbox_retry_max_s=0.2, outbox_poll_s=0.05)
        link.identity = ident
        self.links.append(link)
        if start:
            await link.start()
            await transport.wait_connected(5)
        return link

    async def start_node(self, sid="node-1", **kw):
        ident = make_identity(self.agency, sid, lat=BLR[0], lon=BLR[1], now_s=self.clock(), kind="BAP")
        transport = MqttTransport(fast(self.url, client_id=sid, protocol=self.protocol, **kw))
        self.node = NetworkNode(transport=transport, subscriber_id=sid, signer=ident.signer,
                                agency_public_key=self.agency.public_key, clock=self.clock,
                                certificate=ident.certificate)
        await self.node.start()
        record = verify_sender_certificate(ident.certificate, self.agency.public_key, now_s=self.clock())
        for link in self.links:
            link.provider.known.add(record)
        return self.node

    async def close(self):
        if self.node is not None:
            await self.node.close()
        for link in self.links:
            await link.close()


@pytest.fixture
def broker(tmp_path):
    if MOSQUITTO is None:
        pytest.skip("mosquitto is not installed (apt install mosquitto)")
    with Broker(tmp_path) as b:
        yield b


async def subscribed(transport):
    """Round trip through the broker after SUBSCRIBE: once our own retained probe comes back,
    every earlier subscription of this connection is active (MQTT keeps order per connection)."""
    got = asyncio.Event()
    probe = f"urja/v1/probe/{transport.settings.client_id}"
    old = transport.on_message

    def hook(topic, payload, retained):
        if topic == probe:
            got.set()
        elif old is not None:
            old(topic, payload, retained)
    transport.on_message = hook
    transport.subscribe(probe, 1)
    await transport.publish(probe, b"x", qos=1)
    await asyncio.wait_for(got.wait(), 5)
    transport.unsubscribe(probe)
    transport.on_message = old


# ------------------------------------------------------------------ pure parts


def _destination(lat, lon, bearing_deg, distance_km):
    d = distance_km / geohash.EARTH_RADIUS_KM
    p1, l1, b = math.radians(lat), math.radians(lon), math.radians(bearing_deg)
    p2 = math.asin(math.sin(p1) * math.cos(d) + math.cos(p1) * math.sin(d) * math.cos(b))
    l2 = l1 + math.atan2(math.sin(b) * math.sin(d) * math.cos(p1), math.cos(d) - math.sin(p1) * math.sin(p2))
    return math.degrees(p2), (math.degrees(l2) + 540) % 360 - 180


@hsettings(max_examples=150, deadline=None)
@given(lat=st.floats(-89.9, 89.9), lon=st.floats(-180, 180), radius_km=st.floats(0.05, 200),
       bearing=st.floats(0, 360), frac=st.floats(0, 0.999), precision=st.integers(2, 5))
def test_every_point_within_the_radius_lies_in_a_covered_cell(lat, lon, radius_km, bearing, frac, precision):
    cells = set(geohash.cover(lat, lon, radius_km, precision))
    if len(cells) > 5000:
        return
    plat, plon = _destination(lat, lon, bearing, radius_km * frac)
    assert geohash.distance_km(lat, lon, plat, plon) <= radius_km * (1 + 1e-9)
    assert geohash.encode(plat, plon, precision) in cells


def test_geohash_known_values_and_bad_input():
    assert geohash.encode(57.64911, 10.40744, 11) == "u4pruydqqvj"
    lat0, lat1, lon0, lon1 = geohash.bounds("tdr1")
    assert lat0 <= 12.97 <= lat1 and lon0 <= 77.59 <= lon1
    with pytest.raises(geohash.GeohashError, match="latitude"):
        geohash.encode(91, 0, 5)
    with pytest.raises(geohash.GeohashError, match="not a geohash character"):
        geohash.bounds("tdra")
    # a 5 km search in Bengaluru uses precision-5 cells and a handful of them
    topics = Topics().search_cover(*BLR, 5)
    assert 1 <= len(topics) <= 16 and all(t.count("/") == 2 + 5 for t in topics)


def test_topics_refuse_levels_that_would_break_the_scheme():
    t = Topics()
    for bad in ("a/b", "a+b", "#", "", "x" * 200):
        with pytest.raises(Exception, match="subscriber id"):
            t.inbox(bad)
    assert t.catalog(*BLR, "site-1") == "urja/v1/catalog/t/d/r/1/v/site-1"
    assert t.kind("urja/v1/inbox/x") == "inbox" and t.kind("other/inbox/x") is None


async def test_framing_round_trip_verifies_and_detects_tampering():
    agency = memory_agency()
    ident = make_identity(agency, "node-9", lat=1, lon=1, now_s=time.time(), kind="BAP")
    body = b'{"context":{"action":"search"},"message":{"x":"\xc3\xa9"}}'
    payload = framing.sign_and_frame(body, ident.signer, now_s=time.time(), window_s=30)
    frame = framing.unframe(payload)
    assert frame.body == body
    verifier = Verifier(lookup=StaticKeyLookup([verify_sender_certificate(ident.certificate, agency.public_key,
                                                                        now_s=time.time())]), clock=time.time)
    await verifier.verify_message(frame.body, frame.authorization)
    tampered = framing.unframe(payload.replace(b'"x"', b'"y"'))
    with pytest.raises(SignatureError, match="does not verify"):
        await verifier.verify_message(tampered.body, tampered.authorization)
    with pytest.raises(framing.FrameError):
        framing.unframe(b"no blank line here")
    with pytest.raises(framing.FrameError, match="exceeds"):
        framing.unframe(b"A" * (framing.MAX_PAYLOAD_BYTES + 1))


# ------------------------------------------------------------------ through the broker


@needs_broker
@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
async def test_discovery_finds_near_chargers_and_far_ones_receive_nothing(broker, protocol):
    net = Net(broker.url, protocol=protocol)
    try:
        near = await net.charger("blr-1", BLR[0] + 0.01, BLR[1] + 0.01)            # ~1.5 km
        outside = await net.charger("blr-far", BLR[0] + 0.30, BLR[1])               # ~33 km
        delhi = await net.charger("del-1", *DELHI)
        node = await net.start_node()
        for link in net.links:
            await subscribed(link.transport)
        found = await node.discover(*BLR, 5, timeout_s=5, expect=1)
        assert [c.subscriber_id for c in found] == ["blr-1"]
        charger = found[0]
        assert charger.price == "18.00" and charger.connectors[0].available
        assert 1.0 < charger.distance_km < 2.0
        assert near.stats["answered"] == 1
        assert outside.stats["received"] == 0 and delhi.stats["received"] == 0
        # and a directed request gets its verified answer
        txn = node.new_id()
        answer = await node.request(messages.select(node.context("select", transaction_id=txn, bpp_id="blr-1"),
                                                    provider_id="blr-1", energy_wh=10_000,
                                                    certificate=node.certificate))
        assert answer.action == "on_select" and answer.sender == "blr-1"
        assert answer.message["order"]["quote"]["price"]["value"] == "180.00"
    finally:
        await net.close()


@needs_broker
async def test_forged_answer_is_dropped(broker):
    net = Net(broker.url)
    try:
        await net.charger("blr-1", *BLR)
        node = await net.start_node()
        # a charger identity the agency never certified, claiming to be blr-1
        rogue_agency = memory_agency()
        rogue = make_identity(rogue_agency, "blr-1", lat=BLR[0], lon=BLR[1], now_s=time.time())
        provider = StandInProvider(rogue, rogue_agency.public_key, lat=BLR[0], lon=BLR[1], clock=time.time)
        out = provider.catalog()
        ctx = dict(messages.decode(out.body)["context"], transaction_id="t-x")
        body = messages.encode({"context": ctx, "message": messages.decode(out.body)["message"]})
        frame = framing.sign_and_frame(body, rogue.signer, now_s=time.time(), window_s=60)
        await subscribed(node.transport)  # the forgery comes from another connection: inbox first
        await net.links[0].transport.publish(node.inbox_topic, frame, qos=1)
        await asyncio.wait_for(_until(lambda: node.stats["rejected"] >= 1), 5)
        # whatever the node knows of blr-1 came from the genuine, agency-certified charger
        known = node.chargers.get("blr-1")
        assert known is None or known.certificate == net.links[0].identity.certificate
        assert "does not verify" in node.last_rejection or "key" in node.last_rejection
    finally:
        await net.close()


async def _until(predicate):
    while not predicate():
        await asyncio.sleep(0.005)


@needs_broker
async def test_duplicates_are_suppressed_and_expired_requests_dropped(broker):
    net = Net(broker.url)
    try:
        link = await net.charger("blr-1", *BLR)
        node = await net.start_node()
        await subscribed(link.transport)
        doc = messages.status(node.context("status", transaction_id="t-1", bpp_id="blr-1"), order_id="o-1")
        doc["message"] = {"order_id": "o-1"}
        payload = node._frame(doc)
        topic = link.inbox_topic
        for _ in range(3):
            await node.transport.publish(topic, payload, qos=1)
        old = messages.status(messages.new_context(
            action="status", bap_id="node-1", bap_uri=node.uri, transaction_id="t-2", message_id="m-old",
            timestamp_s=time.time() - 120, bpp_id="blr-1", ttl_s=30), order_id="o-1")
        await node.transport.publish(topic, node._frame(old), qos=1)
        await asyncio.wait_for(_until(lambda: link.stats["received"] >= 4 and not link._work), 5)
        assert link.stats["duplicates"] == 2
        assert link.stats["expired"] == 1
        assert [a for a, _ in link.provider.seen] == ["status"]
    finally:
        await net.close()


@needs_broker
async def test_messages_of_one_transaction_keep_their_order(broker):
    net = Net(broker.url)
    try:
        link = await net.charger("blr-1", *BLR)
        node = await net.start_node()
        await subscribed(link.transport)
        link.provider.gate = asyncio.Event()
        ids = []
        for i in range(4):
            doc = messages.status(node.context("status", transaction_id="t-order", bpp_id="blr-1",
                                               message_id=f"m-{i}"), order_id="o-1")
            ids.append(f"m-{i}")
            await node.transport.publish(link.inbox_topic, node._frame(doc), qos=1)
        await asyncio.wait_for(_until(lambda: link.stats["received"] >= 4), 5)
        assert link.provider.seen == [("status", "m-0")]  # the first one holds the others back
        link.provider.gate.set()
        await asyncio.wait_for(_until(lambda: len(link.provider.seen) == 4), 5)
        assert [m for _, m in link.provider.seen] == ids
    finally:
        await net.close()


@needs_broker
async def test_retained_catalog_presence_and_last_will(broker):
    net = Net(broker.url)
    try:
        link = await net.charger("blr-1", *BLR)
        node = await net.start_node()
        charger = await node.fetch_catalog("blr-1", timeout_s=5)
        assert charger.name == "Site blr-1" and charger.lat == pytest.approx(BLR[0])
        watched = []
        changed = asyncio.Event()

        def watch(topic, payload, retained):
            watched.append(messages.decode(framing.unframe(payload).body)["status"])
            changed.set()
        watcher = MqttTransport(fast(broker.url, client_id="watcher"), on_message=watch)
        watcher.subscribe(Topics().presences_in("tdr"))
        async with watcher:
            await _wait_for_list(watched, changed, lambda w: w and w[-1] == "ONLINE")
            link.transport._client.socket().shutdown(2)  # the charger vanishes without a word
            await _wait_for_list(watched, changed, lambda w: w[-1] == "OFFLINE")
            frame = framing.unframe(await _retained(broker.url, link.presence_topic))
            verifier = Verifier(lookup=StaticKeyLookup([verify_sender_certificate(
                link.identity.certificate, net.agency.public_key, now_s=time.time())]), clock=time.time)
            await verifier.verify_message(frame.body, frame.authorization)
    finally:
        await net.close()


async def _wait_for_list(items, event, predicate, timeout_s=5):
    async def loop():
        while not predicate(items):
            event.clear()
            await event.wait()
    await asyncio.wait_for(loop(), timeout_s)


async def _retained(url, topic):
    got = asyncio.get_running_loop().create_future()

    def on(t, payload, retained):
        if not got.done():
            got.set_result(payload)
    async with MqttTransport(fast(url, client_id="retained-reader"), on_message=on) as t:
        t.subscribe(topic)
        return await asyncio.wait_for(got, 5)


@needs_broker
async def test_outbox_delivers_after_broker_restart_nothing_lost(tmp_path):
    with Broker(tmp_path, persistent=True) as broker:
        net = Net(broker.url)
        journal = Journal.open(tmp_path / "journal.sqlite")
        try:
            link = await net.charger("blr-1", *BLR, journal=journal)
            node = await net.start_node(session_expiry_s=3600)
            await subscribed(node.transport)
            got = []
            node.listen("t-receipts", lambda a: got.append(a.context["message_id"]))
            provider = link.provider

            def unsolicited(i):
                ctx = messages.new_context(action="on_status", bap_id="node-1", bap_uri=node.uri,
                                           transaction_id="t-receipts", message_id=f"u-{i}",
                                           timestamp_s=time.time(), bpp_id="blr-1", bpp_uri="mqtt://network/x")
                body, headers = provider._sign(messages.callback(ctx, {"order": {"id": "o-1"}}))
                return Outgoing("on_status", body, headers, "node-1", node.uri)

            await link.send(unsolicited(0))
            await asyncio.wait_for(_until(lambda: got == ["u-0"]), 5)
            broker.stop()
            await asyncio.wait_for(link.transport._lost.wait(), 5)
            for i in range(1, 6):
                await link.send(unsolicited(i))
            assert journal.pending_count() == 5
            broker.start()
            try:
                await asyncio.wait_for(_until(lambda: len(got) == 6), 15)
            except asyncio.TimeoutError:
                raise AssertionError(f"got {got}, pending {journal.pending_count()}, charger {link.stats}, "
                                     f"node {node.stats} {node.last_rejection}, log {broker.log[-8:]}") from None
            assert got == [f"u-{i}" for i in range(6)]
            assert journal.pending_count() == 0
        finally:
            await net.close()
            journal.close()


class _Refuses:
    """Refuses everything, telling the sender as the provider tells a verified one (``Reply.refusal``)."""

    async def receive(self, action, body, headers):
        bap_id = json.loads(body)["context"]["bap_id"]
        nack = messages.nack("30000", "not for you")
        refusal = Outgoing("on_" + action, messages.encode(nack), {"Authorization": "Signature"}, bap_id, None)
        return Reply(nack, refusal=refusal)


async def test_refusal_to_a_sender_without_an_inbox_is_counted_not_raised():
    """A NACK for a bap_id that cannot be a topic level once failed its task with TopicError."""
    signer = make_identity(memory_agency(), "app.odd", lat=BLR[0], lon=BLR[1], now_s=time.time(), kind="BAP").signer
    transport = MqttTransport(MqttSettings(brokers=("mqtt://127.0.0.1:1",), client_id="blr-odd"))
    link = ChargerLink(transport=transport, provider=_Refuses(), subscriber_id="blr-odd", lat=BLR[0], lon=BLR[1],
                       signer_for=lambda now_s: signer, clock=time.time)
    ctx = messages.new_context(action="status", bap_id="odd/inbox/#", bap_uri="mqtt://x", transaction_id="t-1",
                               message_id="m-1", timestamp_s=time.time(), bpp_id="blr-odd", ttl_s=30)
    payload = framing.sign_and_frame(messages.encode({"context": ctx, "message": {"order_id": "o-1"}}), signer,
                                     now_s=time.time(), window_s=30)
    try:
        link._on_message(link.inbox_topic, payload, False)
        await asyncio.wait_for(_until(lambda: not link._work), 5)
        assert link.stats["nacked"] == 1
        assert link.stats["publish_failures"] == 1 and link.stats["provider_errors"] == 0
    finally:
        await link.close(announce_offline=False)
