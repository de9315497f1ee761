"""A buyer known by its agency certificate stays known to its orders across a restart.

A buyer shows its certificate with ``select``, ``init`` and ``confirm``; ``status``, ``track``,
``update`` and ``cancel`` carry none. The order keeps the certificate in the journal, so after a
power cut the charger still verifies the buyer of each order it restored, checked again against
the agency key and the revocation list in force, and no other buyer gains anything by it.
"""
from __future__ import annotations

import json

from test_beckn_bpp import bap_certificate
from test_beckn_cache import revocation_list
from test_beckn_durable import PROVIDER, STORED_CONFIRMED_ROW, STORED_TX_ID
from test_beckn_fakes import Buyer, Clock, FakeCharger, charger_signer, signer

from agent.journal import Journal
from protocols.beckn import messages as m
from protocols.beckn.bpp import Bpp
from protocols.beckn.order_record import Transaction
from protocols.signing.beckn import Verifier
from protocols.signing.keys import StaticKeyLookup

AGENCY = signer("agency", "a1", 9)


class Site:
    """A provider over a journal whose buyers are known only by the certificates they carry."""

    def __init__(self, tmp_path):
        self.path = tmp_path / "journal.db"
        self.clock = Clock()
        self.signer = charger_signer()
        self.buyer = Buyer(clock=self.clock, subscriber_id="fleet.bap", seed=11)
        self.certificate = bap_certificate(AGENCY, self.buyer.signer)
        self.ids = iter(f"00000000-0000-4000-9000-{i:012d}" for i in range(1, 10_000))
        self.journal = Journal.open(self.path, clock=self.clock)
        self.charger = FakeCharger(clock=self.clock)
        self.revocations = None
        self.bpp = self._bpp()

    def _bpp(self) -> Bpp:
        return Bpp(service=self.charger, signer=self.signer,
                   verifier=Verifier(lookup=StaticKeyLookup(), clock=self.clock), bpp_uri="http://charger.test/beckn",
                   clock=self.clock, new_id=lambda: next(self.ids), store=self.journal, binding="mqtt",
                   agency_public_key=AGENCY.public_key_bytes, revocations=self.revocations)

    async def restart(self) -> Bpp:
        await self.bpp.close()
        self.journal.close()
        self.journal = Journal.open(self.path, clock=self.clock)
        self.charger = FakeCharger(clock=self.clock)
        self.bpp = self._bpp()
        return self.bpp

    async def close(self):
        await self.bpp.close()
        self.journal.close()

    async def send(self, doc, *, buyer=None):
        body, headers = (buyer or self.buyer).sign(doc)
        return await self.bpp.receive(doc["context"]["action"], body, headers)

    async def ok(self, doc, **kw) -> dict:
        reply = await self.send(doc, **kw)
        assert reply.acked, reply.ack
        return json.loads(reply.callbacks[0].body)

    async def contract(self) -> str:
        b, cert = self.buyer, self.certificate
        await self.ok(m.select(b.ctx("select"), provider_id=PROVIDER, energy_wh=1000, certificate=cert))
        on_init = await self.ok(m.init(b.ctx("init"), provider_id=PROVIDER, energy_wh=1000, certificate=cert))
        amount = m.parse_money(on_init["message"]["order"]["payments"][0]["params"]["amount"], "amount")
        on_confirm = await self.ok(m.confirm(b.ctx("confirm"), provider_id=PROVIDER, energy_wh=1000,
                                             amount_paise=amount, payment_ref="UPI-1", certificate=cert))
        return on_confirm["message"]["order"]["id"]


async def test_a_certified_buyer_can_follow_and_start_its_order_after_a_restart(tmp_path):
    s = Site(tmp_path)
    try:
        order_id = await s.contract()
        await s.restart()
        b = s.buyer
        on_status = await s.ok(m.status(b.ctx("status"), order_id=order_id))
        assert on_status["message"]["order"]["id"] == order_id
        await s.ok(m.track(b.ctx("track"), order_id=order_id))
        await s.ok(m.update(b.ctx("update"), order_id=order_id, command=m.START_CHARGING))
    finally:
        await s.close()


async def test_a_restored_buyer_certificate_is_checked_against_the_revocation_list_in_force(tmp_path):
    s = Site(tmp_path)
    try:
        order_id = await s.contract()
        s.revocations = revocation_list(1, s.buyer.signer.subscriber_id)
        await s.restart()
        reply = await s.send(m.status(s.buyer.ctx("status"), order_id=order_id))
        assert not reply.acked and reply.http_status == 401
    finally:
        await s.close()


async def test_another_buyer_gains_nothing_from_a_restored_certificate(tmp_path):
    s = Site(tmp_path)
    try:
        order_id = await s.contract()
        await s.restart()
        # signed by another key under the certified buyer's name: the certified key does not verify it
        impostor = Buyer(clock=s.clock, subscriber_id="fleet.bap", seed=12)
        reply = await s.send(m.status(impostor.ctx("status"), order_id=order_id), buyer=impostor)
        assert not reply.acked and reply.http_status == 401
    finally:
        await s.close()


async def test_an_order_keeps_the_certificate_its_buyer_showed_and_a_row_without_one_still_reads(tmp_path):
    s = Site(tmp_path)
    try:
        await s.contract()
        stored = json.loads(s.journal.orders("mqtt")[0].snapshot)
        assert stored["buyer_certificate"] == s.certificate
        assert stored["certified"] is True
        # a row written before orders kept certificates reads back unchanged
        tx = Transaction.from_stored(STORED_TX_ID, STORED_CONFIRMED_ROW)
        assert tx.buyer_certificate is None and tx.stored_json() == STORED_CONFIRMED_ROW
    finally:
        await s.close()
