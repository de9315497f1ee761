"""The owner's TOML tariff: exact prices, errors naming file and key, round trips with OCPI."""
import json
from pathlib import Path

import pytest

from agent.core.tariff import Tariff, price_periods
from agent.tariff_file import load_tariff_file, periods_from_cdr, tariff_from_toml, tariff_to_toml, zone_offset
from drivers.configfile import ConfigError

EXAMPLES = Path(__file__).parent.parent / "examples" / "tariffs"


def write(tmp_path, text, name="t.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


BASE = '[tariff]\nid = "t1"\ngst_percent = 18\n'


@pytest.mark.parametrize("name", ["flat.toml", "time_of_day.toml", "idle_fee.toml"])
def test_shipped_examples_load(name):
    data = load_tariff_file(EXAMPLES / name)
    assert data["currency"] == "INR"
    Tariff(data)


def test_prices_are_exact_whatever_the_spelling(tmp_path):
    for spelling in ("18.5", "18.50", '"18.50"', '"18.5000"'):
        data = load_tariff_file(write(tmp_path, BASE + f"[[tariff.element]]\nenergy_per_kwh = {spelling}\n"))
        assert data["elements"][0]["price_components"][0]["price"] == 18.5
    data = load_tariff_file(write(tmp_path, BASE + "[[tariff.element]]\nenergy_per_kwh = 18.1234\n"))
    assert Tariff(data).elements[0][1]["ENERGY"].price_u == 181234


def test_min_price_gets_gst_added(tmp_path):
    data = load_tariff_file(write(tmp_path, BASE + "min_price = 30\n[[tariff.element]]\nflat = 1\n"))
    assert data["min_price"] == {"excl_vat": 30, "incl_vat": 35.4}


@pytest.mark.parametrize("body,key,words", [
    ("[[tariff.element]]\nenergy_per_kwh = 18.12345\n", "tariff.element[0].energy_per_kwh",
     "at most 4 decimals"),
    ("[[tariff.element]]\nenergy_per_kwh = -1\n", "tariff.element[0].energy_per_kwh", "at least 0"),
    ("[[tariff.element]]\nenergy_per_kwh = \"cheap\"\n", "tariff.element[0].energy_per_kwh",
     "not a decimal"),
    ("[[tariff.element]]\nenergy_per_kwh = 1\nstart_time = \"6pm\"\n",
     "tariff.element[0].start_time", "HH:MM"),
    ("[[tariff.element]]\nenergy_per_kwh = 1\ndays = [\"MON\"]\n", "tariff.element[0].days",
     "MONDAY, TUESDAY"),
    ("[[tariff.element]]\nenergy_per_kwh = 1\nenergy_price = 2\n",
     "tariff.element[0].energy_price", "energy_per_kwh"),
    ("[[tariff.element]]\nstart_time = \"10:00\"\n", "tariff.element[0]", "energy_per_kwh"),
    ("[[tariff.element]]\nenergy_per_kwh = 1\nparking_step_s = 0\n",
     "tariff.element[0].parking_step_s", "at least 1"),
    ("[[tariff.element]]\nenergy_per_kwh = 1\nstart_date = \"2026-13-01\"\n",
     "tariff.element[0].start_date", "YYYY-MM-DD"),
    ("", "tariff.element", "at least one"),
])
def test_errors_name_file_key_and_allowed(tmp_path, body, key, words):
    path = write(tmp_path, BASE + body)
    with pytest.raises(ConfigError) as info:
        load_tariff_file(path)
    assert info.value.file == str(path)
    assert info.value.key == key
    assert words in str(info.value)


def test_gst_defaults_to_18_percent_and_a_bad_currency_is_named(tmp_path):
    tariff = load_tariff_file(write(tmp_path, '[tariff]\nid = "x"\n[[tariff.element]]\nflat = 1\n'))
    assert tariff["elements"][0]["price_components"][0]["vat"] == 18
    with pytest.raises(ConfigError, match="tariff.currency"):
        load_tariff_file(write(tmp_path, BASE + 'currency = "rupee"\n[[tariff.element]]\nflat = 1\n'))
    with pytest.raises(ConfigError, match="tariff.gst_percent: out of range"):
        load_tariff_file(write(tmp_path, BASE.replace("18", "180") + "[[tariff.element]]\nflat = 1\n"))


def test_an_edited_tariff_file_looks_changed_to_partners(tmp_path):
    import os

    path = write(tmp_path, BASE + "[[tariff.element]]\nflat = 1\n")
    os.utime(path, (1_780_000_000, 1_780_000_000))
    assert load_tariff_file(path)["last_updated"] == "2026-05-28T20:26:40Z"
    os.utime(path, (1_780_086_400, 1_780_086_400))
    assert load_tariff_file(path)["last_updated"] == "2026-05-29T20:26:40Z"
    pinned = write(tmp_path, BASE + 'last_updated = "2026-02-01T00:00:00Z"\n[[tariff.element]]\nflat = 1\n')
    assert load_tariff_file(pinned)["last_updated"] == "2026-02-01T00:00:00Z"


def test_broken_files(tmp_path):
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_tariff_file(write(tmp_path, "[tariff\n"))
    with pytest.raises(ConfigError, match="not valid JSON"):
        load_tariff_file(write(tmp_path, "{", "t.json"))
    with pytest.raises(ConfigError, match="file not found"):
        load_tariff_file(tmp_path / "nope.json")
    with pytest.raises(ConfigError) as info:
        load_tariff_file(write(tmp_path, json.dumps({"currency": "INR", "elements": [
            {"price_components": [{"type": "ENERGY", "price": 1, "step_size": 1}],
             "restrictions": {"day_of_week": ["FUNDAY"]}}]}), "t.json"))
    assert info.value.key == "elements[0].restrictions.day_of_week[0]"
    assert "MONDAY" in str(info.value)


def test_round_trip_toml_ocpi_toml(tmp_path):
    for name in ("flat.toml", "time_of_day.toml", "idle_fee.toml"):
        data = load_tariff_file(EXAMPLES / name)
        again = tariff_from_toml(__import__("tomllib").loads(tariff_to_toml(data)), "again.toml")
        assert again == data


def test_restrictions_map_to_ocpi(tmp_path):
    data = load_tariff_file(write(tmp_path, BASE + """
[[tariff.element]]
energy_per_kwh = 10
days = ["SATURDAY", "SUNDAY"]
start_time = "06:00"
end_time = "10:00"
min_kwh = 1.5
max_power_kw = 7.4
min_current_a = 6
max_duration_s = 3600
"""))
    assert data["elements"][0]["restrictions"] == {
        "start_time": "06:00", "end_time": "10:00", "day_of_week": ["SATURDAY", "SUNDAY"],
        "min_kwh": 1.5, "max_power": 7.4, "min_current": 6, "max_duration": 3600}


def test_cdr_periods_without_time_dimensions_use_timestamps():
    cdr = {"end_date_time": "2026-01-05T11:00:00Z", "charging_periods": [
        {"start_date_time": "2026-01-05T10:00:00Z",
         "dimensions": [{"type": "ENERGY", "volume": 7.4}, {"type": "MAX_POWER", "volume": 7.4}]},
        {"start_date_time": "2026-01-05T10:40:00Z", "dimensions": [{"type": "ENERGY", "volume": 0}]}]}
    first, second = periods_from_cdr(cdr)
    assert (first.energy_wh, first.time_s, first.parking_s, first.max_power_w) == (7400, 2400, 0, 7400)
    assert (second.time_s, second.parking_s) == (0, 1200)
    with pytest.raises(ConfigError, match="charging_periods"):
        periods_from_cdr({"charging_periods": []})


def test_zone_offsets():
    assert zone_offset("Asia/Kolkata")(0) == 19800
    berlin = zone_offset("Europe/Berlin")
    assert berlin(1774746000 - 1) == 3600 and berlin(1774746000) == 7200  # 2026-03-29 01:00Z
    with pytest.raises(ConfigError, match="unknown time zone"):
        zone_offset("Mars/Olympus")


def test_toml_tariff_prices_like_its_ocpi_twin():
    data = load_tariff_file(EXAMPLES / "idle_fee.toml")
    # 10 kWh (17.50) + 5 start + 42 min idle billed per 5 min = 45 min at 60/h = 45
    # -> 175 + 5 + 45 = 225 excl; +18 % = 265.50
    cost = price_periods(data, [(0, {"energy_wh": 10000, "time_s": 4865}),
                                (4865, {"parking_s": 42 * 60})], 19800)
    assert (cost.total_excl_u, cost.total_paise) == (2250000, 26550)


def test_cdr_reservation_time_becomes_reservation_seconds():
    cdr = {"end_date_time": "2019-06-03T11:00:00Z", "charging_periods": [
        {"start_date_time": "2019-06-03T10:00:00Z",
         "dimensions": [{"type": "RESERVATION_TIME", "volume": 0.25}]},
        {"start_date_time": "2019-06-03T10:15:00Z", "dimensions": [{"type": "ENERGY", "volume": 2}]}]}
    first, second = periods_from_cdr(cdr)
    # a reservation period is not charging or parking, whatever its timestamps span
    assert (first.reservation_s, first.time_s, first.parking_s, first.energy_wh) == (900, 0, 0, 0)
    assert (second.reservation_s, second.time_s, second.energy_wh) == (0, 2700, 2000)
    cdr["charging_periods"][0]["dimensions"][0]["volume"] = -0.25
    with pytest.raises(ConfigError, match="negative RESERVATION_TIME"):
        periods_from_cdr(cdr, "c.json")
