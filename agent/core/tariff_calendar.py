"""Local time for tariffs without datetime: times of day, civil dates, weekdays, UTC offsets.

MicroPython has no datetime, and tariff restrictions are in the site's local time, so the
engine works in epoch seconds and day numbers and takes the UTC offset as a number (or, at the
CPython edge, a function of the epoch second, for zones with daylight saving).
"""

from agent.core.tariff_numbers import TariffError

DAYS = ("MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY")


def parse_hhmm(value, field):
    if not isinstance(value, str) or len(value) != 5 or value[2] != ":" \
            or not (value[:2] + value[3:]).isdigit():
        raise TariffError(field, "must be a time HH:MM, got " + repr(value), "00:00 to 23:59")
    hours = int(value[:2])
    minutes = int(value[3:])
    if hours > 23 or minutes > 59:
        raise TariffError(field, "no such time of day: " + repr(value), "00:00 to 23:59")
    return hours * 3600 + minutes * 60


def days_from_civil(year, month, day):
    """Days since 1970-01-01 of a proleptic Gregorian date (no datetime on MicroPython)."""
    year -= month <= 2
    era = (year if year >= 0 else year - 399) // 400
    yoe = year - era * 400
    doy = (153 * (month + (-3 if month > 2 else 9)) + 2) // 5 + day - 1
    doe = yoe * 365 + yoe // 4 - yoe // 100 + doy
    return era * 146097 + doe - 719468


def civil_from_days(days):
    """(year, month, day) of a day number since 1970-01-01."""
    days += 719468
    era = (days if days >= 0 else days - 146096) // 146097
    doe = days - era * 146097
    yoe = (doe - doe // 1460 + doe // 36524 - doe // 146096) // 365
    doy = doe - (365 * yoe + yoe // 4 - yoe // 100)
    mp = (5 * doy + 2) // 153
    day = doy - (153 * mp + 2) // 5 + 1
    month = mp + (3 if mp < 10 else -9)
    return yoe + era * 400 + (month <= 2), month, day


def parse_date(value, field):
    ok = isinstance(value, str) and len(value) == 10 and value[4] == "-" and value[7] == "-" \
        and (value[:4] + value[5:7] + value[8:]).isdigit()
    if ok:
        year, month, day = int(value[:4]), int(value[5:7]), int(value[8:])
        ok = 1 <= month <= 12 and 1 <= day <= 31
        if ok:
            days = days_from_civil(year, month, day)
            ok = civil_from_days(days) == (year, month, day)
    if not ok:
        raise TariffError(field, "must be a date YYYY-MM-DD, got " + repr(value))
    return days


def offset_at(utc_offset_s, epoch_s):
    """The UTC offset in force at ``epoch_s``: a number, or a function of the epoch second."""
    if callable(utc_offset_s):
        return utc_offset_s(epoch_s)
    return utc_offset_s


def local_parts(epoch_s, utc_offset_s):
    """(seconds of day, day number, weekday Monday=0) of an epoch second in local time."""
    local = epoch_s + offset_at(utc_offset_s, epoch_s)
    day = local // 86400
    return local - day * 86400, day, (day + 3) % 7
