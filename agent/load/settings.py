"""What a site owner says about the supply: the sanctioned load and how chargers share it.

Read from the ``[load]`` table of the site configuration. A sanctioned load is usually written
on the electricity bill in kW; a fuse or a cable gives amps per phase; either or both may be
given, and the stricter one holds. Every value is checked here so that a typo stops the agent
with the file and the key before the relay is touched.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from drivers.configfile import Section

FAIRNESS = ("first_come", "equal_share")


@dataclass(frozen=True, kw_only=True)
class TimeWindow:
    """A lower limit for part of the day (the evening peak), local time, minutes from midnight."""

    start_min: int
    end_min: int
    limit_kw: float | None = None
    limit_a: float | None = None

    def covers(self, minute: int) -> bool:
        if self.start_min <= self.end_min:
            return self.start_min <= minute < self.end_min
        return minute >= self.start_min or minute < self.end_min  # across midnight


@dataclass(frozen=True, kw_only=True)
class LoadSettings:
    """The site's limit and the rules of sharing it (see ``agent.load.manager``)."""

    limit_kw: float | None = None
    limit_a: float | None = None
    phases: int | None = 1  # None: the board's (the runtime fills it in)
    voltage_v: float = 230.0
    margin_pct: float = 5.0
    fairness: str = "first_come"
    hysteresis_a: float = 1.0
    max_switches_per_hour: int = 12
    rotation_s: int = 900
    socket_start_a: float = 6.0
    grid_timeout_ms: int = 5000
    safe_current_a: float = 6.0
    windows: tuple[TimeWindow, ...] = field(default_factory=tuple)
    solar: bool = False
    solar_min_a: float = 0.0

    def __post_init__(self):
        if self.limit_kw is None and self.limit_a is None:
            raise ValueError("a site limit needs limit_kw or limit_a")
        if self.fairness not in FAIRNESS:
            raise ValueError(f"fairness {self.fairness!r} unknown; allowed: {', '.join(FAIRNESS)}")


def _minute(sec: Section, name: str) -> int:
    text = sec.str(name)
    parts = text.split(":")
    if len(parts) != 2 or not all(p.isdigit() for p in parts) or int(parts[0]) > 23 or int(parts[1]) > 59:
        raise sec.error(name, f"not a time of day {text!r}", "HH:MM, 00:00 to 23:59")
    return int(parts[0]) * 60 + int(parts[1])


def _limits(sec: Section, need: bool) -> tuple[float | None, float | None]:
    limit_kw = sec.float("limit_kw", None, min=0.5, max=500.0)
    limit_a = sec.float("limit_a", None, min=1.0, max=630.0)
    if need and limit_kw is None and limit_a is None:
        raise sec.error("limit_kw", "a limit is needed: limit_kw, limit_a or both", "kW 0.5 to 500, A 1 to 630")
    return limit_kw, limit_a


def parse_load(sec: Section, *, phases: int | None = None) -> LoadSettings:
    """Read ``[load]``; ``phases`` is the site supply's, the board's when not written (None)."""
    limit_kw, limit_a = _limits(sec, True)
    phases = sec.int("phases", phases, min=1, max=3)
    if phases == 2:
        raise sec.error("phases", "unsupported phase count 2", "1, 3")
    safe_current_a = sec.float("safe_current_a", 6.0, min=0.0, max=630.0)
    windows = []
    for win in sec.sections("window"):
        w_kw, w_a = _limits(win, True)
        windows.append(TimeWindow(start_min=_minute(win, "from"), end_min=_minute(win, "to"), limit_kw=w_kw,
                                  limit_a=w_a))
        win.finish()
    settings = LoadSettings(
        limit_kw=limit_kw, limit_a=limit_a, phases=phases,
        voltage_v=sec.float("voltage_v", 230.0, min=100.0, max=260.0),
        margin_pct=sec.float("margin_pct", 5.0, min=0.0, max=30.0),
        fairness=sec.str("fairness", "first_come", choices=FAIRNESS),
        hysteresis_a=sec.float("hysteresis_a", 1.0, min=0.0, max=10.0),
        max_switches_per_hour=sec.int("max_switches_per_hour", 12, min=2, max=120),
        rotation_s=sec.int("rotation_s", 900, min=60, max=86_400),
        socket_start_a=sec.float("socket_start_a", 6.0, min=0.5, max=80.0),
        grid_timeout_ms=sec.int("grid_timeout_ms", 5000, min=1000, max=60_000),
        safe_current_a=safe_current_a, windows=tuple(windows),
        solar=sec.bool("solar", False),
        solar_min_a=sec.float("solar_min_a", 0.0, min=0.0, max=80.0),
    )
    sec.finish()
    return settings
