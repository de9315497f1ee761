"""Opening hours: one line in ``[site]``, checked as the file is, stated in every catalog, and kept.

What the Beckn 1.1 and 2.0 catalogs and OCPI's ``opening_times`` state is what the charger
does: outside the hours a start is refused (a session already running goes on); ``[network]
enabled = false`` keeps the table but never dials the broker.
"""
from __future__ import annotations

import json
import time
from datetime import datetime
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from test_beckn2_bpp import World2
from test_beckn_fakes import NOW_S

from agent.bootstrap import open_runtime
from agent.clock import Clock
from agent.config import load_config
from agent.opening_hours import DAY_NAMES, OpeningHoursError, parse
from agent.service import ServiceError
from drivers.configfile import ConfigError
from protocols.beckn import messages as m
from protocols.beckn.tags import tag_values
from tests.ocpi_harness import h, schemas  # noqa: F401 - the harness's fixtures
from tools.provision import provision_site

IST = "Asia/Kolkata"


def at(text: str) -> float:
    """Epoch seconds of a local time in Bengaluru, e.g. ``2026-12-07 08:00`` (a Monday)."""
    return datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=ZoneInfo(IST)).timestamp()


def site_with(tmp_path: Path, hours: str | None, *, extra: str = "") -> Path:
    path = provision_site(tmp_path / "site", site_id="in.test.hours-1", name="Hours Kirana", lat=12.9352,
                          lon=77.6245, tariff="flat", auth="allow_list", extra_toml=extra)
    if hours is not None:
        text = path.read_text()
        path.write_text(text.replace("[site]\n", f'[site]\nopening_hours = "{hours}"\n', 1))
    return path


def test_the_owners_line_is_read_as_weekly_periods_in_local_time():
    hours = parse("mon-fri 08:00-12:00,14:00-20:00; sat 09:00-13:00")
    assert hours.by_day()["MONDAY"] == ["08:00-12:00", "14:00-20:00"] and "SUNDAY" not in hours.by_day()
    assert hours.is_open(at("2026-12-07 08:00"), IST) and not hours.is_open(at("2026-12-07 12:00"), IST)
    assert hours.is_open(at("2026-12-12 12:59"), IST) and not hours.is_open(at("2026-12-13 10:00"), IST)
    assert parse("").always and parse("24/7").always and parse("24/7").is_open(at("2026-12-13 03:00"), IST)
    assert parse("06:00-22:00").ocpi()["regular_hours"][6] == {"weekday": 7, "period_begin": "06:00",
                                                               "period_end": "22:00"}


@pytest.mark.parametrize(("text", "says"), [
    ("always", "unknown day 'always'"),
    ("mon-fri", "no times"),
    ("08:00-24:00", "'24:00' is not a time HH:MM from 00:00 to 23:59"),
    ("sat 22:00-02:00", "ends before it begins"),
    ("fri-mon 08:00-09:00", "runs backwards"),
    ("mon 08:00-10:00; mon 09:00-11:00", "rule 2 ('mon 09:00-11:00'): '09:00-11:00' overlaps"),
    ("mon 08:00", "is not a period HH:MM-HH:MM"),
    ("06:00-22:00;", "rule 2 is empty"),
])
def test_a_wrong_line_is_refused_naming_the_part(text, says):
    with pytest.raises(OpeningHoursError, match=None) as info:
        parse(text)
    assert says in str(info.value)


def test_the_configuration_refuses_bad_hours_naming_file_and_key(tmp_path):
    path = site_with(tmp_path, "mon-fri 8-20")
    with pytest.raises(ConfigError) as info:
        load_config(path)
    message = str(info.value)
    assert str(path) in message and "site.opening_hours" in message and "not a time HH:MM" in message
    assert load_config(site_with(tmp_path / "b", None)).opening_hours.always


async def test_both_beckn_catalogs_state_the_hours_and_the_2_0_one_validates():
    w = World2()
    w.charger.site.opening_hours = parse("mon-sat 08:00-20:00")
    v2, v1 = await w.ok(m.search(w.buyer.ctx("search", to_bpp=False), gps=(12.94, 77.62), radius_m=3000))
    windows = v2["message"]["catalogs"][0]["resources"][0]["availabilityWindow"]
    assert windows[0] == {"@type": "TimePeriod", "dayOfWeek": "Monday", "startTime": "08:00:00", "endTime": "20:00:00"}
    assert len(windows) == 6 and "Sunday" not in {x["dayOfWeek"] for x in windows}
    # what a 1.1 reader gets from the 2.0 catalog, and what the 1.1 catalog itself says, agree
    assert tag_values(v1["message"]["catalog"]["providers"][0]["tags"], "opening-hours")["SATURDAY"] == "08:00-20:00"
    own = w.bpp._catalog(NOW_S).message["catalog"]["providers"][0]
    assert own["time"] == {"label": "mon-sat 08:00-20:00"}
    assert tag_values(own["tags"], "opening-hours") == {d: "08:00-20:00" for d in
                                                        ("MONDAY", "TUESDAY", "WEDNESDAY", "THURSDAY", "FRIDAY",
                                                         "SATURDAY")}


