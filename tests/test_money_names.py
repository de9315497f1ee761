"""Money has one name per quantity; what an earlier release stored under other names still reads."""
from __future__ import annotations

import inspect

from agent.core.tariff import CostBreakdown, Period, Tariff, price_periods
from agent.service import ChargerService

TARIFF = {"id": "t", "currency": "INR", "elements": [{"price_components": [
    {"type": "ENERGY", "price": "18.00", "vat": 18.0, "step_size": 1}]}]}


def test_a_breakdown_kept_by_an_earlier_release_reads_back_under_todays_names():
    cost = price_periods(Tariff(TARIFF), [Period(1_700_000_000, 1000, 3600, 0)], 19800)
    earlier = cost.as_dict()
    earlier["paid_minor"] = earlier.pop("total_paise")
    earlier["uncapped_minor"] = earlier.pop("uncapped_paise")
    again = CostBreakdown.from_dict(earlier)
    assert again == cost and again.total_paise == 2124


def test_the_facade_names_money_in_paise():
    params = inspect.signature(ChargerService.start_session).parameters
    assert "money_limit_paise" in params and "paid_paise" in params
    assert not [name for name in params if name.endswith("_minor")]
