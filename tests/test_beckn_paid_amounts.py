"""What a buyer says it paid, and every other figure a buyer states, against what the charger asked.

The charger cannot see a UPI payment; what it can do is refuse to take a figure from the buyer
that differs from its own. A confirm's amount must be exactly the amount ``on_init`` asked, or
the confirm is refused (``40004``) with nothing held and nothing stored; the session's money
limit and the receipt's ``paid_paise`` then come from the charger's own quote.
"""
from __future__ import annotations

import json

import pytest
from test_beckn_bpp import World
from test_beckn_durable import PROVIDER, Charger
from test_beckn_fakes import NOW_S

from protocols.beckn import messages as m


async def _initiated(w, **ask) -> int:
    """Select and init one order; the amount ``on_init`` asks."""
    b = w.buyer
    await w.ok(m.select(b.ctx("select"), provider_id=PROVIDER, **ask))
    on_init = await w.ok(m.init(b.ctx("init"), provider_id=PROVIDER, **ask))
    return m.parse_money(on_init["message"]["order"]["payments"][0]["params"]["amount"], "amount")


def _confirm(w, amount_paise, **ask) -> dict:
    return m.confirm(w.buyer.ctx("confirm"), provider_id=PROVIDER, amount_paise=amount_paise,
                     payment_ref="UPI-1", **ask)


@pytest.mark.parametrize("paid", [
    pytest.param(lambda asked: 1, id="one paisa"),
    pytest.param(lambda asked: asked - 1, id="one paisa short"),
    pytest.param(lambda asked: 100_000_000 * 100, id="one crore"),
    pytest.param(lambda asked: asked + 1, id="one paisa over"),
])
async def test_a_confirm_whose_payment_is_not_what_on_init_asked_is_refused_with_nothing_held(paid):
    w = World()
    asked = await _initiated(w, energy_wh=100)
    assert asked == 212  # 0.1 kWh at Rs 18 + 18 % GST
    err = await w.refused(_confirm(w, paid(asked), energy_wh=100), "40004")
    assert err["paths"] == "message.order.payments[0].params.amount"
    assert m.money_text(asked) in err["message"]
    assert w.charger.connectors()[0].status == "AVAILABLE" and w.charger.calls == []
    # the buyer may still pay what was asked
    await w.ok(_confirm(w, asked, energy_wh=100))
    assert w.charger.connectors()[0].status == "RESERVED"


async def test_a_refused_payment_leaves_no_order_in_the_store(tmp_path):
    c = Charger(tmp_path)
    try:
        asked = await _initiated(c, energy_wh=1000)
        await c.refused(_confirm(c, asked - 1, energy_wh=1000), "40004")
        assert c.stored() == {} and c.bpp.transactions()[c.buyer.transaction_id]["stage"] == "initiated"
    finally:
        await c.bpp.close()
        c.close()


async def test_a_budget_confirmed_as_paid_far_above_it_does_not_raise_the_money_limit():
    w = World()
    asked = await _initiated(w, budget_paise=1000)
    assert asked <= 1000
    await w.refused(_confirm(w, 100_000, budget_paise=1000), "40004")
    on_confirm = await w.ok(_confirm(w, asked, budget_paise=1000))
    order_id = on_confirm["message"]["order"]["id"]
    await w.ok(m.update(w.buyer.ctx("update"), order_id=order_id, command=m.START_CHARGING))
    assert w.charger.start_kwargs["money_limit_paise"] == asked
    assert w.charger.start_kwargs["paid_paise"] == asked


async def test_the_receipt_states_as_paid_what_the_charger_asked_and_the_buyer_confirmed():
    w = World()
    on_init, on_confirm, order_id = await w.contract(energy_wh=4000)
    asked = m.parse_money(on_init["message"]["order"]["payments"][0]["params"]["amount"], "amount")
    assert on_confirm["message"]["order"]["payments"][0]["params"]["amount"] == m.money_text(asked)
    await w.ok(m.update(w.buyer.ctx("update"), order_id=order_id, command=m.START_CHARGING))
    sid = w.bpp.transactions()[w.buyer.transaction_id]["session_id"]
    w.charger.charge(sid, 1500)
    await w.ok(m.update(w.buyer.ctx("update"), order_id=order_id, command=m.END_CHARGING))
    final = [json.loads(o.body) for o in w.bpp.pending()][-1]
    receipt = m.signed_documents(final["message"]["order"], m.TAG_RECEIPT)[0]
    assert receipt["paid_paise"] == asked == 8496
    assert receipt["refund_due_paise"] == asked - receipt["cost_paise"]["total"]


async def test_a_confirm_in_another_currency_than_the_quote_is_refused():
    w = World()
    asked = await _initiated(w, energy_wh=1000)
    doc = _confirm(w, asked, energy_wh=1000)
    doc["message"]["order"]["payments"][0]["params"]["currency"] = "USD"
    await w.refused(doc, "30000")


@pytest.mark.parametrize("quoted_start_s, confirmed_start_s", [
    pytest.param(None, NOW_S + 7200, id="now, confirmed as a booking"),
    pytest.param(NOW_S + 7200, NOW_S + 10_800, id="booking, confirmed for another hour"),
    pytest.param(NOW_S + 7200, NOW_S, id="booking, confirmed for now"),
])
async def test_a_confirm_for_another_start_than_the_quote_is_refused(quoted_start_s, confirmed_start_s):
    w = World()
    asked = await _initiated(w, energy_wh=1000, start_s=quoted_start_s)
    await w.refused(_confirm(w, asked, energy_wh=1000, start_s=confirmed_start_s), "40003")
    # the same start again (or none, which means the quote's) is the contract quoted
    await w.ok(_confirm(w, asked, energy_wh=1000, start_s=quoted_start_s))


async def test_an_init_for_another_start_than_the_quote_is_refused():
    w = World()
    b = w.buyer
    await w.ok(m.select(b.ctx("select"), provider_id=PROVIDER, energy_wh=1000, start_s=NOW_S + 7200))
    await w.refused(m.init(b.ctx("init"), provider_id=PROVIDER, energy_wh=1000, start_s=NOW_S + 3600), "40003")
