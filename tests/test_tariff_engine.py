"""The pricing engine: exact money, step_size, every restriction, bounds, local time, live pricing."""
from datetime import datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.core.errors import AgentError
from agent.core.tariff import (
    LivePricer,
    Period,
    Tariff,
    TariffError,
    capped,
    civil_from_days,
    days_from_civil,
    local_parts,
    parse_fixed,
    price_periods,
)
from agent.tariff_file import zone_offset
from tests.tariff_builders import IST, MON, comp, energy, epoch, priced, tariff

# --- money ------------------------------------------------------------------------------------

def test_parse_fixed_is_exact_and_strict():
    assert parse_fixed(0.1, 4, "x") == 1000
    assert parse_fixed("18.50", 4, "x") == 185000
    assert parse_fixed(18, 4, "x") == 180000
    assert parse_fixed(1e-4, 4, "x") == 1
    with pytest.raises(TariffError, match="more than 4 decimals"):
        parse_fixed(0.00001, 4, "elements[0].price")
    with pytest.raises(TariffError, match="must not be negative"):
        parse_fixed(-1, 4, "x")
    with pytest.raises(TariffError, match="not a decimal"):
        parse_fixed("1.2.3", 4, "x")


def test_energy_cost_is_exact_then_rounded_once():
    # 18.0001/kWh x 1 Wh = 0.0180001 -> per-Wh rounding would lose it, the engine keeps it:
    # 1,001 Wh x 18.0001 = 18.0181001 -> 18.0181 excl; VAT 18 % of the exact amount = 3.24325802
    # -> 3.2433; incl 21.2614 -> paid 21.26
    cost = price_periods(tariff(energy("18.0001")), [(MON, {"energy_wh": 1001, "time_s": 600})])
    assert (cost.energy_excl_u, cost.energy_vat_u, cost.total_incl_u, cost.total_paise) == \
        (180181, 32433, 212614, 2126)
    assert cost.paid_text() == "21.26"


def test_half_up_to_paise():
    # 1 Wh at 5.00/kWh = 0.005 -> 0.0050 u-exact; +0 % VAT; paid rounds half up to 0.01
    cost = price_periods(tariff(energy(5, vat=0)), [(MON, {"energy_wh": 1, "time_s": 1})])
    assert (cost.total_incl_u, cost.total_paise) == (50, 1)


def test_minor_units_follow_iso_4217():
    jpy = price_periods(tariff(energy(30, vat=10), currency="JPY"),
                        [(MON, {"energy_wh": 1500, "time_s": 60})])
    assert (jpy.total_incl_u, jpy.total_paise) == (495000, 50)  # 49.5 yen -> 50
    kwd = price_periods(tariff(energy("0.0125", vat=0), currency="KWD"),
                        [(MON, {"energy_wh": 1000, "time_s": 60})])
    assert kwd.total_paise == 13  # 0.0125 KWD -> 0.013 (fils)


# --- step_size --------------------------------------------------------------------------------

@pytest.mark.parametrize("step,billed", [(1, 116), (25, 125), (500, 500)])
def test_energy_step_size_rounds_up(step, billed):
    # The spec's note: 115.x Wh is billed as 116 Wh per 1 Wh, 125 per 25, 500 per 500.
    cost = price_periods(tariff(energy(10, step=step)), [(MON, {"energy_wh": 116, "time_s": 60})])
    assert cost.billed_energy_wh == billed
    assert cost.energy_excl_u == billed * 100  # 10/kWh = 100 u per Wh


def test_step_size_applies_to_the_whole_dimension_not_each_period():
    periods = [(MON + i * 60, {"time_s": 60}) for i in range(7)]  # 7 min in 7 periods
    cost = price_periods(tariff(comp("TIME", 60, step=300)), periods)
    assert cost.billed_time_s == 600
    assert cost.time_excl_u == 10 * 10000


def test_switch_to_element_without_the_dimension_rounds_there():
    # Parking 10:00-10:30 billed per 15 min at 4/h, free from 10:30: 20 min idle before 10:30
    # (rounded to 30 at the switch) + 20 min after (free) -> 2.00
    t = tariff(comp("PARKING_TIME", 4, step=900, vat=0, start_time="10:00", end_time="10:30"),
               energy(10))
    periods = [(MON, {"energy_wh": 1000, "time_s": 600}),
               (MON + 600, {"parking_s": 1200}),
               (MON + 1800, {"parking_s": 1200})]
    cost = price_periods(t, periods, IST)
    assert (cost.billed_parking_s, cost.parking_excl_u) == (1800, 20000)


