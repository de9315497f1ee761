"""Network orders survive a restart: the journal's order store, the provider over it, the runtime.

A restart is modelled as it happens on a charger: the journal is closed and opened again, the
charger facade is new (a reservation held in memory is gone) and a new ``Bpp`` is built.
"""
from __future__ import annotations

import json
import logging
import sqlite3
from pathlib import Path

import pytest
from test_beckn_fakes import NOW_S, Buyer, Clock, FakeCharger, charger_signer, record, schema_errors, verifier_for

from agent.bootstrap import open_runtime
from agent.clock import Clock as RuntimeClock
from agent.journal import SCHEMA_VERSION, InvalidValue, Journal
from protocols.beckn import messages as m
from protocols.beckn.bpp import Bpp
from protocols.beckn.order_record import Transaction
from protocols.http.binding import HttpBinding
from protocols.mqtt.stack import ChargerNetwork
from protocols.signing.agency import read_agency_public_key
from protocols.signing.detached import verify_object
from protocols.signing.keys import StaticKeyLookup
from protocols.signing.receipt import verify_receipt
from tests.support import sim_config, wait_until

PROVIDER = "in.test.charger"
ROOT = Path(__file__).resolve().parents[1]


# --------------------------------------------------------------------------- the store itself


def test_the_order_store_saves_replaces_lists_and_deletes(tmp_path):
    path = tmp_path / "journal.db"
    with Journal.open(path) as j:
        j.save_order("mqtt", "tx-1", '{"stage":"confirmed"}', 100.0)
        j.save_order("mqtt", "tx-2", '{"stage":"confirmed"}', 101.0)
        j.save_order("http", "tx-1", '{"stage":"cancelled"}', 102.0)
        j.save_order("mqtt", "tx-1", '{"stage":"charging"}', 103.0)  # replaces, keeps its place
    with Journal.open(path) as j:
        assert [(o.tx_id, o.snapshot, o.updated_s) for o in j.orders("mqtt")] == [
            ("tx-1", '{"stage":"charging"}', 103.0), ("tx-2", '{"stage":"confirmed"}', 101.0)]
        assert [(o.binding, o.tx_id) for o in j.orders("http")] == [("http", "tx-1")]
        assert j.orders("ocpi") == []
        assert j.delete_order("mqtt", "tx-1") is True
        assert j.delete_order("mqtt", "tx-1") is False
        assert [o.tx_id for o in j.orders("mqtt")] == ["tx-2"] and len(j.orders("http")) == 1


@pytest.mark.parametrize("args, field", [
    (("mqtt", "tx-1", "{not json", 1.0), "snapshot_json"),
    (("mqtt", "tx-1", "[1, 2]", 1.0), "snapshot_json"),
    (("mqtt", "tx-1", b"{}", 1.0), "snapshot_json"),
    (("", "tx-1", "{}", 1.0), "binding"),
    (("mqtt", None, "{}", 1.0), "tx_id"),
    (("mqtt", "tx-1", "{}", float("nan")), "now_s"),
])
def test_the_order_store_refuses_what_it_could_not_give_back(tmp_path, args, field):
    with Journal.open(tmp_path / "journal.db") as j:
        with pytest.raises(InvalidValue) as info:
            j.save_order(*args)
        assert info.value.details["field"] == field
        assert j.orders("mqtt") == []


def test_a_journal_written_before_orders_existed_opens_with_its_sessions(tmp_path):
    path = tmp_path / "journal.db"
    with Journal.open(path) as j:
        j.start_session("s1", connector_id=1, auth={"source": "contract"}, start_wh=10, start_time_s=1.0,
                        meter_serial="EM-1")
    conn = sqlite3.connect(path)  # what an agent of the release before left behind
    conn.execute("DROP TABLE orders")
    conn.close()
    with Journal.open(path) as j:
        assert j.schema_version == SCHEMA_VERSION  # readable by the release before, still
        assert j.session("s1").start_wh == 10
        j.save_order("mqtt", "tx-1", "{}", 2.0)
        assert [o.tx_id for o in j.orders("mqtt")] == ["tx-1"]


# --------------------------------------------------------------------------- the provider over a journal


