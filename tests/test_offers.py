"""Quotes ahead: they must equal what the session will cost, and budgets must invert exactly."""
from datetime import datetime, timezone

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.core.offers import charge_duration_s, energy_for_budget, quote_energy, quote_time, simulate, time_for_budget
from agent.core.tariff import LivePricer, Tariff, TariffError

IST = 19800


def local(y, mo, d, h=0, mi=0):
    return int(datetime(y, mo, d, h, mi, tzinfo=timezone.utc).timestamp()) - IST


def el(kind, price, step=1, **restrictions):
    out = {"price_components": [{"type": kind, "price": price, "vat": 18, "step_size": step}]}
    if restrictions:
        out["restrictions"] = restrictions
    return out


TOD = Tariff({"currency": "INR", "elements": [
    el("ENERGY", 22.5, start_time="18:00", end_time="22:00"),
    el("ENERGY", 12, start_time="22:00", end_time="06:00"),
    el("ENERGY", 16)]})


def test_quote_crosses_time_of_day_boundary():
    # 10 kWh at 7.4 kW from 21:30: 30 min at peak = 3,700 Wh x 22.50 = 83.25;
    # 6,300 Wh at night x 12 = 75.60; 158.85 + 18 % = 187.443 -> 187.44
    cost = quote_energy(TOD, 10000, local(2026, 1, 5, 21, 30), 7400, IST)
    assert (cost.energy_excl_u, cost.total_paise) == (1588500, 18744)
    assert cost.time_s == charge_duration_s(10000, 7400) == 4865


def test_simulated_periods_split_at_boundaries_and_sum_up():
    start = local(2026, 1, 5, 17, 0)
    periods = simulate(TOD, start, 6 * 3600, 7400, IST, park_s=600)
    starts = [p.start_s - start for p in periods]
    assert 3600 in starts and 5 * 3600 in starts  # 18:00 and 22:00
    assert sum(p.energy_wh for p in periods) == 7400 * 6
    assert sum(p.time_s for p in periods) == 6 * 3600
    assert periods[-1].parking_s == 600 and periods[-1].energy_wh == 0


def test_quote_equals_live_session_at_same_power():
    start = local(2026, 1, 5, 17, 50)
    quote = quote_energy(TOD, 3000, start, 7400, IST)
    live = LivePricer(TOD, utc_offset_s=IST)
    for second in range(0, charge_duration_s(3000, 7400) + 1, 10):
        live.reading(start + second, min(3000, 7400 * second // 3600), power_w=7400)
    live.reading(start + charge_duration_s(3000, 7400), 3000, power_w=7400)
    assert live.breakdown().total_incl_u == quote.total_incl_u


def test_energy_thresholds_split_simulation():
    t = Tariff({"currency": "INR", "elements": [el("ENERGY", 0, max_kwh=1), el("ENERGY", 20)]})
    # first kWh free, then 2 kWh x 20 = 40 + 18 % = 47.20
    assert quote_energy(t, 3000, local(2026, 1, 5, 10), 3300, IST).total_paise == 4720


def test_budget_buys_exact_energy():
    start = local(2026, 1, 5, 10)
    # 16/kWh + 18 % = 18.88/kWh; Rs 100 buys 5,296 Wh (99.99 paid); 5,297 Wh costs 100.01
    wh = energy_for_budget(TOD, 10000, start, 7400, IST)
    assert wh == 5296
    assert quote_energy(TOD, wh, start, 7400, IST).total_paise <= 10000
    assert quote_energy(TOD, wh + 1, start, 7400, IST).total_paise > 10000


def test_budget_below_flat_fee_buys_nothing_and_max_price_buys_everything():
    t = Tariff({"currency": "INR", "elements": [{"price_components": [
        {"type": "FLAT", "price": 50, "step_size": 1}, {"type": "ENERGY", "price": 10, "step_size": 1}]}],
        "max_price": {"excl_vat": 100}})
    start = local(2026, 1, 5, 10)
    assert energy_for_budget(t, 4999, start, 7400, IST) is None
    assert energy_for_budget(t, 10000, start, 7400, IST, max_energy_wh=80000) == 80000


def test_time_for_budget():
    t = Tariff({"currency": "INR", "elements": [el("TIME", 60, step=60)]})
    start = local(2026, 1, 5, 10)
    # 60/h per minute blocks = 1.18 per started minute incl. GST; Rs 10 buys 8 minutes
    seconds = time_for_budget(t, 1000, start, 3300, IST)
    assert seconds == 480
    assert quote_time(t, 481, start, 3300, IST).total_paise > 1000


def test_bad_quote_arguments():
    with pytest.raises(TariffError, match="power_w"):
        quote_energy(TOD, 1000, 0, 0)
    with pytest.raises(TariffError, match="budget_paise"):
        energy_for_budget(TOD, -1, 0, 7400)


STEP_TARIFF = Tariff({"currency": "INR", "elements": [
    {"price_components": [{"type": "FLAT", "price": 3, "vat": 18, "step_size": 1},
                          {"type": "TIME", "price": 24, "vat": 18, "step_size": 1800}],
     "restrictions": {"start_time": "00:00", "end_time": "17:00"}},
    {"price_components": [{"type": "TIME", "price": 6, "vat": 18, "step_size": 60},
                          {"type": "ENERGY", "price": "17.25", "vat": 18, "step_size": 100}]},
    el("ENERGY", 9, min_kwh=4)],
    "min_price": {"excl_vat": 10}})


@settings(max_examples=40, deadline=None)
@given(which=st.sampled_from([TOD, STEP_TARIFF]), budget=st.integers(0, 50000),
       power_w=st.integers(1000, 22000), minute=st.integers(0, 7 * 24 * 60))
def test_budget_inverse_is_tight(which, budget, power_w, minute):
    start = local(2026, 1, 5) + minute * 60
    wh = energy_for_budget(which, budget, start, power_w, IST)
    if wh is None:
        assert quote_energy(which, 0, start, power_w, IST).total_paise > budget
        return
    assert quote_energy(which, wh, start, power_w, IST).total_paise <= budget
    assert quote_energy(which, wh + 1, start, power_w, IST).total_paise > budget
