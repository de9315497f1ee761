"""The pricing engine's restrictions: time of day and week, dates, energy, current, power,
duration, reservations, and which element prices a dimension."""
import pytest

from agent.core.tariff import Period, SessionPricer, TariffError, price_periods
from tests.tariff_builders import IST, MON, comp, energy, epoch, priced, tariff

# --- restrictions -----------------------------------------------------------------------------


def test_time_of_day_with_ist_offset():
    t = tariff(energy(20, start_time="18:00", end_time="22:00"), energy(10))
    before = epoch(2026, 1, 5, 17, 59, offset_s=IST)
    at = epoch(2026, 1, 5, 18, 0, offset_s=IST)
    end = epoch(2026, 1, 5, 22, 0, offset_s=IST)
    assert priced(t, [(before, {"energy_wh": 1000})]) == 100000
    assert priced(t, [(at, {"energy_wh": 1000})]) == 200000
    assert priced(t, [(end - 1, {"energy_wh": 1000})]) == 200000
    assert priced(t, [(end, {"energy_wh": 1000})]) == 100000
    # the same instant read as UTC is 12:30, off-peak
    assert priced(t, [(at, {"energy_wh": 1000})], offset=0) == 100000


def test_time_window_wrapping_midnight_and_end_at_midnight():
    night = tariff(energy(5, start_time="22:00", end_time="06:00"), energy(10))
    assert priced(night, [(epoch(2026, 1, 5, 23, 30, offset_s=IST), {"energy_wh": 1000})]) == 50000
    assert priced(night, [(epoch(2026, 1, 6, 5, 59, offset_s=IST), {"energy_wh": 1000})]) == 50000
    assert priced(night, [(epoch(2026, 1, 6, 6, 0, offset_s=IST), {"energy_wh": 1000})]) == 100000
    evening = tariff(energy(5, start_time="20:00", end_time="00:00"), energy(10))
    assert priced(evening, [(epoch(2026, 1, 5, 23, 59, offset_s=IST), {"energy_wh": 1000})]) \
        == 50000
    assert priced(evening, [(epoch(2026, 1, 6, 0, 0, offset_s=IST), {"energy_wh": 1000})]) \
        == 100000


def test_day_of_week_at_local_midnight():
    t = tariff(energy(5, day_of_week=["SATURDAY", "SUNDAY"]), energy(10))
    sat = epoch(2026, 1, 10, 0, 0, offset_s=IST)  # Saturday 00:00 IST = Friday 18:30 UTC
    assert priced(t, [(sat - 1, {"energy_wh": 1000})]) == 100000
    assert priced(t, [(sat, {"energy_wh": 1000})]) == 50000
    assert priced(t, [(sat, {"energy_wh": 1000})], offset=0) == 100000  # still Friday in UTC
    mon = epoch(2026, 1, 12, 0, 0, offset_s=IST)
    assert priced(t, [(mon - 1, {"energy_wh": 1000})]) == 50000
    assert priced(t, [(mon, {"energy_wh": 1000})]) == 100000


def test_dates_start_inclusive_end_exclusive():
    t = tariff(energy(5, start_date="2026-01-10", end_date="2026-01-12"), energy(10))
    assert priced(t, [(epoch(2026, 1, 9, 23, 59, offset_s=IST), {"energy_wh": 1000})]) == 100000
    assert priced(t, [(epoch(2026, 1, 10, 0, 0, offset_s=IST), {"energy_wh": 1000})]) == 50000
    assert priced(t, [(epoch(2026, 1, 11, 23, 59, offset_s=IST), {"energy_wh": 1000})]) == 50000
    assert priced(t, [(epoch(2026, 1, 12, 0, 0, offset_s=IST), {"energy_wh": 1000})]) == 100000


def test_kwh_restrictions_use_energy_before_the_period():
    t = tariff(energy(0, max_kwh=1), energy(10, min_kwh=1, max_kwh=5), energy(20))
    periods = [(MON, {"energy_wh": 1000}), (MON + 60, {"energy_wh": 4000}),
               (MON + 120, {"energy_wh": 1000})]
    assert priced(t, periods) == 0 + 40 * 10000 + 20 * 10000
    # one big period is priced by the state at its start
    assert priced(t, [(MON, {"energy_wh": 6000})]) == 0


def test_current_restrictions_use_period_min_and_max():
    t = tariff(energy(5, min_current=32), energy(7, max_current=16), energy(10))
    def one(**dims):
        dims["energy_wh"] = 1000
        return priced(t, [(MON, dims)])
    assert one(min_current_ma=32000, max_current_ma=40000) == 50000
    assert one(min_current_ma=31999, max_current_ma=40000) == 100000
    assert one(current_ma=15999) == 70000
    assert one(current_ma=16000) == 100000
    assert one() == 100000  # no measurement: no current restriction matches


def test_power_restrictions():
    t = tariff(energy(2, max_power=16), energy(3, min_power=16, max_power=32), energy(5))
    for power_w, price in ((6000, 2), (15999, 2), (16000, 3), (31999, 3), (32000, 5), (48000, 5)):
        assert priced(t, [(MON, {"energy_wh": 1000, "power_w": power_w})]) == price * 10000


def test_duration_restrictions_count_charging_and_parking():
    t = tariff(comp("PARKING_TIME", 0, max_duration=3600), comp("PARKING_TIME", 6, min_duration=3600),
               energy(10))
    periods = [(MON, {"energy_wh": 1000, "time_s": 1800}), (MON + 1800, {"parking_s": 1800}),
               (MON + 3600, {"parking_s": 1800})]
    cost = price_periods(t, periods, IST)
    assert cost.parking_excl_u == 30000  # only the idle half hour after the first hour


