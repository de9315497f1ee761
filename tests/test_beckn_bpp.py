"""The charger's provider logic: contracts from search to receipt, and every refusal."""
from __future__ import annotations

import json

import pytest
from test_beckn_fakes import NOW_S, Buyer, Clock, FakeCharger, charger_signer, record, schema_errors, signer

from protocols.beckn import messages as m
from protocols.beckn.bpp import Bpp, Outgoing, Policy
from protocols.signing.beckn import Verifier
from protocols.signing.detached import sign_object, verify_object
from protocols.signing.keys import StaticKeyLookup


class World:
    def __init__(self, *, network=None, connectors=1, upi_vpa="owner@okaxis", agency=None, revocations=None):
        self.clock = Clock()
        self.charger_signer = charger_signer()
        self.charger = FakeCharger(clock=self.clock, connectors=connectors, network=network, upi_vpa=upi_vpa,
                                   receipt_signer=self.charger_signer)
        self.buyer = Buyer(clock=self.clock)
        self.lookup = StaticKeyLookup([record(self.buyer.signer)])
        self.ids = iter(f"00000000-0000-4000-9000-{i:012d}" for i in range(1, 10_000))
        self.bpp = Bpp(service=self.charger, signer=self.charger_signer,
                       verifier=Verifier(lookup=self.lookup, clock=self.clock), bpp_uri="http://charger.test/beckn",
                       clock=self.clock, new_id=lambda: next(self.ids), certificate={"subscriber_id": "c"},
                       agency_public_key=agency.public_key_bytes if agency else None, revocations=revocations)
        self.charger_key = self.charger_signer.public_key_bytes

    async def send(self, doc, *, buyer=None, headers=None):
        buyer = buyer or self.buyer
        body, hdrs = buyer.sign(doc)
        reply = await self.bpp.receive(doc["context"]["action"], body, headers if headers is not None else hdrs)
        for out in reply.callbacks:
            self.check_out(out)
        return reply

    def check_out(self, out: Outgoing):
        doc = json.loads(out.body)
        assert schema_errors(doc) == [], doc["context"]["action"]
        assert out.headers["Authorization"].startswith('Signature keyId="in.test.charger|c1|ed25519"')
        return doc

    async def ok(self, doc, **kw):
        reply = await self.send(doc, **kw)
        assert reply.acked, reply.ack
        assert len(reply.callbacks) == 1
        out = reply.callbacks[0]
        assert out.action == "on_" + doc["context"]["action"]
        buyer = kw.get("buyer") or self.buyer
        assert (out.receiver_id, out.receiver_uri) == (buyer.signer.subscriber_id, "http://bap.test/beckn")
        return json.loads(out.body)

    async def refused(self, doc, code, *, http_status=None, **kw):
        before = (self.charger.state(), json.dumps(self.bpp.transactions(), sort_keys=True, default=str))
        reply = await self.send(doc, **kw)
        assert not reply.acked and reply.callbacks == []
        assert reply.ack["error"]["code"] == code, reply.ack
        if http_status is not None:
            assert reply.http_status == http_status
        after = (self.charger.state(), json.dumps(self.bpp.transactions(), sort_keys=True, default=str))
        assert before == after
        return reply.ack["error"]

    async def contract(self, *, energy_wh=4000, pay=True, **select_kw):
        b = self.buyer
        await self.ok(m.select(b.ctx("select"), provider_id="in.test.charger", energy_wh=energy_wh, **select_kw))
        on_init = await self.ok(m.init(b.ctx("init"), provider_id="in.test.charger", energy_wh=energy_wh,
                                       billing={"name": "Ravi", "phone": "+91-98"}))
        amount = m.parse_money(on_init["message"]["order"]["payments"][0]["params"]["amount"], "amount")
        on_confirm = await self.ok(m.confirm(b.ctx("confirm"), provider_id="in.test.charger", energy_wh=energy_wh,
                                             amount_paise=amount if pay else None, payment_ref="UPI-1",
                                             payment_status="PAID" if pay else "NOT-PAID"))
        return on_init, on_confirm, on_confirm["message"]["order"]["id"]