def test_rounding_credit_is_used_by_later_runs():
    # 10:25-10:30 5 min idle, rounded to 15 at the switch to free; idle again from 11:00 under
    # the same element (new day time window) uses the 10 billed-but-unused minutes first.
    t = tariff(comp("PARKING_TIME", 6, step=900, vat=0, start_time="10:00", end_time="10:30"),
               comp("PARKING_TIME", 6, step=900, vat=0, start_time="11:00", end_time="12:00"),
               energy(10))
    periods = [(MON + 1500, {"parking_s": 300}), (MON + 1800, {"energy_wh": 500, "time_s": 1800}),
               (MON + 3600, {"parking_s": 600})]
    cost = price_periods(t, periods, IST)
    assert cost.billed_parking_s == 900  # 5 + 10 minutes, all inside the first 15-min block


# --- parking after charging: all or nothing within TIME's rounding ----------------------------

def time_and_parking(time_step, parking_step, time_price=6, parking_price=12):
    """One element: TIME at 6/h, PARKING_TIME at 12/h (0.1 and 0.2 per minute), no VAT."""
    comps = [{"type": "PARKING_TIME", "price": parking_price, "vat": 0, "step_size": parking_step}]
    if time_step is not None:
        comps.insert(0, {"type": "TIME", "price": time_price, "vat": 0, "step_size": time_step})
    return tariff({"price_components": comps})


def charge_then_park(charge_s, park_s):
    return [(MON, {"energy_wh": 1000, "time_s": charge_s}), (MON + charge_s, {"parking_s": park_s})]


def test_parking_within_the_rounded_charging_time_is_free():
    # 10 min charged, billed per 15 min: the 5 extra minutes cover a run of up to 5 min parked.
    cost = price_periods(time_and_parking(900, 300), charge_then_park(600, 240))
    assert (cost.billed_time_s, cost.time_excl_u) == (900, 15000)  # 15 min x 0.1
    assert (cost.parking_s, cost.billed_parking_s, cost.parking_excl_u) == (240, 0, 0)
    exact = price_periods(time_and_parking(900, 300), charge_then_park(600, 300))
    assert (exact.parking_s, exact.billed_parking_s, exact.parking_excl_u) == (300, 0, 0)


def test_parking_beyond_the_cover_is_billed_whole():
    # One second beyond the 5 min cover: all 5 min 1 s are billed, per 5 min -> 10 min x 0.2.
    edge = price_periods(time_and_parking(900, 300), charge_then_park(600, 301))
    assert (edge.billed_time_s, edge.time_excl_u) == (900, 15000)
    assert (edge.parking_s, edge.billed_parking_s, edge.parking_excl_u) == (301, 600, 20000)
    # 11 min parked: all 11 billed, per 5 min -> 15 min x 0.2 = 3.00; nothing is covered
    cost = price_periods(time_and_parking(900, 300), charge_then_park(600, 660))
    assert (cost.billed_parking_s, cost.parking_excl_u, cost.total_excl_u) == (900, 30000, 45000)


def test_no_time_component_gives_no_cover():
    cost = price_periods(time_and_parking(None, 300), charge_then_park(600, 240))
    assert (cost.time_excl_u, cost.billed_parking_s, cost.parking_excl_u) == (0, 300, 10000)


def test_time_billed_per_second_gives_no_cover():
    cost = price_periods(time_and_parking(1, 300), charge_then_park(600, 1))
    assert (cost.billed_time_s, cost.time_excl_u) == (600, 10000)
    assert (cost.billed_parking_s, cost.parking_excl_u) == (300, 10000)


def test_parking_before_any_charging_is_not_covered():
    periods = [(MON, {"parking_s": 240}), (MON + 240, {"energy_wh": 1000, "time_s": 600})]
    cost = price_periods(time_and_parking(900, 300), periods)
    assert (cost.billed_time_s, cost.billed_parking_s, cost.parking_excl_u) == (900, 300, 10000)


