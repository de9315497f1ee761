"""Who hears a refusal over MQTT, and what the error callback's context says.

MQTT has no synchronous answer, so a refused request is told to its sender as a signed
``on_<action>`` with an ``error``. Only a sender whose signature verified and who is the
``bap_id`` the request names is told: anything else is counted and dropped, so nobody can
make the charger sign a message into a third participant's inbox. The error callback's
context is the documented one (``bap_uri`` ``mqtt://network/{inbox}``, ``location``), as on
every other callback.
"""
from __future__ import annotations

import asyncio
import json

from test_beckn_fakes import Buyer, Clock, FakeCharger, charger_signer, record, signer

from protocols.beckn import messages as m
from protocols.beckn.bpp import Bpp
from protocols.mqtt import framing
from protocols.mqtt.charger import ChargerLink
from protocols.mqtt.transport import MqttSettings, MqttTransport
from protocols.signing.beckn import Verifier, parse_frame
from protocols.signing.keys import StaticKeyLookup

CHARGER = "in.test.charger"
INBOX_URI = "mqtt://network/urja/v1/inbox/"


class Network:
    """One charger's link and provider; what it publishes is recorded instead of sent."""

    def __init__(self):
        self.clock = Clock()
        self.charger_signer = charger_signer()
        self.buyer = Buyer(clock=self.clock, bap_uri=INBOX_URI + "bap.test",
                           bpp_uri=INBOX_URI + CHARGER)
        self.victim = signer("victim.bap", "b1", 21)
        lookup = StaticKeyLookup([record(self.buyer.signer), record(self.victim)])
        self.bpp = Bpp(service=FakeCharger(clock=self.clock), signer=self.charger_signer,
                       verifier=Verifier(lookup=lookup, clock=self.clock), bpp_uri=INBOX_URI + CHARGER,
                       clock=self.clock)
        transport = MqttTransport(MqttSettings(brokers=("mqtt://127.0.0.1:1",), client_id=CHARGER))
        self.published: list[tuple[str, bytes]] = []

        async def publish(topic, payload, **kw):
            self.published.append((topic, payload))

        transport.publish = publish
        self.link = ChargerLink(transport=transport, provider=self.bpp, subscriber_id=CHARGER, lat=12.9352,
                                lon=77.6245, signer_for=lambda now_s: self.charger_signer, clock=self.clock)

    async def deliver(self, doc: dict, *, signed_by) -> None:
        payload = framing.sign_and_frame(m.encode(doc), signed_by, now_s=self.clock(), window_s=60)
        self.link._on_message(self.link.inbox_topic, payload, False)
        await asyncio.gather(*self.link._work)

    def bodies(self) -> list[tuple[str, dict]]:
        return [(topic, json.loads(parse_frame(payload).body)) for topic, payload in self.published]


async def test_a_request_with_a_bad_signature_naming_another_buyer_gets_no_answer_at_all():
    n = Network()
    forger = signer("victim.bap", "b1", 99)  # the victim's name and key id, another key
    ctx = n.buyer.ctx("status")
    ctx.update(bap_id="victim.bap", bap_uri=INBOX_URI + "victim.bap", transaction_id="chosen-tx",
               message_id="chosen-msg")
    await n.deliver(m.status(ctx, order_id="o-1"), signed_by=forger)
    assert n.published == []
    assert n.link.stats["nacked"] == 1 and n.link.stats["unanswered"] == 1


async def test_a_request_signed_by_one_buyer_in_the_name_of_another_gets_no_answer_at_all():
    n = Network()
    ctx = n.buyer.ctx("status")
    ctx.update(bap_id="victim.bap", bap_uri=INBOX_URI + "victim.bap")
    await n.deliver(m.status(ctx, order_id="o-1"), signed_by=n.buyer.signer)  # a valid signature, not the victim's
    assert n.published == [] and n.link.stats["unanswered"] == 1


async def test_a_verified_buyers_refusal_comes_back_signed_with_the_documented_context():
    n = Network()
    doc = m.status(n.buyer.ctx("status"), order_id="no-such-order")
    await n.deliver(doc, signed_by=n.buyer.signer)
    [(topic, error)] = n.bodies()
    assert topic == "urja/v1/inbox/bap.test"
    ctx = error["context"]
    assert error["error"]["code"] == "30010" and "message" not in error
    assert ctx["action"] == "on_status" and ctx["bap_uri"] == INBOX_URI + "bap.test"
    assert ctx["bpp_uri"] == INBOX_URI + CHARGER and ctx["bpp_id"] == CHARGER
    assert ctx["location"] == {"country": {"code": "IND"}, "city": {"code": "std:080"}}
    assert (ctx["transaction_id"], ctx["message_id"]) == (doc["context"]["transaction_id"],
                                                          doc["context"]["message_id"])
    verified = await Verifier(lookup=StaticKeyLookup([record(n.charger_signer)]), clock=n.clock).verify_message(
        parse_frame(n.published[0][1]).body, parse_frame(n.published[0][1]).authorization)
    assert verified.sender.subscriber_id == CHARGER


async def test_a_callback_carries_a_location_even_when_the_request_had_none():
    n = Network()
    ctx = n.buyer.ctx("select")
    del ctx["location"]
    reply = await n.bpp.receive("select", *n.buyer.sign(m.select(ctx, provider_id=CHARGER, energy_wh=1000)))
    assert reply.acked
    assert json.loads(reply.callbacks[0].body)["context"]["location"] == {
        "country": {"code": "IND"}, "city": {"code": "std:080"}}
    ctx["message_id"] = n.buyer.new_id()
    doc = m.status(dict(ctx, action="status"), order_id="no-such-order")
    await n.deliver(doc, signed_by=n.buyer.signer)
    [(_, error)] = n.bodies()
    assert error["context"]["location"] == {"country": {"code": "IND"}, "city": {"code": "std:080"}}


async def test_over_http_a_bad_signature_gets_only_the_unsigned_synchronous_nack():
    n = Network()
    forger = signer("victim.bap", "b1", 99)
    ctx = n.buyer.ctx("status")
    ctx.update(bap_id="victim.bap", bap_uri="http://victim.example/beckn")
    body, headers = n.buyer.sign(m.status(ctx, order_id="o-1"), signer_=forger)
    reply = await n.bpp.receive("status", body, headers)
    assert not reply.acked and reply.http_status == 401 and reply.callbacks == []
    assert "Authorization" not in reply.headers and reply.refusal is None
