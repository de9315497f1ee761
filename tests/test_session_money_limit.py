"""A money limit is a promise: what a fixed part of the price already reaches does not stop the
energy that price paid for."""
from __future__ import annotations

import pytest
from test_session import LIMIT_TIMER, Rig, auth

from agent.core.offers import quote_energy
from agent.core.session import AuthGranted, PilotChanged
from agent.core.tariff import Period, Tariff, price_periods

START_S = 1_767_600_000
# Rs 5 start fee, Rs 18/kWh, at least Rs 20 excl. GST, GST 18 %: 20 Wh cost Rs 23.60.
FEE_AND_MINIMUM = Tariff({"currency": "INR", "min_price": {"excl_vat": 20, "incl_vat": 23.6},
                          "elements": [{"price_components": [
                              {"type": "FLAT", "price": 5, "vat": 18, "step_size": 1},
                              {"type": "ENERGY", "price": 18, "vat": 18, "step_size": 1}]}]})


def cost_paise(energy_wh, elapsed_ms, idle_ms):
    charging_s = max(0, (elapsed_ms - idle_ms) // 1000)
    return price_periods(FEE_AND_MINIMUM, [Period(START_S, energy_wh, charging_s, idle_ms // 1000)]).total_paise


def charge(rig, limits, until_ms=60_000):
    rig.reading(0, energy_wh=10_000)
    rig.feed(PilotChanged("C", 0))
    rig.feed(AuthGranted(auth(**limits), 0))
    t = 0
    while rig.session.stop_reason is None and t < until_ms:
        if LIMIT_TIMER in rig.timers and rig.timers[LIMIT_TIMER] <= t + 1000:
            rig.fire(LIMIT_TIMER)
            break
        t += 1000
        rig.reading(t, power_w=3600, current_a=15.6, energy_wh=10_000 + t // 1000)  # 1 Wh a second
    return rig


def test_a_quote_for_20_wh_paid_in_full_delivers_the_20_wh():
    quote = quote_energy(FEE_AND_MINIMUM, 20, START_S, 3600).total_paise
    assert quote == 2360
    rig = charge(Rig(cost=cost_paise), {"energy_limit_wh": 20, "money_limit_paise": quote})
    # 1 Wh a second: the energy limit's timer falls due at 20 s, the 20th Wh
    assert rig.session.stop_reason == "limit_energy"
    assert rig.records("session_stop")[0]["time_ms"] == 20_000


def test_a_budget_equal_to_the_minimum_price_charges_until_the_price_would_exceed_it():
    # Rs 23.60 buys everything the minimum price covers: the start fee and energy up to Rs 15
    # excl. GST, 833 Wh; the session stops before the cost passes the budget, not at 0 Wh.
    rig = charge(Rig(cost=cost_paise), {"money_limit_paise": 2360}, until_ms=2_000_000)
    delivered = rig.session.delivered_wh()
    assert rig.session.stop_reason == "limit_money"
    assert 800 <= delivered <= 834
    assert cost_paise(delivered, delivered * 1000, 0) <= 2360


def test_a_start_fee_above_the_limit_still_stops_at_once():
    rig = charge(Rig(cost=cost_paise), {"money_limit_paise": 500})
    assert rig.session.stop_reason == "limit_money" and rig.session.delivered_wh() == 0


@pytest.mark.asyncio
async def test_a_prepaid_quote_at_a_site_with_a_minimum_price_charges_the_quoted_energy(tmp_path):
    from agent.bootstrap import open_runtime
    from agent.clock import Clock
    from tests.support import sim_config, wait_until

    tariff = tmp_path / "minimum.toml"
    tariff.write_text('[tariff]\nid = "minimum"\ncurrency = "INR"\ngst_percent = 18\nmin_price = 20\n\n'
                      '[[tariff.element]]\nflat = 5\nenergy_per_kwh = 18\n')
    cfg = sim_config(tmp_path, auth="network", tariff=str(tariff))
    async with open_runtime(cfg, clock=Clock(speed=20)) as rt:
        car = rt.board.sim.car
        car.plug_in()
        view = await rt.start_session(source="contract", reference="order-20", energy_limit_wh=20,
                                      money_limit_paise=2360, paid_paise=2360)
        car.request_power()
        await wait_until(lambda: rt.core.stop_reason is not None, what="the session's limit")
        assert rt.core.stop_reason == "limit_energy"
        car.unplug()
        await wait_until(lambda: not rt.journal.session(view.session_id).is_open, what="the session closed")
        rec = rt.journal.session(view.session_id)
        assert rec.stop_wh - rec.start_wh >= 20
        assert rt.session(view.session_id).cost.total_paise == 2360