def test_a_run_that_charging_follows_is_billed_and_only_the_last_run_gets_the_cover():
    t = time_and_parking(900, 60)
    # 5 min charged, park 4: charging follows, so all 4 are billed; charge 4 (9 charged, 15
    # billed: 6 extra) -> 6 min of cover for the last run; park 3: fits, free.
    periods = [(MON, {"energy_wh": 500, "time_s": 300}), (MON + 300, {"parking_s": 240}),
               (MON + 540, {"energy_wh": 400, "time_s": 240}), (MON + 780, {"parking_s": 180})]
    cost = price_periods(t, periods)
    assert (cost.billed_time_s, cost.billed_parking_s, cost.parking_s) == (900, 240, 420)
    # the same with 2 min parked at the end: fits, only the first run is billed
    periods[-1] = (MON + 780, {"parking_s": 120})
    assert price_periods(t, periods).billed_parking_s == 240
    # the same with 7 min parked at the end: exceeds the 6 min of cover, billed whole too
    periods[-1] = (MON + 780, {"parking_s": 420})
    assert price_periods(t, periods).billed_parking_s == 660
    # 5 min charged, park 9 (within 10 min of cover while it lasted), charge 4: the 9 minutes
    # are billed when charging resumes; TIME is still billed on charging time only (9 -> 15).
    periods = [(MON, {"energy_wh": 500, "time_s": 300}), (MON + 300, {"parking_s": 540}),
               (MON + 840, {"energy_wh": 400, "time_s": 240})]
    cost = price_periods(t, periods)
    assert (cost.billed_time_s, cost.billed_parking_s) == (900, 540)


def test_a_run_billed_whole_does_not_spend_the_next_runs_cover():
    t = time_and_parking(900, 60)
    # 5 min charged (10 cover), park 11: billed whole; charge 4 (9 charged -> 6 cover, none
    # spent), park 6: free.
    periods = [(MON, {"energy_wh": 500, "time_s": 300}), (MON + 300, {"parking_s": 660}),
               (MON + 960, {"energy_wh": 400, "time_s": 240}), (MON + 1200, {"parking_s": 360})]
    cost = price_periods(t, periods)
    assert (cost.billed_time_s, cost.billed_parking_s, cost.parking_s) == (900, 660, 1020)


def test_splitting_periods_changes_nothing():
    t = time_and_parking(900, 300)
    for park_s in (240, 300, 301, 660):
        whole = price_periods(t, charge_then_park(600, park_s))
        for piece_s in (1, 60, 299, 300, 301):
            split = [(MON, {"energy_wh": 400, "time_s": 240}),
                     (MON + 240, {"energy_wh": 600, "time_s": 360})]
            at = 0
            while at < park_s:
                step = min(piece_s, park_s - at)
                split.append((MON + 600 + at, {"parking_s": step}))
                at += step
            assert price_periods(t, split) == whole, (park_s, piece_s)


def test_cover_from_rounding_at_a_switch_to_free_charging_time():
    # TIME priced per 30 min only before 10:30; charging 10:20-10:30 is rounded up at the switch
    # (20 min of cover), so 15 min parked at 10:30 cost nothing, 21 min are all billed.
    t = tariff({"price_components": [{"type": "TIME", "price": 6, "vat": 0, "step_size": 1800}],
                "restrictions": {"start_time": "10:00", "end_time": "10:30"}},
               comp("PARKING_TIME", 12, step=300, vat=0))
    periods = [(MON + 1200, {"energy_wh": 1000, "time_s": 600}), (MON + 1800, {"parking_s": 900})]
    cost = price_periods(t, periods, IST)
    assert (cost.billed_time_s, cost.billed_parking_s, cost.parking_excl_u) == (1800, 0, 0)
    periods[-1] = (MON + 1800, {"parking_s": 1260})
    assert price_periods(t, periods, IST).billed_parking_s == 1500


def test_held_back_parking_is_priced_where_the_cover_ran_out():
    # Parking is priced from 06:00 only. Charging 05:40-05:50 per 30 min gives 20 min of cover;
    # parked 05:50-06:00 (free window) and on to 06:15: the run of 25 min exceeds the cover, so
    # all of it is priced at the day rate, the 10 min before 06:00 included (the documented
    # approximation), per 5 min -> 25 min x 0.2.
    t = tariff({"price_components": [{"type": "TIME", "price": 6, "vat": 0, "step_size": 1800}]},
               comp("PARKING_TIME", 12, step=300, vat=0, start_time="06:00", end_time="23:00"))
    dawn = MON - 4 * 3600 - 20 * 60  # 05:40 IST
    periods = [(dawn, {"energy_wh": 1000, "time_s": 600}), (dawn + 600, {"parking_s": 600}),
               (dawn + 1200, {"parking_s": 900})]
    cost = price_periods(t, periods, IST)
    assert (cost.billed_time_s, cost.parking_s) == (1800, 1500)
    assert (cost.billed_parking_s, cost.parking_excl_u) == (1500, 50000)