class Charger:
    """One binding's provider over a fake charger, with the journal as its order store.

    ``restart()`` is a reboot: the journal is closed and opened again and both the charger
    (whose reservations lived in memory) and the provider are new; ``keep_charger`` restarts
    only the provider, for what the fake cannot rebuild (its sessions and receipts)."""

    def __init__(self, tmp_path, *, binding="mqtt", max_transactions=1000):
        self.path = tmp_path / "journal.db"
        self.clock = Clock()
        self.signer = charger_signer()
        self.buyer = Buyer(clock=self.clock)
        self.ids = iter(f"00000000-0000-4000-9000-{i:012d}" for i in range(1, 10_000))
        self.journal = Journal.open(self.path, clock=self.clock)
        self.charger = FakeCharger(clock=self.clock, receipt_signer=self.signer)
        self.binding = binding
        self.bpp = self._bpp(max_transactions)

    def _bpp(self, max_transactions):
        return Bpp(service=self.charger, signer=self.signer, verifier=verifier_for(self.clock, self.buyer.signer),
                   bpp_uri="http://charger.test/beckn", clock=self.clock, new_id=lambda: next(self.ids),
                   store=self.journal, binding=self.binding, max_transactions=max_transactions)

    async def restart(self, *, binding=None, keep_charger=False, max_transactions=1000):
        await self.bpp.close()
        self.journal.close()
        self.journal = Journal.open(self.path, clock=self.clock)
        if not keep_charger:
            self.charger = FakeCharger(clock=self.clock, receipt_signer=self.signer)
        self.binding = binding or self.binding
        self.bpp = self._bpp(max_transactions)
        return self.bpp

    def close(self):
        self.journal.close()

    def stored(self) -> dict:
        return {o.tx_id: json.loads(o.snapshot) for o in self.journal.orders(self.binding)}

    async def send(self, doc):
        body, headers = self.buyer.sign(doc)
        return await self.bpp.receive(doc["context"]["action"], body, headers)

    async def ok(self, doc) -> dict:
        reply = await self.send(doc)
        assert reply.acked, reply.ack
        out = json.loads(reply.callbacks[0].body)
        assert schema_errors(out) == [], out["context"]["action"]
        return out

    async def refused(self, doc, code) -> dict:
        before = (self.charger.state(), self.stored())
        reply = await self.send(doc)
        assert not reply.acked and reply.ack["error"]["code"] == code, reply.ack
        assert (self.charger.state(), self.stored()) == before
        return reply

    async def contract(self, *, energy_wh=4000, **select_kw) -> tuple[str, int]:
        b = self.buyer
        await self.ok(m.select(b.ctx("select"), provider_id=PROVIDER, energy_wh=energy_wh, **select_kw))
        on_init = await self.ok(m.init(b.ctx("init"), provider_id=PROVIDER, energy_wh=energy_wh,
                                       billing={"name": "Ravi", "phone": "+91-98"}))
        amount = m.parse_money(on_init["message"]["order"]["payments"][0]["params"]["amount"], "amount")
        on_confirm = await self.ok(m.confirm(b.ctx("confirm"), provider_id=PROVIDER, energy_wh=energy_wh,
                                             amount_paise=amount, payment_ref="UPI-1"))
        return on_confirm["message"]["order"]["id"], amount

    async def status(self, order_id) -> dict:
        return (await self.ok(m.status(self.buyer.ctx("status"), order_id=order_id)))["message"]["order"]


def state_of(order: dict) -> str:
    return order["fulfillments"][0]["state"]["descriptor"]["code"]