async def test_search_returns_signed_catalog_with_offer():
    w = World()
    doc = await w.ok(m.search(w.buyer.ctx("search", to_bpp=False), gps=(12.94, 77.62), radius_m=3000,
                              connector_type="IEC_62196_T2", max_price_paise_per_kwh=2200))
    provider = doc["message"]["catalog"]["providers"][0]
    assert provider["id"] == "in.test.charger" and provider["locations"][0]["gps"] == "12.935200,77.624500"
    assert provider["items"][0]["price"] == {"currency": "INR/kWh", "value": "21.24"}
    offer = m.signed_documents(provider["offers"][0], m.TAG_OFFER)[0]
    verify_object(offer, w.charger_key)
    assert offer["tariff"]["id"] == "flat-18" and offer["energy_price_paise_per_kwh"] == 2124
    assert m.signed_documents(provider, m.TAG_CERTIFICATE) == [{"subscriber_id": "c"}]
    assert doc["context"]["bpp_id"] == "in.test.charger"


@pytest.mark.parametrize("kw, why", [
    (dict(gps=(13.5, 77.6), radius_m=5000), "km away"),
    (dict(gps=(12.94, 77.62), radius_m=5000, connector_type="CHADEMO"), "CHADEMO"),
    (dict(gps=(12.94, 77.62), radius_m=5000, min_power_w=50_000), "50 kW"),
    (dict(gps=(12.94, 77.62), radius_m=5000, max_price_paise_per_kwh=2000), "ceiling"),
])
async def test_search_that_does_not_match_is_declined(kw, why):
    w = World()
    err = await w.refused(m.search(w.buyer.ctx("search", to_bpp=False), **kw), "40000")
    assert why in err["message"]
    assert w.bpp.counters["nack:no-match"] == 1


