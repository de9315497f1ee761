"""Random and mutated messages at every entry point: no exception escapes, a NACK changes nothing."""
from __future__ import annotations

import copy
import json

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_beckn_fakes import Buyer, Clock, FakeCharger, charger_signer, record

from protocols.beckn import messages as m
from protocols.beckn.bpp import Bpp
from protocols.signing.beckn import Verifier
from protocols.signing.keys import StaticKeyLookup

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-10**6, 10**6) | st.text(max_size=12),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4),
    max_leaves=12)


def world():
    clock = Clock()
    charger = FakeCharger(clock=clock, connectors=2)
    buyer = Buyer(clock=clock)
    ids = iter(f"00000000-0000-4000-9000-{i:012d}" for i in range(1, 10_000))
    bpp = Bpp(service=charger, signer=charger_signer(), bpp_uri="http://charger.test/",
              verifier=Verifier(lookup=StaticKeyLookup([record(buyer.signer)]), clock=clock), clock=clock,
              new_id=lambda: next(ids))
    return clock, charger, buyer, bpp


def seeds(buyer: Buyer, order_id: str) -> list[dict]:
    c = buyer.ctx
    return [m.search(c("search", to_bpp=False), gps=(12.94, 77.62), radius_m=5000),
            m.select(c("select"), provider_id="in.test.charger", energy_wh=1000),
            m.init(c("init"), provider_id="in.test.charger", energy_wh=1000),
            m.confirm(c("confirm"), provider_id="in.test.charger", energy_wh=1000, amount_paise=2124),
            m.update(c("update"), order_id=order_id, command=m.START_CHARGING),
            m.update(c("update"), order_id=order_id, command=m.END_CHARGING),
            m.status(c("status"), order_id=order_id), m.track(c("track"), order_id=order_id),
            m.cancel(c("cancel"), order_id=order_id), m.rating(c("rating"), ref_id=order_id, value=3),
            m.support(c("support"), ref_id=order_id)]


def paths(doc, prefix=()):
    yield prefix
    if isinstance(doc, dict):
        for k, v in doc.items():
            yield from paths(v, prefix + (k,))
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from paths(v, prefix + (i,))


def mutate(doc, path, value, how):
    if not path:
        return value
    parent = doc
    for key in path[:-1]:
        parent = parent[key]
    if how == "delete":
        if isinstance(parent, dict):
            del parent[path[-1]]
        else:
            parent.pop(path[-1])
    else:
        parent[path[-1]] = value
    return doc


def snapshot(charger, bpp):
    return charger.state(), json.dumps(bpp.transactions(), sort_keys=True, default=str)


async def setup_contract():
    """A world with one confirmed order, so mutations reach the deeper handlers."""
    clock, charger, buyer, bpp = world()
    for doc in seeds(buyer, "x")[1:4]:
        body, h = buyer.sign(doc)
        assert (await bpp.receive(doc["context"]["action"], body, h)).acked
    order_id = bpp.transactions()[buyer.transaction_id]["order_id"]
    return clock, charger, buyer, bpp, order_id


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
async def test_signed_mutations_never_escape_and_nack_changes_nothing(data):
    clock, charger, buyer, bpp, order_id = await setup_contract()
    doc = copy.deepcopy(data.draw(st.sampled_from(seeds(buyer, order_id))))
    action = doc["context"]["action"]
    doc["context"]["message_id"] = buyer.new_id()
    all_paths = list(paths(doc))
    path = data.draw(st.sampled_from(all_paths))
    how = data.draw(st.sampled_from(["replace", "delete"])) if path else "replace"
    doc = mutate(doc, path, data.draw(json_values), how)
    body = json.dumps(doc).encode() if data.draw(st.booleans()) else m.encode(doc) if isinstance(doc, dict) else b"[]"
    body_signed, headers = _sign_bytes(buyer, body)
    endpoint = data.draw(st.sampled_from([action, action, *m.REQUEST_ACTIONS]))
    before = snapshot(charger, bpp)
    reply = await bpp.receive(endpoint, body_signed, headers)
    assert reply.ack["message"]["ack"]["status"] in ("ACK", "NACK")
    if not reply.acked:
        assert snapshot(charger, bpp) == before
        assert reply.callbacks == [] and reply.ack["error"]["code"].isdigit()
    assert bpp.counters.get("nack:internal", 0) == 0, reply.ack


def _sign_bytes(buyer, body):
    from protocols.signing.beckn import sign_body
    now = int(buyer.clock())
    return body, {"Authorization": sign_body(body, buyer.signer, created_s=now, expires_s=now + 60)}


@settings(max_examples=150, deadline=None)
@given(body=st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode()),
       headers=st.dictionaries(st.sampled_from(["Authorization", "authorization", "X-Gateway-Authorization", "X"]),
                               st.text(max_size=80), max_size=3),
       action=st.sampled_from([*m.REQUEST_ACTIONS, "on_search", "", "../x"]))
async def test_random_bytes_and_headers_are_refused_quietly(body, headers, action):
    clock, charger, buyer, bpp = world()
    before = snapshot(charger, bpp)
    reply = await bpp.receive(action, body, headers)
    assert not reply.acked and snapshot(charger, bpp) == before
    assert bpp.counters.get("nack:internal", 0) == 0