async def test_a_confirmed_order_survives_a_restart_and_can_be_started(tmp_path):
    c = Charger(tmp_path)
    try:
        order_id, amount = await c.contract()
        tid = c.buyer.transaction_id
        stored = c.stored()[tid]
        assert stored["stage"] == "confirmed" and stored["order_id"] == order_id
        assert "receipt" not in stored and "last_sent" not in stored

        bpp = await c.restart()
        assert c.charger.connectors()[0].status == "AVAILABLE"  # the hold died with the old charger
        order = await c.status(order_id)
        assert (order["id"], order["status"], state_of(order)) == (order_id, "ACTIVE", m.STATE_CONFIRMED)
        assert order["payments"][0]["status"] == "PAID" and order["billing"]["name"] == "Ravi"
        verify_object(m.signed_documents(order, m.TAG_QUOTE)[0], c.signer.public_key_bytes)

        async with bpp:  # start() takes the connector hold again, under the order's id
            conn = c.charger.connectors()[0]
            assert conn.status == "RESERVED" and c.charger.calls[-1] == ("reserve", order_id)
            await c.ok(m.update(c.buyer.ctx("update"), order_id=order_id, command=m.START_CHARGING))
            kwargs = c.charger.start_kwargs
            assert (kwargs["reservation_id"], kwargs["paid_paise"]) == (order_id, amount)
            assert kwargs["acceptance_digest"] == stored["acceptance_digest"]
            sid = bpp.transactions()[tid]["session_id"]
            assert c.stored()[tid]["stage"] == "charging" and c.stored()[tid]["session_id"] == sid
            c.charger.charge(sid, 1500)
            await c.ok(m.update(c.buyer.ctx("update"), order_id=order_id, command=m.END_CHARGING))
            assert c.stored()[tid]["stage"] == "ended"

        await c.restart(keep_charger=True)
        order = await c.status(order_id)
        assert (order["status"], state_of(order)) == ("COMPLETE", m.STATE_ENDED)
        receipt = m.signed_documents(order, m.TAG_RECEIPT)[0]
        verify_object(receipt, c.signer.public_key_bytes)
        assert receipt["order_id"] == order_id
        assert c.bpp.pending() == []  # it ended before the restart: the buyer was told then
    finally:
        await c.bpp.close()
        c.close()


async def test_a_confirmed_order_can_be_cancelled_after_a_restart(tmp_path):
    c = Charger(tmp_path)
    try:
        order_id, amount = await c.contract(start_s=NOW_S + 7200)
        c.clock.t_s = NOW_S + 7200 - 900  # the booking's hold is due
        bpp = await c.restart()
        async with bpp:
            assert c.charger.connectors()[0].status == "RESERVED"
            on_cancel = await c.ok(m.cancel(c.buyer.ctx("cancel"), order_id=order_id))
            assert on_cancel["message"]["order"]["status"] == "CANCELLED"
            assert on_cancel["message"]["order"]["quote"]["price"]["value"] == m.money_text(-(amount - 2360))
            assert c.charger.connectors()[0].status == "AVAILABLE"
        await c.restart()
        order = await c.status(order_id)
        assert (order["status"], state_of(order)) == ("CANCELLED", m.STATE_CANCELLED)
        await c.refused(m.update(c.buyer.ctx("update"), order_id=order_id, command=m.START_CHARGING), "50002")
        await c.refused(m.cancel(c.buyer.ctx("cancel"), order_id=order_id), "50001")
    finally:
        await c.bpp.close()
        c.close()


async def test_an_expired_hold_is_not_taken_again(tmp_path):
    c = Charger(tmp_path)
    try:
        order_id, _ = await c.contract()
        c.clock.t_s += 901  # past the hold (start + reservation_grace_s)
        async with await c.restart():
            assert c.charger.connectors()[0].status == "AVAILABLE"
            assert ("reserve", order_id) not in c.charger.calls
            # the order itself stands: the buyer paid, and a free connector still serves it
            await c.ok(m.update(c.buyer.ctx("update"), order_id=order_id, command=m.START_CHARGING))
    finally:
        await c.bpp.close()
        c.close()


async def test_orders_are_private_to_their_binding(tmp_path):
    c = Charger(tmp_path, binding="mqtt")
    try:
        order_id, _ = await c.contract()
        await c.restart(binding="http", keep_charger=True)
        assert c.bpp.transactions() == {}
        await c.refused(m.status(c.buyer.ctx("status"), order_id=order_id), "30010")
        await c.restart(binding="mqtt", keep_charger=True)
        assert (await c.status(order_id))["id"] == order_id
    finally:
        await c.bpp.close()
        c.close()


async def test_quotes_before_confirm_are_not_kept(tmp_path):
    c = Charger(tmp_path)
    try:
        b = c.buyer
        await c.ok(m.select(b.ctx("select"), provider_id=PROVIDER, energy_wh=1000))
        await c.ok(m.init(b.ctx("init"), provider_id=PROVIDER, energy_wh=1000))
        assert c.stored() == {}
        await c.restart()
        await c.refused(m.confirm(b.ctx("confirm"), provider_id=PROVIDER, energy_wh=1000, amount_paise=2124),
                        "30010")
    finally:
        await c.bpp.close()
        c.close()