def test_live_breakdown_during_a_run_equals_batch():
    t = time_and_parking(900, 300)
    live = LivePricer(t)
    live.reading(MON, 0, charging=True)
    live.reading(MON + 600, 1000, charging=False)  # 10 min charged, parked from here
    seen = []
    for idle_s in (0, 120, 300, 301, 600, 601):
        cost = live.breakdown(MON + 600 + idle_s)
        seen.append((idle_s, cost.billed_parking_s, cost.parking_excl_u))
        assert cost == price_periods(t, charge_then_park(600, idle_s))
    assert seen == [(0, 0, 0), (120, 0, 0), (300, 0, 0), (301, 600, 20000), (600, 600, 20000),
                    (601, 900, 30000)]
    # readings: 4 min parked (fits, held back), then 2 min more (exceeds: all 6 billed)
    live.reading(MON + 840, 1000, charging=False)
    assert live.breakdown() == price_periods(t, charge_then_park(600, 240))
    assert live.breakdown(MON + 900) == price_periods(t, charge_then_park(600, 300))
    assert live.breakdown(MON + 960) == price_periods(t, charge_then_park(600, 360))
    assert live.breakdown().billed_parking_s == 0  # looking ahead left the session as it was
    live.reading(MON + 960, 1000, charging=False)
    assert live.breakdown() == price_periods(t, charge_then_park(600, 360))
    assert live.breakdown().billed_parking_s == 600
    live.reading(MON + 1260, 1000, charging=False)
    assert live.breakdown() == price_periods(t, charge_then_park(600, 660))
    assert live.breakdown().billed_parking_s == 900


# --- bounds -----------------------------------------------------------------------------------

def test_min_price_without_incl_bound_keeps_vat_share():
    t = tariff(energy(10), min_price={"excl_vat": 30})
    cost = price_periods(t, [(MON, {"energy_wh": 1000})])
    assert (cost.total_excl_u, cost.total_incl_u, cost.min_price_applied) == (300000, 354000, True)
    empty = price_periods(t, [(MON, {})])
    assert (empty.total_excl_u, empty.total_incl_u) == (300000, 354000)


def test_max_price_clamps_both_totals_independently():
    t = tariff(energy(10), max_price={"excl_vat": 100, "incl_vat": 110})
    cost = price_periods(t, [(MON, {"energy_wh": 20000})])
    assert (cost.total_excl_u, cost.total_incl_u, cost.max_price_applied) == \
        (1000000, 1100000, True)
    assert cost.energy_excl_u == 2000000  # the dimension figure stays as consumed


# --- local time and dates ---------------------------------------------------------------------

def test_civil_day_numbers_round_trip():
    for days in (-719468, -1, 0, 1, 20454, 2932896):
        assert days_from_civil(*civil_from_days(days)) == days
    assert days_from_civil(2026, 1, 5) == (datetime(2026, 1, 5) - datetime(1970, 1, 1)).days
    assert local_parts(MON, IST) == (36000, days_from_civil(2026, 1, 5), 0)


def test_dst_zone_at_the_edge():
    # Berlin moves from 02:00 CET to 03:00 CEST at 01:00 UTC on 29 March 2026.
    berlin = zone_offset("Europe/Berlin")
    t = tariff(energy(5, start_time="03:00", end_time="04:00"), energy(10))
    switch = epoch(2026, 3, 29, 1, 0)
    assert priced(t, [(switch, {"energy_wh": 1000})], offset=berlin) == 50000
    assert priced(t, [(switch - 1, {"energy_wh": 1000})], offset=berlin) == 100000  # 01:59:59 CET
    assert priced(t, [(switch, {"energy_wh": 1000})], offset=3600) == 100000  # 02:00 "CET"
    # a session across the change: one period each side, the function gives each its offset
    periods = [(switch - 1800, {"energy_wh": 1000}), (switch, {"energy_wh": 1000})]
    assert priced(t, periods, offset=berlin) == 150000


