"""How far a search may reach: exactly as far as the geohash cover of a search reaches.

A node publishes a search to the cells of the finest precision whose cover has at most 16
cells, and cannot publish one that needs more even at precision 2. The charger reads the same
rule: it answers every search a node can publish and refuses, with its error, one that no node
could have published (over MQTT as an error callback to a verified sender, over HTTP as the NACK).
"""
from __future__ import annotations

import asyncio
import json

import pytest
from test_beckn_bpp import World
from test_mqtt_refusals import Network

from protocols.beckn import messages as m
from protocols.beckn.errors import BecknError
from protocols.mqtt import framing, geohash
from protocols.mqtt.topics import MAX_SEARCH_CELLS, SEARCH_PRECISIONS

BLR = (12.9352, 77.6245)


async def broadcast(n: Network, doc: dict) -> None:
    """A search as it arrives on the charger's own search topic."""
    payload = framing.sign_and_frame(m.encode(doc), n.buyer.signer, now_s=n.clock(), window_s=60)
    n.link._on_message(n.link.search_topics[0], payload, False)
    await asyncio.gather(*n.link._work)


async def test_a_search_wider_than_500_km_that_the_cover_reaches_is_answered():
    w = World()
    doc = await w.ok(m.search(w.buyer.ctx("search", to_bpp=False), gps=(13.0, 77.6), radius_m=900_000))
    assert doc["message"]["catalog"]["providers"][0]["id"] == "in.test.charger"


async def test_a_search_the_cover_cannot_reach_is_refused_with_its_error_over_http():
    w = World()
    err = await w.refused(m.search(w.buyer.ctx("search", to_bpp=False), gps=BLR, radius_m=1_900_000), "30000",
                          http_status=400)
    assert "16" in err["message"] and err["paths"] == "message.intent.fulfillment.stops[0].location.circle.radius"


async def test_a_search_the_cover_cannot_reach_is_answered_with_its_error_over_mqtt():
    n = Network()
    doc = m.search(n.buyer.ctx("search", to_bpp=False), gps=BLR, radius_m=1_900_000)
    await broadcast(n, doc)
    [(topic, error)] = n.bodies()
    assert topic == "urja/v1/inbox/bap.test" and error["context"]["action"] == "on_search"
    assert error["error"]["code"] == "30000" and error["context"]["message_id"] == doc["context"]["message_id"]


async def test_a_search_that_does_not_match_stays_unanswered_over_mqtt():
    n = Network()
    doc = m.search(n.buyer.ctx("search", to_bpp=False), gps=(13.5, 77.6), radius_m=5000)
    await broadcast(n, doc)
    assert n.published == [] and n.link.stats["unanswered"] == 1


@pytest.mark.parametrize("lat, lon", [BLR, (28.6139, 77.2090), (0.0, 0.0), (59.9, 10.7), (-33.9, 18.4),
                                      (45.0, 45.0), (64.1, -21.9)])
@pytest.mark.parametrize("radius_km", [5, 450, 500, 600, 800, 1000, 1200, 1400, 1600, 1999])
def test_the_charger_accepts_exactly_the_searches_a_node_can_publish(lat, lon, radius_km):
    ctx = m.new_context(action="search", bap_id="bap.test", bap_uri="http://bap.test/beckn", transaction_id="t-1",
                        message_id="m-1", timestamp_s=0)
    doc = json.loads(m.encode(m.search(ctx, gps=(lat, lon), radius_m=radius_km * 1000)))
    # A node's rule (``Topics.search_cover``) at its coarsest precision alone: a finer precision
    # never needs fewer cells, and computing the precision-5 cover of 1,000 km takes seconds.
    try:
        geohash.choose_cover(lat, lon, radius_km, (min(SEARCH_PRECISIONS),), MAX_SEARCH_CELLS)
        publishable = True
    except geohash.GeohashError:
        publishable = False
    try:
        m.parse_request(doc, action="search")
        accepted = True
    except BecknError:
        accepted = False
    assert accepted == publishable