async def test_prepaid_contract_start_stop_receipt():
    w = World()
    on_select = await w.ok(m.select(w.buyer.ctx("select"), provider_id="in.test.charger", energy_wh=4000))
    order = on_select["message"]["order"]
    assert order["quote"]["price"] == {"currency": "INR", "value": "84.96"}  # 4 kWh * 18 * 1.18
    quote = m.signed_documents(order, m.TAG_QUOTE)[0]
    verify_object(quote, w.charger_key)
    assert quote["price_paise"] == 8496 and quote["energy_wh"] == 4000 and quote["connector_id"] == "1"
    on_init = await w.ok(m.init(w.buyer.ctx("init"), provider_id="in.test.charger", energy_wh=4000))
    pay = on_init["message"]["order"]["payments"][0]
    assert pay["url"].startswith("upi://pay?pa=owner@okaxis&pn=Test%20site&am=84.96&cu=INR&tr=")
    assert pay["url"].split("tr=")[1].startswith(w.buyer.transaction_id)
    assert on_init["message"]["order"]["cancellation_terms"][0]["cancellation_fee"]["amount"]["value"] == "23.60"
    on_confirm = await w.ok(m.confirm(w.buyer.ctx("confirm"), provider_id="in.test.charger", energy_wh=4000,
                                      amount_paise=8496, payment_ref="UPI-1"))
    order_id = on_confirm["message"]["order"]["id"]
    assert on_confirm["message"]["order"]["status"] == "ACTIVE"
    assert w.charger.connectors()[0].status == "RESERVED"

    w.bpp.pending().clear()
    on_update = await w.ok(m.update(w.buyer.ctx("update"), order_id=order_id, command=m.START_CHARGING))
    assert on_update["message"]["order"]["fulfillments"][0]["state"]["descriptor"]["code"] == m.STATE_PENDING
    assert w.charger.start_kwargs["money_limit_paise"] == 8496 and w.charger.start_kwargs["energy_limit_wh"] == 4000
    assert w.charger.start_kwargs["paid_paise"] == 8496
    assert w.charger.start_kwargs["acceptance_digest"].startswith("BLAKE-512=")
    sid = w.bpp.transactions()[w.buyer.transaction_id]["session_id"]
    w.charger.charge(sid, 1500)
    pushed = [json.loads(o.body) for o in w.bpp.pending() if o.action == "on_status"]
    live = m.tag_values(pushed[-1]["message"]["order"]["fulfillments"][0]["tags"], m.TAG_LIVE)
    assert live["energy-wh"] == "1500" and live["cost"] == "31.86"
    for o in w.bpp.pending():
        w.check_out(o)

    on_status = await w.ok(m.status(w.buyer.ctx("status"), order_id=order_id))
    assert on_status["message"]["order"]["fulfillments"][0]["state"]["descriptor"]["code"] == m.STATE_STARTED
    on_track = await w.ok(m.track(w.buyer.ctx("track"), order_id=order_id))
    assert on_track["message"]["tracking"]["status"] == "active"

    await w.ok(m.update(w.buyer.ctx("update"), order_id=order_id, command=m.END_CHARGING))
    final = [json.loads(o.body) for o in w.bpp.pending()][-1]
    assert final["message"]["order"]["status"] == "COMPLETE"
    receipt = m.signed_documents(final["message"]["order"], m.TAG_RECEIPT)[0]
    verify_object(receipt, w.charger_key)
    assert receipt["refund_due_paise"] == 8496 - 3186
    assert final["context"]["message_id"] != on_status["context"]["message_id"]  # unsolicited: new id
    # after the end: no second stop, no cancel
    await w.refused(m.update(w.buyer.ctx("update"), order_id=order_id, command=m.END_CHARGING), "50002")
    await w.refused(m.cancel(w.buyer.ctx("cancel"), order_id=order_id), "50001")
    await w.ok(m.rating(w.buyer.ctx("rating"), ref_id=order_id, value=4))
    sup = await w.ok(m.support(w.buyer.ctx("support"), ref_id=order_id))
    assert sup["message"]["support"] == {"ref_id": order_id, "phone": "+91-80-1", "email": "owner@example.in"}


async def test_budget_and_time_asks_are_quoted_and_limited():
    w = World()
    doc = await w.ok(m.select(w.buyer.ctx("select"), provider_id="in.test.charger", budget_paise=10000))
    q = m.signed_documents(doc["message"]["order"], m.TAG_QUOTE)[0]
    assert q["energy_wh"] == 4708 and q["price_paise"] <= 10000  # 10000 / 2.124 per Wh, rounded down
    w2 = World()
    doc = await w2.ok(m.select(w2.buyer.ctx("select"), provider_id="in.test.charger", duration_s=1800))
    q = m.signed_documents(doc["message"]["order"], m.TAG_QUOTE)[0]
    assert q["duration_s"] == 1800 and q["energy_wh"] == 3700


async def test_future_start_is_a_reservation_and_cancel_refunds_minus_tariff_fee():
    w = World()
    _, on_confirm, order_id = await w.contract(start_s=NOW_S + 7200)
    assert on_confirm["message"]["order"]["fulfillments"][0]["state"]["descriptor"]["code"] == m.STATE_RESERVED
    # booked for two hours from now: the connector stays free for others until 15 minutes before
    await w.bpp.take_due_holds()
    assert w.charger.connectors()[0].status == "AVAILABLE"
    w.clock.t_s = NOW_S + 7200 - 900
    await w.bpp.take_due_holds()
    assert w.charger.connectors()[0].status == "RESERVED"
    await w.refused(m.update(w.buyer.ctx("update"), order_id=order_id, command=m.START_CHARGING), "50002")
    on_cancel = await w.ok(m.cancel(w.buyer.ctx("cancel"), order_id=order_id))
    order = on_cancel["message"]["order"]
    assert order["status"] == "CANCELLED" and order["quote"]["price"]["value"] == "-61.36"  # 84.96 - 23.60
    assert w.charger.connectors()[0].status == "AVAILABLE"
    await w.refused(m.update(w.buyer.ctx("update"), order_id=order_id, command=m.START_CHARGING), "50002")