async def test_a_start_the_charger_forgot_leaves_the_order_open(tmp_path):
    """Authorized but no energy drawn before the power cut: no session survived, so the order
    is confirmed again rather than stuck charging."""
    c = Charger(tmp_path)
    try:
        order_id, _ = await c.contract()
        await c.ok(m.update(c.buyer.ctx("update"), order_id=order_id, command=m.START_CHARGING))
        assert c.stored()[c.buyer.transaction_id]["stage"] == "charging"
        await c.restart()
        order = await c.status(order_id)
        assert (order["status"], state_of(order)) == ("ACTIVE", m.STATE_CONFIRMED)
        assert c.stored()[c.buyer.transaction_id]["stage"] == "confirmed"
        await c.ok(m.update(c.buyer.ctx("update"), order_id=order_id, command=m.START_CHARGING))
    finally:
        await c.bpp.close()
        c.close()


async def test_a_start_whose_write_was_cut_off_is_tied_to_its_session(tmp_path):
    c = Charger(tmp_path)
    try:
        order_id, _ = await c.contract()
        tid = c.buyer.transaction_id
        confirmed = c.journal.orders("mqtt")[0].snapshot
        await c.ok(m.update(c.buyer.ctx("update"), order_id=order_id, command=m.START_CHARGING))
        sid = c.bpp.transactions()[tid]["session_id"]
        c.journal.save_order("mqtt", tid, confirmed, c.clock())  # as if the crash came before the write
        await c.restart(keep_charger=True)
        assert c.bpp.transactions()[tid]["session_id"] == sid
        assert c.stored()[tid]["stage"] == "charging"
        await c.refused(m.update(c.buyer.ctx("update"), order_id=order_id, command=m.START_CHARGING), "50002")
        await c.ok(m.update(c.buyer.ctx("update"), order_id=order_id, command=m.END_CHARGING))
        assert c.stored()[tid]["stage"] == "ended"
    finally:
        await c.bpp.close()
        c.close()


async def test_confirm_is_refused_with_nothing_held_when_the_order_cannot_be_written(tmp_path):
    c = Charger(tmp_path)
    try:
        b = c.buyer
        await c.ok(m.select(b.ctx("select"), provider_id=PROVIDER, energy_wh=1000))
        await c.ok(m.init(b.ctx("init"), provider_id=PROVIDER, energy_wh=1000))
        before = (c.charger.state(), json.dumps(c.bpp.transactions(), sort_keys=True))
        c.journal.close()  # the store refuses every write from now on
        body, headers = b.sign(m.confirm(b.ctx("confirm"), provider_id=PROVIDER, energy_wh=1000,
                                         amount_paise=2124))
        reply = await c.bpp.receive("confirm", body, headers)
        assert not reply.acked and reply.http_status == 503 and reply.ack["error"]["code"] == "40006"
        assert (c.charger.state(), json.dumps(c.bpp.transactions(), sort_keys=True)) == before
        assert c.bpp.counters["store_failed"] == 1
        c.journal = Journal.open(c.path, clock=c.clock)
        c.bpp.store = c.journal
        await c.ok(m.confirm(b.ctx("confirm"), provider_id=PROVIDER, energy_wh=1000, amount_paise=2124))
        assert c.stored()[b.transaction_id]["stage"] == "confirmed"
    finally:
        await c.bpp.close()
        c.close()


async def test_stored_orders_follow_the_transaction_bound(tmp_path):
    c = Charger(tmp_path, max_transactions=2)
    try:
        done = []
        for _ in range(2):
            c.buyer.transaction_id = c.buyer.new_id()
            order_id, _ = await c.contract(energy_wh=1000)
            await c.ok(m.update(c.buyer.ctx("update"), order_id=order_id, command=m.START_CHARGING))
            await c.ok(m.update(c.buyer.ctx("update"), order_id=order_id, command=m.END_CHARGING))
            done.append(c.buyer.transaction_id)
        assert set(c.stored()) == set(done)
        # a restore that finds more than the bound drops the oldest finished order, store too
        await c.restart(keep_charger=True, max_transactions=1)
        assert list(c.bpp.transactions()) == [done[1]] and set(c.stored()) == {done[1]}
        # a new transaction evicts the oldest finished one, in memory and in the store
        c.buyer.transaction_id = c.buyer.new_id()
        await c.ok(m.select(c.buyer.ctx("select"), provider_id=PROVIDER, energy_wh=1000))
        assert list(c.bpp.transactions()) == [c.buyer.transaction_id] and c.stored() == {}
    finally:
        await c.bpp.close()
        c.close()


