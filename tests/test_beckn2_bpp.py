"""The charger as a Beckn 2.0 LTS provider: the shared provider logic behind the 2.0 profile.

Every request here is a 2.0 message (most built by the reference node's codec from the same
builders the 1.1 tests use, one written by hand as an outside node would); every callback and
Ack is validated against ``beckn.yaml`` and the EV-charging packs, and every signature and
counter-signature is checked with PyNaCl.
"""
from __future__ import annotations

import json

import pytest
from beckn2_support import ack_errors, nacl_verify_ack, nacl_verify_request, request_digest, v2_errors
from test_beckn_fakes import NOW_S, Buyer, Clock, FakeCharger, charger_signer, record

from protocols.beckn import messages as m
from protocols.beckn.bpp import Bpp
from protocols.beckn2 import codec
from protocols.beckn2.profile import Beckn2Profile
from protocols.signing.beckn import Verifier, sign_body
from protocols.signing.detached import verify_object
from protocols.signing.keys import StaticKeyLookup

NETWORK = "urja.local/ev-charging"


class World2:
    def __init__(self, *, connectors: int = 1):
        self.clock = Clock()
        self.charger_signer = charger_signer()
        self.charger = FakeCharger(clock=self.clock, connectors=connectors, receipt_signer=self.charger_signer)
        self.buyer = Buyer(clock=self.clock)
        ids = iter(f"00000000-0000-4000-9000-{i:012d}" for i in range(1, 10_000))
        self.bpp = Bpp(service=self.charger, signer=self.charger_signer,
                       verifier=Verifier(lookup=StaticKeyLookup([record(self.buyer.signer)]), clock=self.clock),
                       bpp_uri="http://charger.test/beckn", clock=self.clock, new_id=lambda: next(ids),
                       certificate={"subscriber_id": "c"},
                       profile=Beckn2Profile(network_id=NETWORK, bpp_id="in.test.charger",
                                             bpp_uri="http://charger.test/beckn"))
        self.key = self.charger_signer.public_key_bytes

    def v2(self, v1_doc: dict) -> dict:
        return codec.request_v2(v1_doc, network_id=NETWORK)

    async def post(self, doc: dict, *, headers: dict | None = None):
        """Send a 2.0 request; returns (reply, the 2.0 Ack as sent, the request's bytes)."""
        assert v2_errors(doc) == [], v2_errors(doc)
        body = m.encode(doc)
        now = int(self.clock())
        hdrs = {"Authorization": sign_body(body, self.buyer.signer, created_s=now, expires_s=now + 60)}
        reply = await self.bpp.receive(doc["context"]["action"], body, headers if headers is not None else hdrs)
        ack = self.bpp.wire_ack(reply, body)
        assert ack_errors(ack, self.bpp.profile.wire_status(reply)) == [], ack
        nacl_verify_ack(ack, body, doc["context"].get("messageId", ""), self.key)
        return reply, ack, body

    def check_callback(self, out, request_body: bytes | None, request_mid: str | None) -> dict:
        doc = json.loads(out.body)
        assert v2_errors(doc) == [], (doc["context"]["action"], v2_errors(doc))
        nacl_verify_request(out.body, out.headers["Authorization"], self.key)
        if request_body is not None:
            assert doc["context"]["requestDigest"] == {"digest": request_digest(request_body)}
            assert doc["context"]["messageId"] == request_mid
        else:
            assert "requestDigest" not in doc["context"]
        assert doc["context"]["networkId"] == NETWORK and doc["context"]["version"] == "2.0.0"
        return doc

    async def ok(self, v1_doc: dict) -> tuple[dict, dict]:
        """The 2.0 callback and what the reference node reads of it (1.1)."""
        doc = self.v2(v1_doc)
        reply, ack, body = await self.post(doc)
        assert ack["status"] == "ACK", ack
        assert len(reply.callbacks) == 1
        out = reply.callbacks[0]
        assert out.action == "on_" + doc["context"]["action"]
        v2 = self.check_callback(out, body, doc["context"]["messageId"])
        return v2, codec.callback_v1(v2)

    async def refused(self, doc: dict, code: str, *, http_status: int | None = None) -> dict:
        before = (self.charger.state(), json.dumps(self.bpp.transactions(), sort_keys=True, default=str))
        reply, ack, _ = await self.post(doc)
        assert ack["status"] == "NACK" and reply.callbacks == []
        assert ack["error"]["errorCode"] == code, ack
        if http_status is not None:
            assert reply.http_status == http_status
        assert before == (self.charger.state(), json.dumps(self.bpp.transactions(), sort_keys=True, default=str))
        return ack["error"]


