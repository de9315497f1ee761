"""Mutated Beckn 2.0 messages at every 2.0 endpoint: no exception escapes, every answer is a
counter-signed Ack or Nack valid under ``beckn.yaml``, and a refusal changes nothing."""
from __future__ import annotations

import copy
import json

from beckn2_support import ack_errors, nacl_verify_ack
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_beckn_fakes import Buyer, Clock, FakeCharger, charger_signer, record
from test_fuzz_beckn import json_values, mutate, paths, seeds, snapshot

from protocols.beckn import messages as m
from protocols.beckn.bpp import Bpp
from protocols.beckn2 import codec
from protocols.beckn2.profile import Beckn2Profile
from protocols.beckn2.vocabulary import REQUEST_ACTIONS
from protocols.signing.beckn import Verifier, sign_body
from protocols.signing.keys import StaticKeyLookup

NETWORK = "urja.local/ev-charging"


def world():
    clock = Clock()
    charger = FakeCharger(clock=clock, connectors=2)
    buyer = Buyer(clock=clock)
    ids = iter(f"00000000-0000-4000-9000-{i:012d}" for i in range(1, 10_000))
    signer = charger_signer()
    bpp = Bpp(service=charger, signer=signer, bpp_uri="http://charger.test/",
              verifier=Verifier(lookup=StaticKeyLookup([record(buyer.signer)]), clock=clock), clock=clock,
              new_id=lambda: next(ids), profile=Beckn2Profile(network_id=NETWORK, bpp_id="in.test.charger",
                                                              bpp_uri="http://charger.test/"))
    return clock, charger, buyer, bpp, signer.public_key_bytes


def signed(buyer, body: bytes) -> dict:
    now = int(buyer.clock())
    return {"Authorization": sign_body(body, buyer.signer, created_s=now, expires_s=now + 60)}


async def setup_contract():
    clock, charger, buyer, bpp, key = world()
    for doc in seeds(buyer, "x")[1:4]:
        body = m.encode(codec.request_v2(doc, network_id=NETWORK))
        assert (await bpp.receive(codec.request_v2(doc, network_id=NETWORK)["context"]["action"], body,
                                  signed(buyer, body))).acked
    order_id = bpp.transactions()[buyer.transaction_id]["order_id"]
    return clock, charger, buyer, bpp, key, order_id


def check_answer(bpp, reply, body: bytes, key: bytes):
    ack = bpp.wire_ack(reply, body)
    assert ack_errors(ack, bpp.profile.wire_status(reply)) == [], ack
    try:
        mid = json.loads(body)["context"]["messageId"]
    except Exception:  # the charger counter-signs an unreadable request with an empty message id
        mid = ""
    nacl_verify_ack(ack, body, mid if isinstance(mid, str) and "\n" not in mid and len(mid) <= 128 else "", key)
    return ack


@settings(max_examples=80, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
async def test_signed_2_0_mutations_never_escape_and_a_nack_changes_nothing(data):
    clock, charger, buyer, bpp, key, order_id = await setup_contract()
    doc = codec.request_v2(copy.deepcopy(data.draw(st.sampled_from(seeds(buyer, order_id)))), network_id=NETWORK)
    action = doc["context"]["action"]
    doc["context"]["messageId"] = buyer.new_id()
    path = data.draw(st.sampled_from(list(paths(doc))))
    how = data.draw(st.sampled_from(["replace", "delete"])) if path else "replace"
    doc = mutate(doc, path, data.draw(json_values), how)
    body = m.encode(doc) if isinstance(doc, dict) else json.dumps(doc).encode()
    endpoint = data.draw(st.sampled_from([action, action, *REQUEST_ACTIONS]))
    before = snapshot(charger, bpp)
    reply = await bpp.receive(endpoint, body, signed(buyer, body))
    ack = check_answer(bpp, reply, body, key)
    if ack["status"] == "NACK":
        assert snapshot(charger, bpp) == before
        assert reply.callbacks == [] and ack["error"]["errorCode"].isdigit()
    assert bpp.counters.get("nack:internal", 0) == 0, reply.ack


@settings(max_examples=60, deadline=None)
@given(body=st.binary(max_size=300) | json_values.map(lambda v: json.dumps(v).encode()),
       headers=st.dictionaries(st.sampled_from(["Authorization", "authorization", "Urja-Agency-Certificate", "X"]),
                               st.text(max_size=80), max_size=3),
       action=st.sampled_from([*REQUEST_ACTIONS, "search", "rating", "on_discover", ""]))
async def test_random_bytes_at_2_0_endpoints_are_refused_with_a_counter_signed_nack(body, headers, action):
    clock, charger, buyer, bpp, key = world()
    before = snapshot(charger, bpp)
    reply = await bpp.receive(action, body, headers)
    ack = check_answer(bpp, reply, body, key)
    assert ack["status"] == "NACK" and snapshot(charger, bpp) == before
    assert bpp.counters.get("nack:internal", 0) == 0