# --- validation -------------------------------------------------------------------------------

@pytest.mark.parametrize("data,field,allowed", [
    ({"elements": []}, "elements", None),
    ({"currency": "rupees", "elements": [energy(1)]}, "currency", "three capital letters"),
    ({"elements": [{"price_components": [{"type": "KWH", "price": 1, "step_size": 1}]}]},
     "elements[0].price_components[0].type", "ENERGY, FLAT, PARKING_TIME, TIME"),
    ({"elements": [energy("0.123456")]}, "elements[0].price_components[0].price", "at most 4"),
    ({"elements": [energy(1, start_time="24:00")]}, "elements[0].restrictions.start_time",
     "00:00 to 23:59"),
    ({"elements": [energy(1, day_of_week=["FUNDAY"])]},
     "elements[0].restrictions.day_of_week[0]", "MONDAY"),
    ({"elements": [energy(1, start_date="2026-02-30")]}, "elements[0].restrictions.start_date",
     None),
    ({"elements": [energy(1, colour="red")]}, "elements[0].restrictions.colour", "start_time"),
    ({"elements": [energy(1, step=-1)]}, "elements[0].price_components[0].step_size", None),
    ({"elements": [energy(1, vat=120)]}, "elements[0].price_components[0].vat", "0 to 100"),
    ({"elements": [energy(1)], "min_price": 5}, "min_price", None),
    ({"elements": [energy(1, reservation="RESERVATION")]},
     "elements[0].price_components[0].type", "FLAT, TIME"),
    ({"elements": [comp("PARKING_TIME", 1, reservation="RESERVATION_EXPIRES")]},
     "elements[0].price_components[0].type", "FLAT, TIME"),
    ({"elements": [comp("TIME", 1, reservation="LATER")]}, "elements[0].restrictions.reservation",
     "RESERVATION, RESERVATION_EXPIRES"),
])
def test_invalid_tariffs_name_the_field(data, field, allowed):
    with pytest.raises(TariffError) as info:
        Tariff(data)
    assert info.value.field == field
    assert isinstance(info.value, AgentError) and info.value.code == "tariff-invalid"
    if allowed:
        assert allowed in str(info.value)


def test_bad_periods_are_rejected():
    t = tariff(energy(1))
    with pytest.raises(TariffError, match="periods\\[1\\].start_s: periods must be in time order"):
        price_periods(t, [(MON, {"energy_wh": 1}), (MON - 1, {"energy_wh": 1})])
    with pytest.raises(TariffError, match="periods\\[0\\].energy_wh: must not be negative"):
        price_periods(t, [(MON, {"energy_wh": -5})])
    with pytest.raises(TariffError, match="periods\\[0\\].volts: unknown dimension"):
        price_periods(t, [(MON, {"volts": 230})])


def test_live_pricer_rejects_backwards_meter():
    live = LivePricer(tariff(energy(1)))
    live.reading(MON, 1000)
    with pytest.raises(TariffError, match="went backwards"):
        live.reading(MON + 10, 999)
    with pytest.raises(TariffError, match="older"):
        live.reading(MON - 10, 1000)
    assert live.breakdown().energy_wh == 0  # nothing was accounted


# --- live pricing equals batch pricing --------------------------------------------------------

LIVE_TARIFFS = [
    tariff(comp("FLAT", 5), energy(22.5, start_time="18:00", end_time="22:00"),
           energy(12, step=100, start_time="22:00", end_time="06:00"), energy(16),
           comp("PARKING_TIME", 60, step=300), min_price={"excl_vat": 20}),
    tariff(energy(0, max_kwh=1), energy("19.99", max_power=3300), energy(21, min_current=16),
           comp("TIME", 30, step=600, max_duration=1800), comp("TIME", 45, step=60),
           comp("PARKING_TIME", 0, max_duration=3600), comp("PARKING_TIME", 100, step=900),
           max_price={"excl_vat": 500, "incl_vat": 590}),
    # charging time rounded per 15 min or per 30 min by time of day covers parking; parking is
    # priced per 5 min and free at night
    tariff(comp("TIME", 60, step=1800, start_time="06:00", end_time="18:00"),
           comp("TIME", 90, step=900, start_time="18:00", end_time="23:00"),
           comp("PARKING_TIME", 120, step=300, start_time="06:00", end_time="23:00"), energy(15)),
]

