"""Sessions and earnings: local days and months, filters, totals, a CSV a spreadsheet opens safely, SVG."""
from __future__ import annotations

import csv
import io
from types import SimpleNamespace
from xml.etree import ElementTree

import pytest

from agent.service import SessionView
from protocols.owner import earnings
from protocols.owner.earnings import FilterError, Filters

# 2026-03-01 23:00 IST (17:30 UTC) and 2026-03-02 00:30 IST (19:00 UTC): one UTC day, two local ones
LATE_1MAR_S = 1772386200.0
EARLY_2MAR_S = 1772391600.0


def view(sid, start_s, *, wh, paise, source="allow_list", reference="", status="COMPLETED"):
    return SessionView(session_id=sid, start_s=start_s, stop_s=start_s + 600, energy_wh=wh, source=source,
                       status=status, reference=reference, cost=SimpleNamespace(total_paise=paise))


VIEWS = [view("a", LATE_1MAR_S, wh=5000, paise=10620), view("b", EARLY_2MAR_S, wh=1234, paise=2621, source="ocpi"),
         view("c", EARLY_2MAR_S + 86400 * 31, wh=10, paise=21, source="free_vend"),
         view("d", EARLY_2MAR_S, wh=0, paise=0, status="INVALID")]


def test_days_and_months_are_the_sites_local_calendar():
    rows = earnings.rows(VIEWS, timezone="Asia/Kolkata", filters=Filters())
    assert [(r.session_id, r.day) for r in rows] == [("c", "2026-04-02"), ("b", "2026-03-02"), ("a", "2026-03-01")]
    assert earnings.totals(rows, "month") == [("2026-03", 2, 6234, 13241), ("2026-04", 1, 10, 21)]
    assert earnings.totals(rows, "day")[0] == ("2026-03-01", 1, 5000, 10620)


def test_filters_by_day_month_and_source():
    def ids(**kw):
        return [r.session_id for r in earnings.rows(VIEWS, timezone="Asia/Kolkata", filters=Filters(**kw))]
    assert ids(day="2026-03-02") == ["b"]
    assert ids(month="2026-03") == ["b", "a"]
    assert ids(source="ocpi") == ["b"]
    assert ids(month="2026-03", source="free_vend") == []


@pytest.mark.parametrize(("query", "message"), [
    ({"day": "1 March"}, "day: '1 March' is not a date (allowed: YYYY-MM-DD)"),
    ({"month": "2026-3"}, "month: '2026-3' is not a month (allowed: YYYY-MM)"),
    ({"source": "cash"}, "source: unknown 'cash' (allowed: contract, ocpi, allow_list, free_vend)"),
])
def test_a_bad_filter_is_named(query, message):
    with pytest.raises(FilterError) as info:
        Filters.from_query(query)
    assert str(info.value) == message


def test_the_csv_opens_in_a_spreadsheet_with_exact_money_and_no_formulas():
    hostile = view("e", LATE_1MAR_S, wh=1, paise=5, reference="=HYPERLINK(\"http://x\")")
    rows = earnings.rows(VIEWS + [hostile], timezone="Asia/Kolkata", filters=Filters())
    text = earnings.to_csv(rows)
    assert text.startswith("\ufeffsession_id,") and "\r\n" in text
    table = list(csv.DictReader(io.StringIO(text.lstrip("\ufeff"))))
    by_id = {r["session_id"]: r for r in table}
    assert by_id["a"]["amount_inr"] == "106.20" and by_id["a"]["amount_paise"] == "10620"
    assert by_id["b"]["energy_kwh"] == "1.234" and by_id["a"]["start_local"] == "2026-03-01 23:00"
    assert by_id["e"]["reference"].startswith("'=")


def test_the_plot_is_svg_drawn_on_the_charger():
    svg = earnings.bar_svg([("2026-03-01", 5000), ("2026-03-02", 1234)], title="Energy <per> day", unit="kWh",
                           scale=1000)
    root = ElementTree.fromstring(svg)
    bars = root.findall("{http://www.w3.org/2000/svg}rect")
    assert len(bars) == 2 and float(bars[0].get("height")) > float(bars[1].get("height"))
    assert "Energy &lt;per&gt; day" in svg