async def test_bookings_of_one_connector_may_not_overlap_and_leave_it_free_meanwhile():
    w = World()
    await w.contract(start_s=NOW_S + 7200)
    w.buyer.transaction_id = w.buyer.new_id()
    b = w.buyer
    await w.ok(m.select(b.ctx("select"), provider_id="in.test.charger", energy_wh=4000, start_s=NOW_S + 7800))
    on_init = await w.ok(m.init(b.ctx("init"), provider_id="in.test.charger", energy_wh=4000))
    amount = m.parse_money(on_init["message"]["order"]["payments"][0]["params"]["amount"], "amount")
    err = await w.refused(m.confirm(b.ctx("confirm"), provider_id="in.test.charger", energy_wh=4000,
                                    amount_paise=amount, payment_ref="UPI-2"), "30008")
    assert "booked from" in err["message"]
    # a search for that time finds the connector booked; one for another time does not
    near = dict(gps=(12.94, 77.62), radius_m=3000)
    err = await w.refused(m.search(w.buyer.ctx("search", to_bpp=False), start_s=NOW_S + 7500, **near), "40000")
    assert "booked at the time asked" in err["message"]
    await w.ok(m.search(w.buyer.ctx("search", to_bpp=False), start_s=NOW_S + 3 * 3600 + 1800, **near))
    # a later evening is free, and so is the connector now: a walk-in charges before the bookings
    w.buyer.transaction_id = w.buyer.new_id()
    await w.contract(start_s=NOW_S + 5 * 3600)
    w.buyer.transaction_id = w.buyer.new_id()
    _, _, walk_in = await w.contract()
    await w.ok(m.update(w.buyer.ctx("update"), order_id=walk_in, command=m.START_CHARGING))
    assert w.charger.connectors()[0].status == "CHARGING"


async def test_prepaid_site_refuses_unpaid_confirm():
    w = World()
    b = w.buyer
    await w.ok(m.select(b.ctx("select"), provider_id="in.test.charger", energy_wh=1000))
    await w.ok(m.init(b.ctx("init"), provider_id="in.test.charger", energy_wh=1000))
    err = await w.refused(m.confirm(b.ctx("confirm"), provider_id="in.test.charger", energy_wh=1000,
                                    payment_status="NOT-PAID"), "40004")
    assert "prepaid" in err["message"]


def bap_certificate(agency, buyer_signer, **over):
    import base64
    cert = {"subscriber_id": buyer_signer.subscriber_id, "unique_key_id": buyer_signer.key_id,
            "signing_public_key": base64.b64encode(buyer_signer.public_key_bytes).decode(), "type": "BAP",
            "status": "SUBSCRIBED", "valid_from": "2020-01-01T00:00:00Z", "valid_until": "2030-01-01T00:00:00Z"}
    cert.update(over)
    return sign_object(cert, agency)


async def test_postpaid_needs_an_agency_certified_buyer():
    agency = signer("agency", "a1", 9)
    w = World(network={"payment": "postpaid_certified"}, agency=agency)
    # Uncertified buyer (key from the lookup only): may not settle after charging.
    b = w.buyer
    await w.ok(m.select(b.ctx("select"), provider_id="in.test.charger", energy_wh=1000))
    await w.ok(m.init(b.ctx("init"), provider_id="in.test.charger", energy_wh=1000))
    await w.refused(m.confirm(b.ctx("confirm"), provider_id="in.test.charger", energy_wh=1000,
                              payment_status="NOT-PAID"), "40004")
    # A buyer unknown to the lookup, carrying its certificate, is believed and may pay later.
    other = Buyer(clock=w.clock, subscriber_id="fleet.bap", seed=11)
    cert = bap_certificate(agency, other.signer)
    doc = await w.ok(m.select(other.ctx("select"), provider_id="in.test.charger", energy_wh=1000,
                              certificate=cert), buyer=other)
    assert doc["context"]["bap_id"] == "fleet.bap"
    on_init = await w.ok(m.init(other.ctx("init"), provider_id="in.test.charger", energy_wh=1000), buyer=other)
    assert on_init["message"]["order"]["payments"][0]["type"] == "POST-FULFILLMENT"
    assert await w.lookup.lookup("fleet.bap", "b1") is None  # known by its certificate only
    await w.ok(m.confirm(other.ctx("confirm"), provider_id="in.test.charger", energy_wh=1000,
                         payment_status="NOT-PAID", certificate=cert), buyer=other)
    assert w.charger.connectors()[0].status == "RESERVED"