def test_reservation_elements_and_session_elements_never_mix():
    t = tariff(comp("TIME", 100, reservation="RESERVATION"), comp("TIME", 1))
    cost = price_periods(t, [(MON, {"time_s": 3600})])
    assert (cost.time_excl_u, cost.reservation_time_excl_u) == (10000, 0)
    # charging TIME does not price reservation time, a reservation TIME not charging time
    cost = price_periods(t, [(MON, {"reservation_s": 1800}), (MON + 1800, {"time_s": 3600})])
    assert (cost.reservation_time_excl_u, cost.time_excl_u) == (500000, 10000)
    free = price_periods(tariff(comp("TIME", 1)), [(MON, {"reservation_s": 1800})])
    assert (free.total_excl_u, free.reservation_s, free.reservation_expired) == (0, 1800, True)


def test_reservation_time_follows_restrictions_and_step_size_switching():
    # reserved from 17:50 for 26:40 min: 10 min at 6/h exactly (the next element also prices
    # TIME), then 16:40 min at 12/h; the last element bills per 15 min, so 30 min in total,
    # 20 of them at 12/h
    t = tariff(comp("TIME", 6, 900, reservation="RESERVATION", end_time="18:00"),
               comp("TIME", 12, 900, reservation="RESERVATION"), energy(10))
    start = epoch(2026, 1, 5, 17, 50, offset_s=IST)
    cost = price_periods(t, [(start, {"reservation_s": 600}), (start + 600, {"reservation_s": 1000}),
                             (start + 1600, {"energy_wh": 1000, "time_s": 600})], IST)
    assert cost.reservation_time_excl_u == 10000 + 40000
    assert cost.billed_reservation_s == 1800 and cost.reservation_expired is False


def test_reservation_expiry_inferred_or_told():
    t = tariff({"price_components": [{"type": "FLAT", "price": 5, "vat": 18}],
                "restrictions": {"reservation": "RESERVATION_EXPIRES"}},
               {"price_components": [{"type": "FLAT", "price": 1, "vat": 18},
                                     {"type": "TIME", "price": 6, "vat": 18, "step_size": 1}],
                "restrictions": {"reservation": "RESERVATION"}},
               energy(10))
    alone = [(MON, {"reservation_s": 600})]
    used = alone + [(MON + 600, {"energy_wh": 1000})]
    # expired: the expiration fee replaces the reservation fee; time at the RESERVATION rate
    assert price_periods(t, alone).total_excl_u == 50000 + 10000
    assert price_periods(t, alone, reservation_expired=False).total_excl_u == 10000 + 10000
    assert price_periods(t, used).total_excl_u == 10000 + 10000 + 100000
    with pytest.raises(TariffError, match="reservation_expired: a reservation followed by a session"):
        price_periods(t, used, reservation_expired=True)
    with pytest.raises(TariffError, match="reservation_expired: must be True, False or None"):
        price_periods(t, alone, reservation_expired="yes")


def test_reservation_periods_must_come_before_the_session():
    t = tariff(comp("TIME", 6, reservation="RESERVATION"), energy(10))
    with pytest.raises(TariffError, match="periods\\[1\\].reservation_s: reservation time after"):
        price_periods(t, [(MON, {"energy_wh": 1}), (MON + 60, {"reservation_s": 60})])
    with pytest.raises(TariffError, match="periods\\[0\\].reservation_s: reservation time after"):
        price_periods(t, [(MON, {"reservation_s": 60})], start_s=MON)


def test_period_holding_reservation_and_session_starts_the_session_after_it():
    # the start fee depends on the hour: reserved 17:50-18:10, session from 18:10
    t = tariff(comp("FLAT", 9, end_time="18:00"), comp("FLAT", 2), energy(10),
               comp("TIME", 6, reservation="RESERVATION"))
    start = epoch(2026, 1, 5, 17, 50, offset_s=IST)
    one = price_periods(t, [(start, {"reservation_s": 1200, "energy_wh": 1000})], IST)
    two = price_periods(t, [(start, {"reservation_s": 1200}),
                            (start + 1200, {"energy_wh": 1000})], IST)
    assert one == two
    assert (one.flat_excl_u, one.reservation_time_excl_u, one.energy_excl_u) == (20000, 20000, 100000)


def test_incremental_reservation_breakdowns_match_batch():
    t = tariff(comp("TIME", 6, 600, reservation="RESERVATION"),
               comp("TIME", 9, 600, reservation="RESERVATION_EXPIRES"), energy(10))
    periods = [Period(MON, reservation_s=420), Period(MON + 420, reservation_s=420),
               Period(MON + 840, energy_wh=500, time_s=300)]
    pricer = SessionPricer(t, record_periods=True)
    for i, period in enumerate(periods):
        pricer.add(period)
        assert pricer.copy().breakdown() == price_periods(t, periods[:i + 1])
    # 840 s reserved, billed per 10 min -> 20 min at 6/h (used)
    assert pricer.breakdown().reservation_time_excl_u == 20000
    recorded = pricer.periods
    assert [(p.start_s - MON, p.reservation_s, p.energy_wh) for p in recorded] == [
        (0, 840, 0), (840, 0, 500)]


def test_first_matching_element_per_dimension():
    t = tariff({"price_components": [{"type": "ENERGY", "price": 10, "step_size": 1}]},
               {"price_components": [{"type": "ENERGY", "price": 99, "step_size": 1},
                                     {"type": "TIME", "price": 6, "step_size": 1}]})
    cost = price_periods(t, [(MON, {"energy_wh": 1000, "time_s": 3600})])
    assert (cost.energy_excl_u, cost.time_excl_u) == (100000, 60000)