async def test_select_is_acked_with_a_counter_signature_and_answered_by_an_on_select_bound_to_it():
    w = World2()
    v2, v1 = await w.ok(m.select(w.buyer.ctx("select"), provider_id="in.test.charger", energy_wh=4000))
    contract = v2["message"]["contract"]
    assert contract["status"]["code"] == "DRAFT"
    assert contract["consideration"][0]["considerationAttributes"]["value"] == 84.96
    assert contract["commitments"][0]["resources"][0]["id"] == "in.test.charger:evse:1"
    quote = m.signed_documents(v1["message"]["order"], m.TAG_QUOTE)[0]
    verify_object(quote, w.key)
    assert quote["price_paise"] == 8496 and quote["energy_wh"] == 4000


async def test_a_select_written_by_hand_as_another_node_would_is_quoted():
    w = World2()
    doc = {"context": {"domain": m.DEFAULT_DOMAIN, "action": "select", "version": "2.0.0", "networkId": NETWORK,
                       "bapId": "bap.test", "bapUri": "http://bap.test/beckn", "bppId": "in.test.charger",
                       "bppUri": "http://charger.test/beckn",
                       "transactionId": "6f1c2a8e-2b7e-4a57-9b43-1d0b2f1f6a01",
                       "messageId": "6f1c2a8e-2b7e-4a57-9b43-1d0b2f1f6a02",
                       "timestamp": "2026-09-21T14:13:20Z", "ttl": "PT30S"},
           "message": {"contract": {"commitments": [{
               "status": {"descriptor": {"code": "DRAFT"}},
               "resources": [{"id": "in.test.charger:evse:1", "quantity": {"unitCode": "KWH", "unitQuantity": 2.5}}],
               "offer": {"id": "tariff:flat-18", "resourceIds": ["in.test.charger:evse:1"]}}]}}}
    reply, ack, body = await w.post(doc)
    assert ack["status"] == "ACK"
    v2 = w.check_callback(reply.callbacks[0], body, doc["context"]["messageId"])
    quote = m.signed_documents(codec.callback_v1(v2)["message"]["order"], m.TAG_QUOTE)[0]
    assert quote["energy_wh"] == 2500 and quote["connector_id"] == "1" and quote["price_paise"] == 5310


async def test_a_prepaid_contract_on_2_0_charges_and_ends_with_a_signed_receipt():
    w = World2()
    b = w.buyer
    await w.ok(m.select(b.ctx("select"), provider_id="in.test.charger", energy_wh=4000))
    v2, on_init = await w.ok(m.init(b.ctx("init"), provider_id="in.test.charger", energy_wh=4000,
                                    billing={"name": "Ravi", "phone": "+91-98"}))
    settlement = v2["message"]["contract"]["settlements"][0]["settlementAttributes"]
    assert settlement["beckn:paymentURL"].startswith("upi://pay?pa=owner@okaxis")
    assert settlement["beckn:amount"] == {"currency": "INR", "value": 84.96}
    v2, on_confirm = await w.ok(m.confirm(b.ctx("confirm"), provider_id="in.test.charger", energy_wh=4000,
                                          amount_paise=8496, payment_ref="UPI-1"))
    order_id = on_confirm["message"]["order"]["id"]
    assert v2["message"]["contract"]["id"] == order_id and v2["message"]["contract"]["status"]["code"] == "ACTIVE"
    assert w.charger.connectors()[0].status == "RESERVED"

    w.bpp.pending().clear()
    _, on_update = await w.ok(m.update(b.ctx("update"), order_id=order_id, command=m.START_CHARGING))
    assert on_update["message"]["order"]["fulfillments"][0]["state"]["descriptor"]["code"] == m.STATE_PENDING
    assert w.charger.start_kwargs["money_limit_paise"] == 8496
    sid = w.bpp.transactions()[b.transaction_id]["session_id"]
    w.charger.charge(sid, 1500)
    pushed = [w.check_callback(o, None, None) for o in w.bpp.pending() if o.action == "on_status"]
    session = pushed[-1]["message"]["contract"]["performance"][0]["performanceAttributes"]
    assert session["meteredEnergyKWh"] == 1.5 and session["totalCost"] == {"inclVat": 31.86}

    _, on_status = await w.ok(m.status(b.ctx("status"), order_id=order_id))
    assert on_status["message"]["order"]["fulfillments"][0]["state"]["descriptor"]["code"] == m.STATE_STARTED
    v2, on_track = await w.ok(m.track(b.ctx("track"), order_id=order_id))
    assert v2["message"]["tracking"]["status"] == "ACTIVE" and on_track["message"]["tracking"]["status"] == "active"

    await w.ok(m.update(b.ctx("update"), order_id=order_id, command=m.END_CHARGING))
    final = w.check_callback(w.bpp.pending()[-1], None, None)
    assert final["message"]["contract"]["status"]["code"] == "COMPLETE"
    receipt = m.signed_documents(codec.callback_v1(final)["message"]["order"], m.TAG_RECEIPT)[0]
    verify_object(receipt, w.key)
    assert receipt["refund_due_paise"] == 8496 - 3186
    v2, _ = await w.ok(m.rating(b.ctx("rating"), ref_id=order_id, value=4))
    assert v2["message"] == {"ratings": []}
    v2, sup = await w.ok(m.support(b.ctx("support"), ref_id=order_id))
    assert sup["message"]["support"] == {"ref_id": order_id, "phone": "+91-80-1", "email": "owner@example.in"}
    assert v2["message"]["support"]["channels"][0]["telephone"] == "+91-80-1"


