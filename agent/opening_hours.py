"""The site's opening hours: ``[site] opening_hours`` in the configuration.

One line the owner writes and reads, turned into the one set of weekly periods that the charger
sells by and that every catalog states (Beckn 1.1 and 2.0, OCPI ``opening_times``), so what a
network is told and what the charger does cannot differ:

    opening_hours = "24/7"                                  # the default: always open
    opening_hours = "06:00-22:00"                           # every day
    opening_hours = "mon-fri 08:00-20:00; sat 09:00-13:00"  # closed on Sunday
    opening_hours = "mon-sat 08:00-12:00,16:00-21:00"

Times are the site's local time (``[site.place] timezone``), hours and minutes; a period ends
after it begins, on the same day, as in OCPI's ``RegularHours`` (a site open past midnight
writes the next day's morning as a period of its own: ``sat 18:00-23:59; sun 00:00-02:00``).
A session already running when the site closes goes on: the charger refuses only new ones
(OCPI ``charging_when_closed``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from datetime import timezone as _utc
from zoneinfo import ZoneInfo

DAY_NAMES = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")
WEEKDAYS = ("MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY", "SATURDAY", "SUNDAY")
ALWAYS = "24/7"
_TIME = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$")
EXAMPLE = 'e.g. "24/7", "06:00-22:00" or "mon-fri 08:00-20:00; sat 09:00-13:00"'


class OpeningHoursError(ValueError):
    """The text is not opening hours; the message says which part and why."""


@dataclass(frozen=True)
class Period:
    weekday: int  # 0 = Monday
    begin_min: int  # minutes after local midnight
    end_min: int

    @property
    def begin(self) -> str:
        return f"{self.begin_min // 60:02d}:{self.begin_min % 60:02d}"

    @property
    def end(self) -> str:
        return f"{self.end_min // 60:02d}:{self.end_min % 60:02d}"


@dataclass(frozen=True)
class OpeningHours:
    """Weekly periods, or ``always`` (24/7). ``text`` is the owner's own spelling."""

    text: str
    periods: tuple[Period, ...] = ()

    @property
    def always(self) -> bool:
        return not self.periods

    def is_open(self, epoch_s: float, timezone: str) -> bool:
        if self.always:
            return True
        local = datetime.fromtimestamp(epoch_s, _utc.utc).astimezone(ZoneInfo(timezone))
        minute = local.hour * 60 + local.minute
        return any(p.weekday == local.weekday() and p.begin_min <= minute < p.end_min for p in self.periods)

    def by_day(self) -> dict[str, list[str]]:
        """``{"MONDAY": ["08:00-20:00"], ...}`` for the days the site opens."""
        out: dict[str, list[str]] = {}
        for p in self.periods:
            out.setdefault(WEEKDAYS[p.weekday], []).append(f"{p.begin}-{p.end}")
        return out

    def ocpi(self) -> dict:
        """OCPI 2.2.1 ``Hours``."""
        if self.always:
            return {"twentyfourseven": True}
        return {"twentyfourseven": False,
                "regular_hours": [{"weekday": p.weekday + 1, "period_begin": p.begin, "period_end": p.end}
                                  for p in self.periods]}


def _days(text: str, where: str) -> list[int]:
    days: list[int] = []
    for part in text.split(","):
        first, _, last = part.strip().partition("-")
        if first not in DAY_NAMES or (last and last not in DAY_NAMES):
            raise OpeningHoursError(f"{where}: unknown day {part.strip()!r} (days: {', '.join(DAY_NAMES)})")
        a, b = DAY_NAMES.index(first), DAY_NAMES.index(last or first)
        if b < a:
            raise OpeningHoursError(f"{where}: {part.strip()!r} runs backwards (write e.g. mon-fri)")
        days += [d for d in range(a, b + 1) if d not in days]
    return days


def _minutes(text: str, where: str) -> int:
    found = _TIME.match(text.strip())
    if not found:
        raise OpeningHoursError(f"{where}: {text.strip()!r} is not a time HH:MM from 00:00 to 23:59")
    return int(found.group(1)) * 60 + int(found.group(2))


def parse(text: str) -> OpeningHours:
    """The owner's line as weekly periods; ``OpeningHoursError`` naming the part that is wrong."""
    spelt = " ".join(str(text).split())
    if spelt in ("", ALWAYS):
        return OpeningHours(text=ALWAYS)
    periods: list[Period] = []
    for n, rule in enumerate(r.strip() for r in spelt.lower().split(";")):
        where = f"rule {n + 1} ({rule!r})" if rule else f"rule {n + 1}"
        if not rule:
            raise OpeningHoursError(f"{where} is empty")
        head, _, tail = rule.partition(" ")
        days, spans = (_days(head, where), tail) if head[:1].isalpha() else (list(range(7)), rule)
        if not spans.strip():
            raise OpeningHoursError(f"{where}: no times (write e.g. 08:00-20:00)")
        for span in spans.replace(" ", "").split(","):
            begin, dash, end = span.partition("-")
            if not dash:
                raise OpeningHoursError(f"{where}: {span!r} is not a period HH:MM-HH:MM")
            b, e = _minutes(begin, where), _minutes(end, where)
            if e <= b:
                raise OpeningHoursError(f"{where}: {span!r} ends before it begins "
                                        "(a period past midnight is two: 18:00-23:59 and the next day's 00:00-02:00)")
            for day in days:
                new = Period(day, b, e)
                if any(p.weekday == day and p.begin_min < e and b < p.end_min for p in periods):
                    raise OpeningHoursError(f"{where}: {span!r} overlaps another period on {DAY_NAMES[day]}")
                periods.append(new)
    periods.sort(key=lambda p: (p.weekday, p.begin_min))
    return OpeningHours(text=spelt, periods=tuple(periods))
