"""OCPI TariffRestrictions: parsed once into integer units, then matched against each period.

A restriction is evaluated at a period's start (``agent.core.tariff``, OCPI semantics), so
matching takes the local time parts, the session's energy and duration before the period and
the period's own current and power extremes.
"""

from agent.core.tariff_calendar import DAYS, parse_date, parse_hhmm
from agent.core.tariff_numbers import TariffError, parse_fixed

_RESTRICTION_KEYS = (
    "start_time", "end_time", "start_date", "end_date", "min_kwh", "max_kwh",
    "min_current", "max_current", "min_power", "max_power", "min_duration", "max_duration",
    "day_of_week", "reservation",
)
RESERVATION = "RESERVATION"
RESERVATION_EXPIRES = "RESERVATION_EXPIRES"
RESERVATIONS = (RESERVATION, RESERVATION_EXPIRES)


class Restrictions:
    """Parsed TariffRestrictions in integer units (s of day, day numbers, Wh, mA, W, s)."""

    __slots__ = ("start_sod", "end_sod", "start_day", "end_day", "min_wh", "max_wh",
                 "min_current_ma", "max_current_ma", "min_power_w", "max_power_w",
                 "min_duration_s", "max_duration_s", "days", "reservation")

    def __init__(self, data, field):
        if not isinstance(data, dict):
            raise TariffError(field, "must be an object")
        for key in data:
            if key not in _RESTRICTION_KEYS:
                raise TariffError(field + "." + key, "unknown restriction",
                                  ", ".join(_RESTRICTION_KEYS))
        get = data.get
        self.start_sod = parse_hhmm(get("start_time"), field + ".start_time") \
            if get("start_time") is not None else None
        self.end_sod = parse_hhmm(get("end_time"), field + ".end_time") \
            if get("end_time") is not None else None
        self.start_day = parse_date(get("start_date"), field + ".start_date") \
            if get("start_date") is not None else None
        self.end_day = parse_date(get("end_date"), field + ".end_date") \
            if get("end_date") is not None else None
        self.min_wh = self._fixed(data, "min_kwh", 3, field)
        self.max_wh = self._fixed(data, "max_kwh", 3, field)
        self.min_current_ma = self._fixed(data, "min_current", 3, field)
        self.max_current_ma = self._fixed(data, "max_current", 3, field)
        self.min_power_w = self._fixed(data, "min_power", 3, field)
        self.max_power_w = self._fixed(data, "max_power", 3, field)
        self.min_duration_s = self._fixed(data, "min_duration", 0, field)
        self.max_duration_s = self._fixed(data, "max_duration", 0, field)
        days = get("day_of_week")
        if days is None:
            self.days = None
        else:
            if not isinstance(days, list):
                raise TariffError(field + ".day_of_week", "must be a list of days", ", ".join(DAYS))
            mask = 0
            for i, day in enumerate(days):
                if day not in DAYS:
                    raise TariffError(field + ".day_of_week[" + str(i) + "]",
                                      "unknown day " + repr(day), ", ".join(DAYS))
                mask |= 1 << DAYS.index(day)
            self.days = mask
        reservation = get("reservation")
        if reservation is not None and reservation not in RESERVATIONS:
            raise TariffError(field + ".reservation", "unknown value " + repr(reservation),
                              ", ".join(RESERVATIONS))
        self.reservation = reservation

    @staticmethod
    def _fixed(data, key, places, field):
        value = data.get(key)
        if value is None:
            return None
        return parse_fixed(value, places, field + "." + key)

    def matches(self, sod, day, weekday, energy_wh, duration_s, period):  # noqa: C901
        """Whether the element is active for a period starting at local ``sod`` on ``day``."""
        start, end = self.start_sod, self.end_sod
        if start is not None and end is not None:
            if start < end:
                if not start <= sod < end:
                    return False
            elif start > end:
                if end <= sod < start:
                    return False
        elif start is not None:
            if sod < start:
                return False
        elif end is not None:
            if sod >= end:
                return False
        if self.start_day is not None and day < self.start_day:
            return False
        if self.end_day is not None and day >= self.end_day:
            return False
        if self.days is not None and not (self.days >> weekday) & 1:
            return False
        if self.min_wh is not None and energy_wh < self.min_wh:
            return False
        if self.max_wh is not None and energy_wh >= self.max_wh:
            return False
        if self.min_duration_s is not None and duration_s < self.min_duration_s:
            return False
        if self.max_duration_s is not None and duration_s >= self.max_duration_s:
            return False
        if self.min_current_ma is not None:
            value = period.min_current_ma
            if value is None or value < self.min_current_ma:
                return False
        if self.max_current_ma is not None:
            value = period.max_current_ma
            if value is None or value >= self.max_current_ma:
                return False
        if self.min_power_w is not None:
            value = period.min_power_w
            if value is None or value < self.min_power_w:
                return False
        if self.max_power_w is not None:
            value = period.max_power_w
            if value is None or value >= self.max_power_w:
                return False
        return True