reading = st.tuples(st.integers(0, 1800), st.integers(0, 400), st.booleans(),
                    st.integers(0, 22000), st.integers(0, 32000))


@settings(max_examples=60, deadline=None)
@given(which=st.integers(0, len(LIVE_TARIFFS) - 1), start=st.integers(MON - 86400, MON + 86400),
       readings=st.lists(reading, min_size=1, max_size=40), tail=st.integers(0, 4000))
def test_live_equals_batch(which, start, readings, tail):
    t = LIVE_TARIFFS[which]
    live = LivePricer(t, utc_offset_s=IST)
    now, meter = start, 50000
    samples = []
    for dt, de, charging, power_w, current_ma in readings:
        now += dt
        meter += de
        samples.append((now, meter, charging, power_w, current_ma))
        live.reading(now, meter, power_w=power_w, current_ma=current_ma, charging=charging)
    periods = []
    for (t0, e0, ch, p, c), (t1, e1, _, p1, _) in zip(samples, samples[1:], strict=False):
        ch = ch or (e1 > e0 and p1 > 1)  # energy delivered while drawing power is charging time
        periods.append(Period(t0, e1 - e0, t1 - t0 if ch else 0, 0 if ch else t1 - t0,
                              c, c, p, p))
    assert live.breakdown() == price_periods(t, periods, IST, start_s=samples[0][0])
    last = samples[-1]
    if tail:
        periods.append(Period(last[0], 0, tail if last[2] else 0, 0 if last[2] else tail,
                              last[4], last[4], last[3], last[3]))
    assert live.breakdown(last[0] + tail) == price_periods(t, periods, IST,
                                                           start_s=samples[0][0])
    merged = live.periods()
    assert sum(p.energy_wh for p in merged) == samples[-1][1] - samples[0][1]
    assert sum(p.time_s + p.parking_s for p in merged) == samples[-1][0] - samples[0][0]


def test_live_pricer_merges_periods_when_nothing_changes():
    t = tariff(energy(20, start_time="18:00", end_time="22:00"), energy(10))
    start = epoch(2026, 1, 5, 17, 58, offset_s=IST)
    live = LivePricer(t, utc_offset_s=IST)
    for i in range(9):  # every 30 s, 17:58:00 .. 18:02:00
        live.reading(start + 30 * i, 100 * i, power_w=12000, current_ma=52000)
    periods = live.periods()
    assert [p.start_s - start for p in periods] == [0, 120]
    assert [p.energy_wh for p in periods] == [400, 400]
    # 400 Wh at 10 + 400 Wh at 20 = 12.00
    assert live.breakdown().energy_excl_u == 120000


# --- money limits -------------------------------------------------------------------------------

def test_a_money_limit_caps_what_is_collected_and_keeps_the_tax_share():
    cost = price_periods(tariff(energy(18)), [Period(MON, 151, 60, 0)], IST)
    assert cost.total_paise == 321  # 151 Wh at Rs 18/kWh + 18 % GST
    held = capped(cost, 319)
    assert held.total_paise == 319 and held.limit_applied and held.uncapped_paise == 321
    assert held.total_incl_u == 31900  # u: 1/10,000 of a rupee
    assert held.total_excl_u + held.total_vat_u == held.total_incl_u
    # 18 % GST on what is collected, to the u.
    assert abs(held.total_vat_u * 100 - held.total_excl_u * 18) <= 100
    # The dimension figures stay the tariff's; the original is untouched.
    assert held.energy_excl_u == cost.energy_excl_u and cost.total_paise == 321
    assert not cost.limit_applied


def test_a_money_limit_not_reached_changes_nothing():
    cost = price_periods(tariff(energy(18)), [Period(MON, 100, 60, 0)], IST)
    assert capped(cost, 1000) is cost and capped(cost, None) is cost
    assert capped(cost, cost.total_paise) is cost


@pytest.mark.parametrize("bad", [-1, 1.5, True, "100"])
def test_a_bad_money_limit_is_named(bad):
    cost = price_periods(tariff(energy(18)), [Period(MON, 1000, 60, 0)], IST)
    with pytest.raises(TariffError, match="money_limit"):
        capped(cost, bad)