async def test_an_unreadable_stored_order_is_skipped_and_named(tmp_path, caplog):
    c = Charger(tmp_path)
    try:
        order_id, _ = await c.contract()
        good = json.loads(c.journal.orders("mqtt")[0].snapshot)
        bad = dict(good, transaction_id="tx-bad", order_id="order-bad", stage="teleported")
        c.journal.save_order("mqtt", "tx-bad", json.dumps(bad), c.clock())
        wrong_type = dict(good, transaction_id="tx-typed", order_id="order-typed", price_paise="84.96")
        c.journal.save_order("mqtt", "tx-typed", json.dumps(wrong_type), c.clock())
        # damage below the store's own checks, as a failing card could leave it
        c.journal._conn.execute("INSERT INTO orders (binding, tx_id, snapshot, updated_s) "
                                "VALUES ('mqtt', 'tx-garbage', '{\"order_id\": ', 0)")
        with caplog.at_level(logging.ERROR, logger="urja.beckn"):
            await c.restart()
        errors = "\n".join(r.getMessage() for r in caplog.records if r.levelno >= logging.ERROR)
        assert "order 'order-bad'" in errors and "teleported" in errors
        assert "order 'order-typed'" in errors and "price_paise" in errors
        assert "transaction 'tx-garbage'" in errors and "not JSON" in errors
        assert c.bpp.counters["orders_unreadable"] == 3
        assert list(c.bpp.transactions()) == [c.buyer.transaction_id]
        assert (await c.status(order_id))["id"] == order_id
        assert len(c.journal.orders("mqtt")) == 4  # nothing deleted unread
    finally:
        await c.bpp.close()
        c.close()


# A confirmed booking exactly as this release writes it (``order_record.ORDER_FORMAT`` 1): a row
# a charger has in its journal must read back after an update.
STORED_TX_ID = "00000000-0000-4000-8000-626100000001"
STORED_ORDER_ID = "00000000-0000-4000-9000-000000000003"
STORED_CONFIRMED_ROW = (
    '{"acceptance_digest":"BLAKE-512=e/bHTX92cfrX9ky7lO7sBGFP0CGDJFLm7vC8MFx'
    'xvQW4s1stWvTCkXiVjqaDxvc3mfHHOnU3QbvbVCvQnfHi8Q==",'
    '"asked_energy_wh":4000,"bap_id":"bap.test","bap_uri":"http://bap.test/beckn",'
    '"billing":{"name":"Ravi","phone":"+91-98"},"budget_paise":null,"certified":false,'
    '"connector_id":"1","created_s":1790000000.0,"ctx":{"action":"confirm","bap_id":"bap.test",'
    '"bap_uri":"http://bap.test/beckn","bpp_id":"in.test.charger",'
    '"bpp_uri":"http://charger.test/beckn","domain":"dent:ev-charging:0.1.0",'
    '"location":{"city":{"code":"std:080"},"country":{"code":"IND"}},'
    '"message_id":"00000000-0000-4000-8000-626100000004","timestamp":"2026-09-21T14:13:20.000Z",'
    '"transaction_id":"00000000-0000-4000-8000-626100000001","ttl":"PT30S","version":"1.1.0"},'
    '"currency":"INR","duration_s":null,"energy_wh":4000,"format":1,"hold_from_s":1790006300.0,'
    '"hold_taken":false,"order_id":"00000000-0000-4000-9000-000000000003","paid_paise":8496,'
    '"payment_id":"00000000-0000-4000-9000-000000000002","payment_ref":"UPI-1","payment_status":"PAID",'
    '"payment_type":"PRE-ORDER","power_w":7400,"price_paise":8496,"quote_doc":{"bap_id":"bap.test",'
    '"bpp_id":"in.test.charger","budget_paise":null,"connector_id":"1","currency":"INR",'
    '"duration_s":null,"energy_wh":4000,"kind":"urja.quote","power_w":7400,"price_paise":8496,'
    '"quote_id":"00000000-0000-4000-9000-000000000001","signature":{"alg":"ed25519",'
    '"key_id":"in.test.charger|c1",'
    '"value":"xjPtYsSX78KbAKkI+4vKktVHOK/mJifnKYTJwuYacnZGuLEVsO5mjNL/1DarOD2U1VVBr1joL+O/EF8EsUvxAw=="},'
    '"start":"2026-09-21T16:13:20.000Z",'
    '"tariff_digest":"sha256:ecce538861a73ddb94e5df07c85e6d21d1076262b745dc69b4a5dbf8d5cc12d9",'
    '"tariff_id":"flat-18","tax_paise":1296,"transaction_id":"00000000-0000-4000-8000-626100000001",'
    '"valid_until":"2026-09-21T14:18:20.000Z"},"quote_expires_s":1790000300.0,'
    '"quote_id":"00000000-0000-4000-9000-000000000001","ratings":[],'
    '"reservation_expires_s":1790008100.0,"reservation_id":"00000000-0000-4000-9000-000000000003",'
    '"reserve_ahead":true,"session_id":null,"stage":"confirmed","start_s":1790007200.0,'
    '"tax_paise":1296,"transaction_id":"00000000-0000-4000-8000-626100000001"}'
)


