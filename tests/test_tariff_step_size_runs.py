"""OCPI step_size and parking: only the parking that ends a session lies within charging time
that TIME's rounding added; parking that charging follows is rounded up by its own step."""
import json
from pathlib import Path

from agent.core.tariff import LivePricer, Tariff, price_periods

DATA = Path(__file__).parent / "data" / "ocpi_tariffs"
T1655 = 1559580900  # 2019-06-03 16:55 UTC


def step_size_tariff():
    return Tariff(json.loads((DATA / "step_size.tariff.json").read_text()))


def test_parking_between_two_charges_is_rounded_up_to_its_step():
    # 16:55-17:00 charging, 17:00-17:05 parked (PARKING_TIME 1.00/h per 15 min), 17:05-17:07
    # charging: the parking is not the session's last run, so the 15 minutes TIME's rounding
    # bills lie after 17:07, not over it. Parking: 5 min -> 15 min x 1.00/h = 0.25.
    periods = [(T1655, {"energy_wh": 1000, "time_s": 300}), (T1655 + 300, {"parking_s": 300}),
               (T1655 + 600, {"energy_wh": 500, "time_s": 120})]
    cost = price_periods(step_size_tariff(), periods, 0)
    assert (cost.billed_parking_s, cost.parking_excl_u) == (900, 2500)
    # TIME: 0.10 before 17:00 (exact at the switch), 7 min -> 15 min: 10 min x 2.40/h = 0.40
    assert (cost.billed_time_s, cost.time_excl_u, cost.total_excl_u) == (900, 5000, 7500)


def test_parking_that_ends_the_session_within_the_rounding_stays_free():
    # Step_size example #1 unchanged: 10 min charged from 16:55, 2 min parked at the end.
    periods = [(T1655, {"energy_wh": 1000, "time_s": 300}), (T1655 + 300, {"energy_wh": 1000, "time_s": 300}),
               (T1655 + 600, {"parking_s": 120})]
    cost = price_periods(step_size_tariff(), periods, 0)
    assert (cost.billed_parking_s, cost.parking_excl_u, cost.total_excl_u) == (0, 0, 5000)


def test_live_pricing_of_parking_between_two_charges_agrees_with_batch():
    live = LivePricer(step_size_tariff())
    live.reading(T1655, 0, charging=True)
    live.reading(T1655 + 300, 1000, charging=False)
    live.reading(T1655 + 600, 1000, charging=True)
    live.reading(T1655 + 720, 1500, charging=False)
    batch = price_periods(step_size_tariff(), live.periods(), 0)
    assert live.breakdown().parking_excl_u == batch.parking_excl_u == 2500
