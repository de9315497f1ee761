"""``urja tariff check|show|price`` through the real command entry point."""
import json
from pathlib import Path

import pytest

import tools.cli

ROOT = Path(__file__).parent.parent
EXAMPLES = ROOT / "examples" / "tariffs"
OCPI = Path(__file__).parent / "data" / "ocpi_tariffs"


@pytest.fixture(autouse=True)
def only_tariff_command(monkeypatch):
    """Build the parser from this command alone, so these tests do not depend on other commands."""
    monkeypatch.setattr(tools.cli, "COMMAND_MODULES", ("tariff_cmd",))


def test_check_valid(capsys):
    assert tools.cli.main(["tariff", "check", str(EXAMPLES / "time_of_day.toml")]) == 0
    out = capsys.readouterr().out
    assert "valid tariff 'time-of-day'" in out and "3 element(s)" in out


def test_check_invalid_names_file_key_and_allowed(tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_text('[tariff]\nid = "x"\ngst_percent = 18\n[[tariff.element]]\n'
                    'energy_per_kwh = 1\ndays = ["FUNDAY"]\n')
    assert tools.cli.main(["tariff", "check", str(path)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "tariff.element[0].days" in err and "MONDAY" in err


def test_check_ocpi_json(capsys):
    assert tools.cli.main(["tariff", "check", str(OCPI / "complex.tariff.json")]) == 0
    assert "PARKING_TIME" in capsys.readouterr().out


def test_show_in_words_with_examples(capsys):
    assert tools.cli.main(["tariff", "show", str(EXAMPLES / "time_of_day.toml")]) == 0
    out = capsys.readouterr().out
    assert "INR 22.50 per kWh + 18 % tax -- from 18:00 to 22:00" in out
    # 10 kWh from 18:30 at 7.4 kW ends before 22:00: 10 x 22.50 = 225 + 18 % = 265.50
    assert "10 kWh evening charge at 7.4 kW from 18:30: INR 265.50" in out
    # 3 kWh at 10:00 at 16/kWh = 48 + 18 % = 56.64
    assert "3 kWh light-EV charge at 3.3 kW from 10:00: INR 56.64" in out


def test_show_other_zone_shifts_the_examples(capsys):
    assert tools.cli.main(["tariff", "show", str(EXAMPLES / "time_of_day.toml"),
                           "--tz", "Europe/Berlin"]) == 0
    assert "(times are local, Europe/Berlin)" in capsys.readouterr().out
    assert tools.cli.main(["tariff", "show", str(EXAMPLES / "flat.toml"), "--tz", "Nowhere/X"]) == 2
    assert "unknown time zone" in capsys.readouterr().err


def test_price_recomputes_cdr(capsys):
    assert tools.cli.main(["tariff", "price", str(OCPI / "complex.tariff.json"),
                           str(OCPI / "complex.saturday.cdr.json")]) == 0
    out = json.loads(capsys.readouterr().out)
    # the 71 parking minutes exceed the 6 added by the charging time's rounding (114 -> 120
    # min), so all of them are billed, per 5 min: 75 min
    assert out["total_cost"] == {"excl_vat": 12.5, "incl_vat": 14.125}
    assert out["total_parking_cost"] == {"excl_vat": 7.5, "incl_vat": 8.25}
    assert out["total_fixed_cost"] == {"excl_vat": 2.5, "incl_vat": 2.875}
    assert out["total_energy"] == 30.0
    assert out["total_parking_time"] == pytest.approx(71 / 60)
    assert set(out) >= {"total_energy_cost", "total_time", "total_time_cost"}


def test_price_zone_changes_time_of_day(capsys):
    # 09:30 UTC on a Monday is 15:00 in Kolkata: parking from 11:57 UTC starts at 17:27 IST,
    # still inside 09:00-18:00, so the same total as in UTC.
    assert tools.cli.main(["tariff", "price", str(OCPI / "complex.tariff.json"),
                           str(OCPI / "complex.monday.cdr.json"), "--tz", "Asia/Kolkata"]) == 0
    assert json.loads(capsys.readouterr().out)["total_cost"]["excl_vat"] == 8.75


def test_price_bad_cdr(tmp_path, capsys):
    cdr = tmp_path / "cdr.json"
    cdr.write_text(json.dumps({"charging_periods": [{"start_date_time": "yesterday",
                                                      "dimensions": []}]}))
    assert tools.cli.main(["tariff", "price", str(OCPI / "complex.tariff.json"), str(cdr)]) == 2
    err = capsys.readouterr().err
    assert str(cdr) in err and "charging_periods[0].start_date_time" in err


def test_price_reservation_cdr_reports_reservation_cost(capsys):
    args = ["tariff", "price", str(OCPI / "reservation_expire_fee.tariff.json"),
            str(OCPI / "reservation_expire_fee.expired_1h.cdr.json")]
    assert tools.cli.main(args) == 0
    out = json.loads(capsys.readouterr().out)
    # expiration fee 4.00 + 1 h x 2.00 = 6.00, +20 % = 7.20
    assert out["total_reservation_cost"] == {"excl_vat": 6.0, "incl_vat": 7.2}
    assert out["total_cost"] == {"excl_vat": 6.0, "incl_vat": 7.2}
    assert out["reservation_expired"] is True
    # told it was cancelled instead: no expiration fee
    assert tools.cli.main(args + ["--reservation", "used"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["total_reservation_cost"] == {"excl_vat": 2.0, "incl_vat": 2.4}
    assert out["reservation_expired"] is False


def test_price_session_cdr_told_expired_is_an_error(capsys):
    assert tools.cli.main(["tariff", "price", str(OCPI / "reservation_5hour.tariff.json"),
                           str(OCPI / "reservation_5hour.15min_20kwh.cdr.json"),
                           "--reservation", "expired"]) == 2
    err = capsys.readouterr().err
    assert "reservation_expired" in err and "followed by a session" in err


def test_price_without_reservation_has_no_reservation_keys(capsys):
    assert tools.cli.main(["tariff", "price", str(OCPI / "025kwh_start.tariff.json"),
                           str(OCPI / "025kwh_start.20kwh.cdr.json")]) == 0
    out = json.loads(capsys.readouterr().out)
    assert "total_reservation_cost" not in out and "reservation_expired" not in out


def test_show_describes_reservation_elements(capsys):
    assert tools.cli.main(["tariff", "show", str(OCPI / "reservation_expire_fee.tariff.json"),
                           "--tz", "UTC"]) == 0
    out = capsys.readouterr().out
    assert "EUR 4.00 per reservation + 20 % tax -- for a reservation that expires unused" in out
    assert "EUR 2.00 per hour reserved (billed per 600 s) + 20 % tax -- for a reservation" in out
