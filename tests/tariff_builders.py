"""Small builders for tariff tests: OCPI tariff dicts, elements and local wall times."""
from datetime import datetime, timezone

from agent.core.tariff import Tariff, price_periods

IST = 19800


def epoch(y, mo, d, h=0, mi=0, s=0, offset_s=0):
    """Epoch second of a local wall time at a fixed offset."""
    return int(datetime(y, mo, d, h, mi, s, tzinfo=timezone.utc).timestamp()) - offset_s


def tariff(*elements, currency="INR", **extra):
    data = {"currency": currency, "elements": list(elements)}
    data.update(extra)
    return Tariff(data)


def energy(price, step=1, vat=18, **restrictions):
    element = {"price_components": [{"type": "ENERGY", "price": price, "vat": vat,
                                     "step_size": step}]}
    if restrictions:
        element["restrictions"] = restrictions
    return element


def comp(kind, price, step=1, vat=18, **restrictions):
    element = {"price_components": [{"type": kind, "price": price, "vat": vat, "step_size": step}]}
    if restrictions:
        element["restrictions"] = restrictions
    return element


MON = epoch(2026, 1, 5, 10, 0, offset_s=IST)  # Monday 5 January 2026, 10:00 IST


def priced(t, periods, offset=IST):
    return price_periods(t, periods, offset).energy_excl_u