async def test_a_booking_is_cancelled_on_2_0_with_the_refund_stated():
    w = World2()
    b = w.buyer
    await w.ok(m.select(b.ctx("select"), provider_id="in.test.charger", energy_wh=4000, start_s=NOW_S + 7200))
    await w.ok(m.init(b.ctx("init"), provider_id="in.test.charger", energy_wh=4000, start_s=NOW_S + 7200))
    _, on_confirm = await w.ok(m.confirm(b.ctx("confirm"), provider_id="in.test.charger", energy_wh=4000,
                                         start_s=NOW_S + 7200, amount_paise=8496, payment_ref="UPI-2"))
    order_id = on_confirm["message"]["order"]["id"]
    v2, on_cancel = await w.ok(m.cancel(b.ctx("cancel"), order_id=order_id))
    assert v2["message"]["contract"]["status"]["code"] == "CANCELLED"
    assert on_cancel["message"]["order"]["quote"]["breakup"][1]["title"] == "cancellation fee"


async def test_discover_answers_the_signed_catalog_as_a_2_0_catalog():
    w = World2()
    v2, v1 = await w.ok(m.search(w.buyer.ctx("search", to_bpp=False), gps=(12.94, 77.62), radius_m=3000))
    catalog = v2["message"]["catalogs"][0]
    assert catalog["provider"]["availableAt"][0]["geo"] == {"type": "Point", "coordinates": [77.6245, 12.9352]}
    attrs = catalog["resources"][0]["resourceAttributes"]
    assert attrs["@type"] == "ChargingService" and attrs["maxPowerKW"] == 7.4
    provider = v1["message"]["catalog"]["providers"][0]
    offer = m.signed_documents(provider["offers"][0], m.TAG_OFFER)[0]
    verify_object(offer, w.key)
    assert m.signed_documents(provider, m.TAG_CERTIFICATE) == [{"subscriber_id": "c"}]


@pytest.mark.parametrize("mutate, path, code", [
    (lambda d: d["context"].update(version="1.1.0"), "context.version", "30000"),
    (lambda d: d["context"].update(networkId="other.net/ev"), "context.networkId", "30000"),
    (lambda d: d["context"].update(transaction_id=d["context"].pop("transactionId")), "context.transaction_id",
     "30000"),
    (lambda d: d["message"].update(order=d["message"].pop("contract")), "message.order", "30000"),
    (lambda d: d["context"].update({"try": True}), "context.try", "40001"),
    (lambda d: d["message"]["contract"]["commitments"][0]["resources"][0]["quantity"].update(unitQuantity=900),
     "message.contract.commitments[0].resources[0].quantity.unitQuantity", "30000"),
])
async def test_what_only_2_0_can_get_wrong_is_refused_with_the_2_0_path(mutate, path, code):
    w = World2()
    doc = w.v2(m.select(w.buyer.ctx("select"), provider_id="in.test.charger", energy_wh=4000))
    mutate(doc)
    body = m.encode(doc)
    now = int(w.clock())
    reply = await w.bpp.receive("select", body, {"Authorization": sign_body(body, w.buyer.signer, created_s=now,
                                                                           expires_s=now + 60)})
    ack = w.bpp.wire_ack(reply, body)
    assert ack["status"] == "NACK" and ack["error"]["errorCode"] == code
    assert ack["error"]["paths"] == path, ack
    nacl_verify_ack(ack, body, doc["context"].get("messageId", ""), w.key)
    assert w.charger.calls == [] and w.bpp.transactions() == {}


