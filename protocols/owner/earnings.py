"""Sessions and earnings: the filtered list, totals per day and month, plots and the CSV.

Days and months are the site's local calendar (its time zone), as the owner counts them, not
UTC. Money stays integer paise until the moment it is written as text. The plots are SVG
drawn here, on the charger, so the phone needs no script library and nothing is fetched from
the internet.
"""
from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass
from datetime import datetime
from html import escape
from zoneinfo import ZoneInfo

from agent.core.auth import SOURCES

DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")
MONTH = re.compile(r"^\d{4}-\d{2}$")
CSV_COLUMNS = ("session_id", "source", "start_local", "stop_local", "energy_kwh", "amount_inr", "amount_paise",
               "status", "stop_reason", "reference")


class FilterError(ValueError):
    """A filter value the list cannot use; the message names the field and what is allowed."""


@dataclass(frozen=True, slots=True, kw_only=True)
class Filters:
    day: str = ""
    month: str = ""
    source: str = ""

    @classmethod
    def from_query(cls, query) -> "Filters":
        day = str(query.get("day", "")).strip()
        month = str(query.get("month", "")).strip()
        source = str(query.get("source", "")).strip()
        if day and not DAY.match(day):
            raise FilterError(f"day: {day!r} is not a date (allowed: YYYY-MM-DD)")
        if month and not MONTH.match(month):
            raise FilterError(f"month: {month!r} is not a month (allowed: YYYY-MM)")
        if source and source not in SOURCES:
            raise FilterError(f"source: unknown {source!r} (allowed: {', '.join(SOURCES)})")
        return cls(day=day, month=month, source=source)

    def query(self) -> str:
        parts = [f"{k}={getattr(self, k)}" for k in ("day", "month", "source") if getattr(self, k)]
        return "&".join(parts)


@dataclass(frozen=True, slots=True)
class Row:
    session_id: str
    source: str
    start_local: str
    stop_local: str
    day: str
    month: str
    energy_wh: int
    paise: int
    status: str
    stop_reason: str
    reference: str


def rows(views, *, timezone: str, filters: Filters) -> list[Row]:
    zone = ZoneInfo(timezone)
    out = []
    for view in views:
        if view.status not in ("COMPLETED", "ACTIVE") or view.start_s is None:
            continue
        start = datetime.fromtimestamp(view.start_s, zone)
        stop = datetime.fromtimestamp(view.stop_s, zone) if view.stop_s else None
        row = Row(session_id=view.session_id or "", source=view.source or "",
                  start_local=start.strftime("%Y-%m-%d %H:%M"), stop_local=stop.strftime("%Y-%m-%d %H:%M") if stop else "",
                  day=start.strftime("%Y-%m-%d"), month=start.strftime("%Y-%m"), energy_wh=int(view.energy_wh or 0),
                  paise=int(view.cost.total_paise) if view.cost is not None else 0, status=view.status or "",
                  stop_reason=view.stop_reason or "", reference=view.reference or "")
        if filters.day and row.day != filters.day or filters.month and row.month != filters.month \
                or filters.source and row.source != filters.source:
            continue
        out.append(row)
    out.sort(key=lambda r: (r.start_local, r.session_id), reverse=True)
    return out


def totals(items: list[Row], key: str) -> list[tuple[str, int, int, int]]:
    """(day or month, sessions, Wh, paise), oldest first."""
    sums: dict[str, list[int]] = {}
    for row in items:
        entry = sums.setdefault(getattr(row, key), [0, 0, 0])
        entry[0] += 1
        entry[1] += row.energy_wh
        entry[2] += row.paise
    return [(k, *v) for k, v in sorted(sums.items())]


def rupees(paise: int) -> str:
    sign = "-" if paise < 0 else ""
    paise = abs(paise)
    return f"{sign}{paise // 100}.{paise % 100:02d}"


def kwh(wh: int) -> str:
    return f"{wh // 1000}.{wh % 1000:03d}"


def to_csv(items: list[Row]) -> str:
    """Comma-separated with a header, CRLF line ends and a BOM, so a spreadsheet opens it as UTF-8."""
    buf = io.StringIO()
    writer = csv.writer(buf, lineterminator="\r\n")
    writer.writerow(CSV_COLUMNS)
    for r in items:
        writer.writerow((r.session_id, r.source, r.start_local, r.stop_local, kwh(r.energy_wh), rupees(r.paise),
                         r.paise, r.status, r.stop_reason, _cell(r.reference)))
    return "\ufeff" + buf.getvalue()


def _cell(text: str) -> str:
    """A cell a spreadsheet will not run as a formula (a buyer's reference is outside text)."""
    return "'" + text if text[:1] in ("=", "+", "-", "@", "\t", "\r") else text


def bar_svg(points: list[tuple[str, int]], *, title: str, unit: str, scale: int, width: int = 340,
            height: int = 160) -> str:
    """A bar chart of (label, value) as inline SVG; values are integers shown divided by ``scale``."""
    left, bottom, top = 36, 22, 18
    plot_w, plot_h = width - left - 6, height - bottom - top
    peak = max((v for _, v in points), default=0) or 1
    parts = [f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" role="img" '
             f'aria-label="{escape(title)}" class="plot">',
             f'<text x="4" y="12" class="plot-title">{escape(title)} ({escape(unit)})</text>',
             f'<line x1="{left}" y1="{top + plot_h}" x2="{width - 4}" y2="{top + plot_h}" class="axis"/>',
             f'<text x="{left - 4}" y="{top + 8}" text-anchor="end" class="tick">{_short(peak / scale)}</text>',
             f'<text x="{left - 4}" y="{top + plot_h}" text-anchor="end" class="tick">0</text>']
    n = max(1, len(points))
    slot = plot_w / n
    bar = min(40.0, max(2.0, slot * 0.7))
    for i, (label, value) in enumerate(points):
        h = plot_h * value / peak
        x = left + i * slot + (slot - bar) / 2
        parts.append(f'<rect x="{x:.1f}" y="{top + plot_h - h:.1f}" width="{bar:.1f}" height="{h:.1f}" class="bar">'
                     f'<title>{escape(label)}: {value / scale:.2f} {escape(unit)}</title></rect>')
        if n <= 12 or i in (0, n - 1):
            parts.append(f'<text x="{x + bar / 2:.1f}" y="{height - 8}" text-anchor="middle" class="tick">'
                         f'{escape(label[-2:])}</text>')
    parts.append("</svg>")
    return "".join(parts)


def _short(value: float) -> str:
    return f"{value:.0f}" if value >= 10 else f"{value:.2g}"