async def test_ocpi_states_the_hours_as_opening_times(h_with_hours):
    harness = h_with_hours
    await harness.register()
    _, body, _ = await harness.call("GET", "/2.2.1/locations")
    loc = body["data"][0]
    harness.schemas.check(loc, "locations", "Location")
    assert loc["opening_times"]["twentyfourseven"] is False and loc["charging_when_closed"] is True
    assert loc["opening_times"]["regular_hours"][0] == {"weekday": 1, "period_begin": "08:00", "period_end": "20:00"}


@pytest.fixture
async def h_with_hours(h):  # noqa: F811
    h.charger.site.opening_hours = parse("mon-fri 08:00-20:00")
    yield h


def closed_today() -> str:
    """Hours that exclude today and tomorrow in Bengaluru (a test near midnight stays closed)."""
    today = datetime.fromtimestamp(time.time(), ZoneInfo(IST)).weekday()
    return f"{DAY_NAMES[(today + 3) % 7]} 08:00-20:00"


@pytest.mark.runtime
async def test_outside_the_hours_the_charger_refuses_every_start(tmp_path):
    cfg = load_config(site_with(tmp_path, closed_today()))
    async with open_runtime(cfg, clock=Clock(speed=30)) as rt:
        for start in (lambda: rt.present_token("DEMO-RFID-0001"),
                      lambda: rt.start_session(source="allow_list", reference="r", token="DEMO-RFID-0001")):
            with pytest.raises(ServiceError) as info:
                await start()
            assert info.value.code == ServiceError.REJECTED and "the site is closed now" in str(info.value)
        assert rt.connectors()[0].session_id is None and not rt.board.relay.closed


@pytest.mark.runtime
async def test_a_network_switched_off_is_not_started(tmp_path):
    on = load_config(site_with(tmp_path / "on", None, extra='\n[network]\nbrokers = ["mqtt://127.0.0.1:9"]\n'))
    off = load_config(site_with(tmp_path / "off", None,
                                extra='\n[network]\nenabled = false\nbrokers = ["mqtt://127.0.0.1:9"]\n'))
    assert on.bindings["network"].enabled and not off.bindings["network"].enabled
    async with open_runtime(off, clock=Clock(speed=30)) as rt:
        assert "network" not in rt.bindings
    bad = site_with(tmp_path / "bad", None, extra='\n[network]\nenabled = "no"\n')
    with pytest.raises(ConfigError, match="network.enabled: must be true or false"):
        load_config(bad)


async def test_a_charge_that_would_start_while_the_site_is_closed_is_never_quoted_nor_sold():
    """The runtime refuses a start outside the hours, so the network must not quote it, take an
    order for it or accept its payment: a quote is a promise."""
    w = World2()
    b = w.buyer
    w.charger.site.opening_hours = parse("mon-sun 06:00-12:00")  # NOW_S is 19:43 in Bengaluru
    err = await w.refused(w.v2(m.select(b.ctx("select"), provider_id="in.test.charger", energy_wh=4000)), "30008")
    told = json.dumps(err)
    assert "closed" in told and "06:00-12:00" in told
    # open at select and init; closed by the time the buyer confirms and pays
    w.charger.site.opening_hours = parse("mon-sun 06:00-19:45")
    await w.ok(m.select(b.ctx("select"), provider_id="in.test.charger", energy_wh=4000))
    await w.ok(m.init(b.ctx("init"), provider_id="in.test.charger", energy_wh=4000))
    w.clock.t_s = NOW_S + 120  # 19:45:20, the quote still valid
    await w.refused(w.v2(m.confirm(b.ctx("confirm"), provider_id="in.test.charger", energy_wh=4000,
                                   amount_paise=8496, payment_ref="UPI-1")), "30008")  # nothing held, nothing sold


async def test_a_booking_for_when_the_site_is_open_is_quoted_while_it_is_closed():
    w = World2()
    w.charger.site.opening_hours = parse("mon-sun 06:00-12:00")
    tomorrow_morning_s = NOW_S + 14 * 3600  # 09:43 the next day
    v2, _ = await w.ok(m.select(w.buyer.ctx("select"), provider_id="in.test.charger", energy_wh=4000,
                                start_s=tomorrow_morning_s))
    assert v2["message"]["contract"]["status"]["code"] == "DRAFT"