async def test_forged_expired_or_revoked_certificates_are_refused():
    agency = signer("agency", "a1", 9)
    forger = signer("agency", "a1", 10)
    other = Buyer(clock=Clock(), subscriber_id="fleet.bap", seed=11)
    for cert in (bap_certificate(forger, other.signer),
                 bap_certificate(agency, other.signer, valid_until="2025-01-01T00:00:00Z"),
                 bap_certificate(agency, other.signer, status="UNSUBSCRIBED")):
        w = World(agency=agency)
        other.clock = w.clock
        err = await w.refused(m.select(other.ctx("select"), provider_id="in.test.charger", energy_wh=1000,
                                       certificate=cert), "30000", buyer=other, http_status=401)
        assert "certificate" in err["message"]
    revocations = sign_object({"kind": "urja.revocations", "agency_id": "agency", "sequence": 1,
                               "issued_at": "2026-01-01T00:00:00Z",
                               "revoked": [{"id": "fleet.bap", "revoked_at": "2026-01-01T00:00:00Z"}]}, agency)
    w = World(agency=agency, revocations=revocations)
    other.clock = w.clock
    err = await w.refused(m.select(other.ctx("select"), provider_id="in.test.charger", energy_wh=1000,
                                   certificate=bap_certificate(agency, other.signer)), "30000", buyer=other)
    assert "revocation" in err["message"]


async def test_signature_failures_are_401_and_change_nothing():
    w = World()
    doc = m.select(w.buyer.ctx("select"), provider_id="in.test.charger", energy_wh=1000)
    await w.refused(doc, "30000", headers={}, http_status=401)
    body, hdrs = w.buyer.sign(doc)
    reply = await w.bpp.receive("select", body.replace(b"1", b"2", 1), hdrs)
    assert reply.http_status == 401 and reply.headers["WWW-Authenticate"].startswith('Signature realm="in.test.charger"')
    stranger = Buyer(clock=w.clock, subscriber_id="stranger.bap", seed=12)
    await w.refused(m.select(stranger.ctx("select"), provider_id="in.test.charger", energy_wh=1000),
                    "30000", buyer=stranger, http_status=401)
    # signed by a known buyer but claiming to be another
    impostor = m.select(w.buyer.ctx("select"), provider_id="in.test.charger", energy_wh=1000)
    impostor["context"]["bap_id"] = "someone.else"
    err = await w.refused(impostor, "30000", http_status=401)
    assert err["paths"] == "context.bap_id"
    w.clock.t_s += 120  # signature window passed
    body2, hdrs2 = w.buyer.sign(doc)
    w.clock.t_s += 61
    assert (await w.bpp.receive("select", body2, hdrs2)).http_status == 401
    assert w.bpp.counters["nack:signature"] == 5


async def test_replay_gets_the_same_answer_and_no_second_effect():
    w = World()
    doc = m.select(w.buyer.ctx("select"), provider_id="in.test.charger", energy_wh=1000)
    body, hdrs = w.buyer.sign(doc)
    first = await w.bpp.receive("select", body, hdrs)
    again = await w.bpp.receive("select", body, hdrs)
    assert first.acked and again is first and w.bpp.counters["duplicate"] == 1
    doc2 = json.loads(body)
    doc2["message"]["order"]["items"][0]["quantity"]["selected"]["measure"]["value"] = "2"
    await w.refused(doc2, "30000")  # same message id, different body


