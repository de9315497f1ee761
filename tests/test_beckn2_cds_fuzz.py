"""Mutated, correctly signed v2 messages to every endpoint of the reference catalog service: each
is answered (ACK, AckNoCallback with the refusal when there is no callback URL, or a
counter-signed NACK naming what was wrong), never a server error, and the service's index only
ever holds catalogs their signer owns."""
from __future__ import annotations

import copy
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from protocols.beckn2 import cds_wire as w
from protocols.beckn2.cds import CatalogDiscoveryService
from protocols.beckn2.cds_client import discover_intent
from protocols.signing.keys import StaticKeyLookup
from tests.cds_support import NOW_S, Clock, ack_errors, ev_catalog, new_id, record, signer

NETWORK = "acmenet.org/charge-net"
CDS_KEY = signer("cds.example.in", "d1", 7)
CHARGER = signer("charger.example.in", "k1", 3)

JSON_LEAF = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=False,
                      allow_infinity=False), st.text(max_size=20))
JSON = st.recursive(JSON_LEAF, lambda inner: st.one_of(st.lists(inner, max_size=4),
                                                       st.dictionaries(st.text(max_size=10), inner, max_size=4)),
                    max_leaves=12)


def publish_doc() -> dict:
    ctx = w.context(action="catalog/publish", message_id=new_id(), transaction_id=new_id(), now_s=NOW_S,
                    network_id=NETWORK, bppId=CHARGER.subscriber_id, bppUri="http://127.0.0.1:9")
    return {"context": ctx, "message": {"catalogs": [ev_catalog(CHARGER.subscriber_id, 12.97, 77.59)]}}


def discover_doc() -> dict:
    ctx = w.context(action="discover", message_id=new_id(), transaction_id=new_id(), now_s=NOW_S, network_id=NETWORK,
                    bapId=CHARGER.subscriber_id, bapUri="http://127.0.0.1:9")
    return {"context": ctx, "message": {"intent": discover_intent(lat=12.97, lon=77.59, radius_km=5,
                                                                   connector="CCS2")}}


def paths(doc, prefix=()):
    yield prefix
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from paths(v, prefix + (i,))


@st.composite
def mutated(draw, make):
    doc = make()
    targets = [p for p in paths(doc) if p]
    for _ in range(draw(st.integers(1, 3))):
        path = draw(st.sampled_from(targets))
        parent = doc
        try:
            for key in path[:-1]:
                parent = parent[key]
            if draw(st.booleans()) and isinstance(parent, dict):
                parent.pop(path[-1], None)
            else:
                parent[path[-1]] = draw(JSON)
        except (KeyError, IndexError, TypeError):
            continue
    return copy.deepcopy(doc)


async def _post(app_client, path, doc):
    body = w.encode(doc)
    async with app_client.post(path, data=body, headers=w.signed_headers(body, CHARGER, NOW_S)) as resp:
        return resp.status, await resp.read()


@pytest.mark.slow
@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(doc=st.one_of(mutated(publish_doc).map(lambda d: ("/catalog/publish", d)),
                     mutated(discover_doc).map(lambda d: ("/discover", d))))
async def test_every_mutated_message_gets_an_ack_or_a_named_nack_never_a_server_error(doc):
    from aiohttp.test_utils import TestClient, TestServer

    path, body_doc = doc
    cds = CatalogDiscoveryService(signer=CDS_KEY, lookup=StaticKeyLookup([record(CDS_KEY), record(CHARGER)]),
                                  clock=Clock(), network_id=NETWORK, callback_attempts=1)
    async with TestClient(TestServer(cds.app())) as client:
        status, raw = await _post(client, path, body_doc)
    await cds.close()
    assert status in (200, 400, 401, 409), raw
    ack = json.loads(raw)
    assert ack_errors(ack, {200: "Ack", 409: "AckNoCallback"}.get(status, "NackBadRequest")) == []
    if status != 200:
        assert ack["error"]["errorMessage"] and "\n" not in ack["error"]["errorMessage"]
    for (bpp_id, _), entry in cds.index._entries.items():
        assert bpp_id == CHARGER.subscriber_id and entry.catalog.get("bppId", bpp_id) == bpp_id


async def test_garbage_bodies_are_refused_not_crashed():
    cds = CatalogDiscoveryService(signer=CDS_KEY, lookup=StaticKeyLookup([record(CDS_KEY), record(CHARGER)]),
                                  clock=Clock(), network_id=NETWORK)
    from aiohttp.test_utils import TestClient, TestServer

    async with TestClient(TestServer(cds.app())) as client:
        for body in (b"", b"[]", b"{", b'{"context":1,"message":2}', b"\xff\xfe", b'{"a":1,"a":2}', b"[" * 5000):
            for path in ("/catalog/publish", "/discover"):
                async with client.post(path, data=body, headers=w.signed_headers(body, CHARGER, NOW_S)) as resp:
                    assert resp.status == 400, (path, body[:20])
                    assert (await resp.json())["status"] == "NACK"
    await cds.close()