async def test_orders_are_written_in_the_stored_format_of_this_release(tmp_path):
    c = Charger(tmp_path)
    try:
        order_id, _ = await c.contract(start_s=NOW_S + 7200)
        assert (c.buyer.transaction_id, order_id) == (STORED_TX_ID, STORED_ORDER_ID)
        assert c.journal.orders("mqtt")[0].snapshot == STORED_CONFIRMED_ROW
        await c.ok(m.cancel(c.buyer.ctx("cancel"), order_id=order_id))
        # the fee and the refund are written from the cancel on, beside the stage
        expected = dict(json.loads(STORED_CONFIRMED_ROW), stage="cancelled", cancel_fee_paise=2360,
                        refund_paise=6136)
        assert c.journal.orders("mqtt")[0].snapshot == json.dumps(
            expected, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    finally:
        await c.bpp.close()
        c.close()


async def test_a_row_in_the_stored_format_of_this_release_restores(tmp_path):
    c = Charger(tmp_path)
    try:
        c.journal.save_order("mqtt", STORED_TX_ID, STORED_CONFIRMED_ROW, c.clock())
        bpp = await c.restart()
        assert bpp.counters.get("orders_unreadable") is None and bpp.counters["orders_restored"] == 1
        order = await c.status(STORED_ORDER_ID)
        assert (order["id"], order["status"], state_of(order)) == (STORED_ORDER_ID, "ACTIVE", m.STATE_RESERVED)
        assert order["payments"][0]["status"] == "PAID" and order["billing"]["name"] == "Ravi"
        verify_object(m.signed_documents(order, m.TAG_QUOTE)[0], c.signer.public_key_bytes)
        c.clock.t_s = NOW_S + 7200 - 900  # the booking's hold is due
        async with bpp:
            assert c.charger.calls[-1] == ("reserve", STORED_ORDER_ID)
            on_cancel = await c.ok(m.cancel(c.buyer.ctx("cancel"), order_id=STORED_ORDER_ID))
            assert on_cancel["message"]["order"]["status"] == "CANCELLED"
        stored = c.stored()[STORED_TX_ID]
        assert (stored["stage"], stored["cancel_fee_paise"], stored["refund_paise"]) == ("cancelled", 2360, 6136)
    finally:
        await c.bpp.close()
        c.close()


def test_a_stored_order_reads_back_to_the_same_text():
    tx = Transaction.from_stored(STORED_TX_ID, STORED_CONFIRMED_ROW)
    assert tx.stored_json() == STORED_CONFIRMED_ROW
    tx.stage, tx.cancel_fee_paise, tx.refund_paise = "cancelled", 2360, 6136
    cancelled = tx.stored_json()
    assert Transaction.from_stored(STORED_TX_ID, cancelled).stored_json() == cancelled


def test_the_order_record_refuses_a_field_it_does_not_declare():
    tx = Transaction.from_stored(STORED_TX_ID, STORED_CONFIRMED_ROW)
    with pytest.raises(AttributeError):
        tx.stgae = "ended"  # a misspelt field is not stored beside the real one
    assert tx.stage == "confirmed"
    fields = json.loads(STORED_CONFIRMED_ROW)
    del fields["format"]
    assert Transaction(**fields).stored_json() == STORED_CONFIRMED_ROW
    with pytest.raises(TypeError):
        Transaction(**fields, stgae="ended")
    with pytest.raises(ValueError, match="order '" + STORED_ORDER_ID + "'.*stgae"):
        Transaction.from_stored(STORED_TX_ID, json.dumps(dict(json.loads(STORED_CONFIRMED_ROW), stgae="ended")))


def test_a_store_needs_a_binding_name(tmp_path):
    clock = Clock()
    with Journal.open(tmp_path / "journal.db", clock=clock) as j:
        with pytest.raises(ValueError, match="binding"):
            Bpp(service=FakeCharger(clock=clock), signer=charger_signer(), verifier=verifier_for(clock),
                bpp_uri="http://charger.test/beckn", clock=clock, store=j)


# --------------------------------------------------------------------------- the runtime


def network_for(rt, buyer) -> ChargerNetwork:
    """The MQTT binding as the runtime wires it (journal, keys), not connected: the test talks
    to its provider directly, as the link would."""
    return ChargerNetwork.for_runtime(rt, buyer_keys=StaticKeyLookup([record(buyer.signer)]))


async def ok(bpp, buyer, doc) -> dict:
    body, headers = buyer.sign(doc)
    reply = await bpp.receive(doc["context"]["action"], body, headers)
    assert reply.acked, reply.ack
    return json.loads(reply.callbacks[0].body)


async def runtime_contract(bpp, buyer, site_id, energy_wh) -> tuple[str, int]:
    await ok(bpp, buyer, m.select(buyer.ctx("select"), provider_id=site_id, energy_wh=energy_wh))
    on_init = await ok(bpp, buyer, m.init(buyer.ctx("init"), provider_id=site_id, energy_wh=energy_wh))
    amount = m.parse_money(on_init["message"]["order"]["payments"][0]["params"]["amount"], "amount")
    on_confirm = await ok(bpp, buyer, m.confirm(buyer.ctx("confirm"), provider_id=site_id, energy_wh=energy_wh,
                                                amount_paise=amount, payment_ref="UPI-5"))
    return on_confirm["message"]["order"]["id"], amount


def board_with_a_lasting_meter(tmp_path: Path) -> str:
    """The simulated board, with a meter register that outlives the process as a real one does."""
    text = (ROOT / "board" / "profiles" / "sim.toml").read_text()
    assert 'model = "sdm630"' in text
    profile = tmp_path / "sim-lasting-meter.toml"
    profile.write_text(text.replace('model = "sdm630"',
                                    f'model = "sdm630"\nregister_file = "{tmp_path / "meter.register"}"'))
    return str(profile)


async def _as_a_power_cut(reason="shutdown"):
    """Stands in for ``Runtime.end_sessions`` when a test leaves a session open as a power cut would."""


async def test_an_order_charging_at_a_crash_ends_with_its_signed_receipt(tmp_path):
    cfg = sim_config(tmp_path, auth="network", board=board_with_a_lasting_meter(tmp_path))
    async with open_runtime(cfg, clock=RuntimeClock(speed=20), bindings=False) as rt:
        buyer = Buyer(clock=rt.now_s, bpp_id=cfg.site_id)
        net = network_for(rt, buyer)
        order_id, amount = await runtime_contract(net.bpp, buyer, cfg.site_id, 5000)
        car = rt.board.sim.car
        car.plug_in()
        car.request_power()
        await ok(net.bpp, buyer, m.update(buyer.ctx("update"), order_id=order_id, command=m.START_CHARGING))
        await wait_until(lambda: rt.board.relay.closed, what="relay closed")
        sid = rt.core.session_id
        await wait_until(lambda: rt.session(sid).energy_wh >= 20, what="some energy delivered")
        assert rt.journal.session(sid).is_open
        left_s = rt.now_s()
        # Leaving as a power cut does: nothing closes the session, the journal keeps it open
        # (tests/test_agent_crash.py covers the real kill; a clean shutdown closes it).
        rt.end_sessions = _as_a_power_cut
    async with open_runtime(cfg, clock=RuntimeClock(speed=20, wall=lambda: left_s), bindings=False) as rt2:
        assert not rt2.journal.session(sid).is_open  # reconciled at boot, with a receipt
        buyer.clock = rt2.now_s
        net2 = network_for(rt2, buyer)
        try:
            on_status = await ok(net2.bpp, buyer, m.status(buyer.ctx("status"), order_id=order_id))
            order = on_status["message"]["order"]
            assert (order["id"], order["status"], state_of(order)) == (order_id, "COMPLETE", m.STATE_ENDED)
            receipt = m.signed_documents(order, m.TAG_RECEIPT)[0]
            check = verify_receipt(receipt, agency_public_key=read_agency_public_key(cfg.agency_key))
            assert receipt["order_id"] == order_id and receipt["paid_paise"] == amount
            assert receipt["acceptance_digest"].startswith("BLAKE-512=")
            assert check.refund_due_paise == amount - check.total_paise
            assert receipt == rt2.receipt(sid)
            assert check.energy_wh == rt2.journal.session(sid).energy_wh >= 20  # nothing lost in the crash
            # the buyer is told, as a live end would tell it
            told = [json.loads(o.body) for o in net2.bpp.pending() if o.action == "on_status"]
            assert [t["message"]["order"]["status"] for t in told] == ["COMPLETE"]
            assert told[0]["context"]["transaction_id"] == buyer.transaction_id
            stored = {o.tx_id: json.loads(o.snapshot) for o in rt2.journal.orders("mqtt")}
            assert stored[buyer.transaction_id]["stage"] == "ended"
        finally:
            await net2.bpp.close()


async def test_a_confirmed_order_holds_its_connector_again_and_charges_after_a_restart(tmp_path):
    cfg = sim_config(tmp_path, auth="network")
    async with open_runtime(cfg, clock=RuntimeClock(speed=20), bindings=False) as rt:
        buyer = Buyer(clock=rt.now_s, bpp_id=cfg.site_id)
        net = network_for(rt, buyer)
        order_id, amount = await runtime_contract(net.bpp, buyer, cfg.site_id, 5000)
        assert rt.connectors()[0].status == "RESERVED"
        left_s = rt.now_s()
    async with open_runtime(cfg, clock=RuntimeClock(speed=20, wall=lambda: left_s), bindings=False) as rt2:
        assert rt2.connectors()[0].status == "AVAILABLE"  # the runtime keeps holds in memory
        http = HttpBinding.for_runtime(rt2)
        assert (http.bpp.store, http.bpp.binding) == (rt2.journal, "http")
        assert http.bpp.transactions() == {}  # the MQTT binding's order is not the HTTP binding's
        await http.bpp.close()
        buyer.clock = rt2.now_s
        net2 = network_for(rt2, buyer)
        assert (net2.bpp.store, net2.bpp.binding) == (rt2.journal, "mqtt")
        await net2.bpp.start()
        try:
            conn = rt2.connectors()[0]
            assert (conn.status, conn.reservation_id) == ("RESERVED", order_id)
            car = rt2.board.sim.car
            car.plug_in()
            car.request_power()
            await ok(net2.bpp, buyer, m.update(buyer.ctx("update"), order_id=order_id, command=m.START_CHARGING))
            await wait_until(lambda: rt2.board.relay.closed, what="relay closed")
            await ok(net2.bpp, buyer, m.update(buyer.ctx("update"), order_id=order_id, command=m.END_CHARGING))
            await wait_until(lambda: not rt2.board.relay.closed, what="relay open")
            car.unplug()  # the session ends (and is billed) when the cable leaves
            tid = buyer.transaction_id
            await wait_until(lambda: net2.bpp.transactions()[tid]["receipt"] is not None, what="receipt")
            on_status = await ok(net2.bpp, buyer, m.status(buyer.ctx("status"), order_id=order_id))
            receipt = m.signed_documents(on_status["message"]["order"], m.TAG_RECEIPT)[0]
            verify_receipt(receipt, agency_public_key=read_agency_public_key(cfg.agency_key))
            assert receipt["order_id"] == order_id and receipt["paid_paise"] == amount
        finally:
            await net2.bpp.close()


async def test_an_order_never_started_makes_room_a_day_after_its_window(tmp_path):
    c = Charger(tmp_path, max_transactions=1)
    try:
        order_id, _ = await c.contract(energy_wh=1000)
        abandoned = c.buyer.transaction_id
        c.buyer.transaction_id = c.buyer.new_id()
        await c.charger.cancel_reservation(order_id)  # its hold lapsed, as the runtime lets it
        # within its window plus a day the order keeps its place, and the new buyer must wait
        await c.refused(m.select(c.buyer.ctx("select"), provider_id=PROVIDER, energy_wh=1000), "40000")
        window_end_s = c.stored()[abandoned]["reservation_expires_s"]
        c.clock.t_s = window_end_s + 86_400 + 1
        c.buyer.transaction_id = c.buyer.new_id()
        await c.ok(m.select(c.buyer.ctx("select"), provider_id=PROVIDER, energy_wh=1000))
        assert list(c.bpp.transactions()) == [c.buyer.transaction_id] and abandoned not in c.stored()
    finally:
        await c.bpp.close()
        c.close()
