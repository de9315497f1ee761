"""Beckn 2.0 over real HTTP on loopback: one endpoint per action, counter-signed Acks, signed
callbacks with requestDigest to the buyer's ``bapUri``, from discover to the receipt."""
from __future__ import annotations

import asyncio
import json

import aiohttp
from beckn2_support import ack_errors, nacl_verify_ack, nacl_verify_onix_ack, request_digest, v2_errors
from test_beckn_fakes import Buyer, Clock, FakeCharger, charger_signer, record

from protocols.beckn import messages as m
from protocols.beckn.bpp import Bpp
from protocols.beckn2 import codec
from protocols.beckn2.profile import Beckn2Profile
from protocols.http.bap import BapReceiver
from protocols.http.server import BecknHttpServer
from protocols.signing.beckn import Verifier, sign_body
from protocols.signing.keys import StaticKeyLookup

NETWORK = "urja.local/ev-charging"


class Net:
    async def __aenter__(self):
        self.clock = Clock()
        self.charger_signer = charger_signer()
        self.key = self.charger_signer.public_key_bytes
        self.charger = FakeCharger(clock=self.clock, receipt_signer=self.charger_signer)
        self.buyer = Buyer(clock=self.clock)
        self.receiver = BapReceiver(verifier=Verifier(lookup=StaticKeyLookup([record(self.charger_signer)]),
                                                      clock=self.clock), profile="beckn-2.0",
                                    signer=self.buyer.signer, clock=self.clock)
        bap_port = await self.receiver.start()
        self.buyer.bap_uri = f"http://127.0.0.1:{bap_port}/"
        ids = iter(f"00000000-0000-4000-9000-{i:012d}" for i in range(1, 1000))
        self.bpp = Bpp(service=self.charger, signer=self.charger_signer, bpp_uri="http://127.0.0.1/",
                       verifier=Verifier(lookup=StaticKeyLookup([record(self.buyer.signer)]), clock=self.clock),
                       clock=self.clock, new_id=lambda: next(ids), certificate={"subscriber_id": "c"},
                       profile=Beckn2Profile(network_id=NETWORK, bpp_id="in.test.charger",
                                             bpp_uri="http://127.0.0.1/"))
        self.server = BecknHttpServer(bpp=self.bpp, retry_delay_s=0.01)
        self.base = f"http://127.0.0.1:{await self.server.start()}"
        self.http = aiohttp.ClientSession()
        await self.bpp.start()
        return self

    async def __aexit__(self, *exc):
        await self.http.close()
        await self.bpp.close()
        await self.server.close()
        await self.receiver.close()

    async def post(self, v1_doc: dict, *, signed: bool = True):
        doc = codec.request_v2(v1_doc, network_id=NETWORK)
        assert v2_errors(doc) == []
        body = m.encode(doc)
        now = int(self.clock())
        headers = {"Content-Type": "application/json"}
        if signed:
            headers["Authorization"] = sign_body(body, self.buyer.signer, created_s=now, expires_s=now + 60)
        async with self.http.post(f"{self.base}/{doc['context']['action']}", data=body, headers=headers) as r:
            raw = await r.read()
            ack = json.loads(raw)
        assert ack_errors(ack, r.status) == [], ack
        nacl_verify_ack(ack, body, doc["context"]["messageId"], self.key)
        if signed:  # the beckn-onix form of the same proof, over the exact bytes sent
            nacl_verify_onix_ack(raw, r.headers["Signature"], headers["Authorization"], self.key)
        else:
            assert "Signature" not in r.headers
        return r.status, ack, doc, body

    async def callback(self, action: str, doc: dict, body: bytes) -> dict:
        """The 2.0 callback answering ``doc``, checked as an outside node would."""
        await self.receiver.wait_for(codec.action_v1("on_" + action),
                                     transaction_id=doc["context"]["transactionId"])
        for act, raw in self.receiver.raw:
            if act == "on_" + action and raw["context"]["messageId"] == doc["context"]["messageId"]:
                assert v2_errors(raw) == [], v2_errors(raw)
                assert raw["context"]["requestDigest"] == {"digest": request_digest(body)}
                return raw
        raise AssertionError(f"no on_{action} for {doc['context']['messageId']}")


async def test_the_whole_2_0_flow_over_http_from_discover_to_the_receipt():
    async with Net() as n:
        b = n.buyer
        status, ack, doc, body = await n.post(m.search(b.ctx("search", to_bpp=False), gps=(12.94, 77.62),
                                                       radius_m=5000))
        assert (status, ack["status"]) == (200, "ACK")
        raw = await n.callback("discover", doc, body)
        assert raw["message"]["catalogs"][0]["bppId"] == "in.test.charger"
        got = None
        for action, v1 in [("select", m.select(b.ctx("select"), provider_id="in.test.charger", energy_wh=2000)),
                           ("init", m.init(b.ctx("init"), provider_id="in.test.charger", energy_wh=2000)),
                           ("confirm", m.confirm(b.ctx("confirm"), provider_id="in.test.charger", energy_wh=2000,
                                                 amount_paise=4248, payment_ref="UPI-9"))]:
            status, ack, doc, body = await n.post(v1)
            assert status == 200 and ack["status"] == "ACK", ack
            got = await n.callback(action, doc, body)
        order_id = got["message"]["contract"]["id"]
        status, ack, doc, body = await n.post(m.update(b.ctx("update"), order_id=order_id, command=m.START_CHARGING))
        await n.callback("update", doc, body)
        sid = n.bpp.transactions()[b.transaction_id]["session_id"]
        n.charger.charge(sid, 2000)
        mark = len(n.receiver.raw)
        await n.post(m.update(b.ctx("update"), order_id=order_id, command=m.END_CHARGING))
        final = await asyncio.wait_for(_complete(n, mark), 5)
        assert v2_errors(final) == [] and "requestDigest" not in final["context"]
        order = codec.callback_v1(final)["message"]["order"]
        assert m.signed_documents(order, m.TAG_RECEIPT)[0]["energy_wh"] == 2000
        assert n.receiver.refused == 0


async def _complete(n, mark):
    while True:
        for act, raw in n.receiver.raw[mark:]:
            if act == "on_status" and raw["message"]["contract"]["status"]["code"] == "COMPLETE":
                return raw
        n.receiver._changed.clear()
        await n.receiver._changed.wait()


async def test_an_unsigned_2_0_request_is_a_401_nack_with_the_counter_signature_and_nothing_else():
    async with Net() as n:
        status, ack, _, _ = await n.post(m.select(n.buyer.ctx("select"), provider_id="in.test.charger",
                                                  energy_wh=2000), signed=False)
        assert status == 401 and ack["status"] == "NACK" and ack["error"]["errorCode"] == "30000"
        assert n.receiver.received == [] and n.bpp.transactions() == {}


async def test_every_2_0_action_has_its_own_endpoint_and_1_1_paths_are_gone():
    async with Net() as n:
        for action in ("discover", "select", "init", "confirm", "status", "track", "update", "cancel", "rate",
                       "support"):
            async with n.http.post(f"{n.base}/{action}", data=b"{}") as r:
                ack = await r.json()
                assert r.status in (400, 401) and ack["status"] == "NACK", (action, ack)
        for old in ("search", "rating"):
            async with n.http.post(f"{n.base}/{old}", data=b"{}") as r:
                assert r.status in (404, 405)