async def test_a_forged_2_0_request_gets_an_unsigned_refusal_path_and_no_callback():
    w = World2()
    doc = w.v2(m.select(w.buyer.ctx("select"), provider_id="in.test.charger", energy_wh=4000))
    body = m.encode(doc)
    now = int(w.clock())
    auth = sign_body(body + b" ", w.buyer.signer, created_s=now, expires_s=now + 60)
    reply = await w.bpp.receive("select", body, {"Authorization": auth})
    ack = w.bpp.wire_ack(reply, body)
    assert reply.http_status == 401 and ack["status"] == "NACK" and reply.refusal is None
    assert ack_errors(ack, 401) == []


async def test_unknown_orders_and_a_replayed_confirm_are_refused_on_2_0_as_on_1_1():
    w = World2()
    b = w.buyer
    await w.refused(w.v2(m.status(b.ctx("status"), order_id="6f1c2a8e-2b7e-4a57-9b43-1d0b2f1f6aff")), "30010")
    await w.ok(m.select(b.ctx("select"), provider_id="in.test.charger", energy_wh=4000))
    await w.ok(m.init(b.ctx("init"), provider_id="in.test.charger", energy_wh=4000))
    err = await w.refused(w.v2(m.confirm(b.ctx("confirm"), provider_id="in.test.charger", energy_wh=4000,
                                         amount_paise=100, payment_ref="UPI-9")), "40004")
    assert err["paths"].startswith("message.contract.settlements[0]")
    confirm = w.v2(m.confirm(b.ctx("confirm"), provider_id="in.test.charger", energy_wh=4000, amount_paise=8496,
                             payment_ref="UPI-1"))
    first, ack1, _ = await w.post(confirm)
    again, ack2, _ = await w.post(confirm)
    assert ack1["status"] == ack2["status"] == "ACK" and again.callbacks == first.callbacks
    assert w.bpp.counters["duplicate"] == 1


async def test_a_forged_request_that_cannot_be_read_is_refused_for_its_signature_first():
    w = World2()
    doc = w.v2(m.select(w.buyer.ctx("select"), provider_id="in.test.charger", energy_wh=4000))
    doc["message"]["order"] = doc["message"].pop("contract")
    body = m.encode(doc)
    reply = await w.bpp.receive("select", body, {"Authorization": "Signature nonsense"})
    assert reply.http_status == 401 and reply.ack["error"]["message"].startswith("signature refused")
    assert reply.refusal is None


async def test_a_discover_this_charger_does_not_match_is_an_ack_no_callback():
    w = World2()
    doc = w.v2(m.search(w.buyer.ctx("search", to_bpp=False), gps=(13.5, 77.6), radius_m=5000))
    reply, ack, _ = await w.post(doc)
    assert w.bpp.profile.wire_status(reply) == 409 and reply.callbacks == [] and reply.refusal is None
    assert ack["status"] == "ACK" and ack["error"]["errorCode"] == "40000" and "km away" in ack["error"]["errorMessage"]


async def test_an_expired_or_oversized_2_0_request_is_refused_as_on_1_1():
    w = World2()
    doc = w.v2(m.select(w.buyer.ctx("select"), provider_id="in.test.charger", energy_wh=4000))
    w.clock.t_s += 120  # the request's timestamp + ttl (30 s) is past; its signature is made now
    err = await w.refused(doc, "30000")
    assert err["paths"] == "context.ttl" and "expired" in err["errorMessage"]
    body = b'{"context":{},"pad":"' + b"x" * 70_000 + b'"}'
    reply = await w.bpp.receive("select", body, {})
    ack = w.bpp.wire_ack(reply, body)
    assert reply.http_status == 413 and ack["status"] == "NACK" and ack_errors(ack, 413) == []
    nacl_verify_ack(ack, body, "", w.key)