async def test_out_of_order_and_unknown_transactions():
    w = World()
    b = w.buyer
    await w.refused(m.init(b.ctx("init"), provider_id="in.test.charger", energy_wh=1000), "30010")
    await w.refused(m.status(b.ctx("status"), order_id="nope"), "30010")
    await w.ok(m.select(b.ctx("select"), provider_id="in.test.charger", energy_wh=1000))
    await w.refused(m.confirm(b.ctx("confirm"), provider_id="in.test.charger", energy_wh=1000,
                              amount_paise=2124), "50000")
    await w.ok(m.init(b.ctx("init"), provider_id="in.test.charger", energy_wh=1000))
    await w.refused(m.confirm(b.ctx("confirm"), provider_id="in.test.charger", energy_wh=2000,
                              amount_paise=2124), "40003")
    w.clock.t_s += 301  # quote expired
    await w.refused(m.confirm(b.ctx("confirm"), provider_id="in.test.charger", energy_wh=1000,
                              amount_paise=2124), "40003")


async def test_orders_are_private_to_their_buyer():
    w = World()
    _, _, order_id = await w.contract()
    other = Buyer(clock=w.clock, subscriber_id="other.bap", seed=13)
    w.lookup.add(record(other.signer))
    await w.refused(m.status(other.ctx("status"), order_id=order_id), "30010", buyer=other)
    await w.refused(m.cancel(other.ctx("cancel"), order_id=order_id), "30010", buyer=other)
    await w.refused(m.rating(other.ctx("rating"), ref_id=order_id, value=1), "30014", buyer=other)


async def test_busy_connector_and_bad_ids_are_refused():
    w = World()
    await w.contract()
    other = Buyer(clock=w.clock, subscriber_id="other.bap", seed=13)
    w.lookup.add(record(other.signer))
    await w.refused(m.select(other.ctx("select"), provider_id="in.test.charger", energy_wh=1000), "30008",
                    buyer=other)
    await w.refused(m.select(other.ctx("select"), provider_id="elsewhere", energy_wh=1000), "30001", buyer=other)
    await w.refused(m.select(other.ctx("select"), provider_id="in.test.charger", item_id="coffee",
                             energy_wh=1000), "30004", buyer=other)
    await w.refused(m.select(other.ctx("select"), provider_id="in.test.charger", energy_wh=1000,
                             fulfillment_id="9"), "30008", buyer=other)


async def test_unknown_action_and_oversized_body():
    w = World()
    reply = await w.bpp.receive("dance", b"{}", {})
    assert reply.ack["error"]["code"] == "40001" and reply.http_status == 404
    reply = await w.bpp.receive("search", b"{" + b" " * 70_000 + b"}", {})
    assert reply.http_status == 413 and w.bpp.counters["nack:oversized"] == 1


async def test_catalog_is_signed_and_pushed_on_connector_change():
    w = World()
    out = w.bpp.catalog()
    doc = w.check_out(out)
    assert out.receiver_id is None and "bap_id" not in doc["context"]
    sent = []

    async def send(o):
        sent.append(o)
    w.bpp.send = send
    async with w.bpp:
        await w.contract()
        import asyncio
        await asyncio.wait_for(_until(lambda: any(o.action == "on_search" for o in sent)), 2)
    assert not w.bpp.pending()


async def _until(pred):
    import asyncio
    while not pred():
        await asyncio.sleep(0)


def test_policy_reads_the_network_table():
    from drivers.configfile import ConfigError
    site = FakeCharger(clock=Clock(), network={"payment": "postpaid_certified", "quote_ttl_s": 60}).site
    assert Policy.from_site(site) == Policy(payment="postpaid_certified", quote_ttl_s=60)
    site.extra["network"]["payment"] = "credit"
    with pytest.raises(ConfigError) as e:
        Policy.from_site(site)
    assert "network.payment" in str(e.value) and "prepaid" in str(e.value)
