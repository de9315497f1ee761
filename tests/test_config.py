"""Site configuration: the example loads, and each kind of mistake names file, key and what is allowed."""
from __future__ import annotations

from pathlib import Path

import pytest

from agent.config import load_config, utc_offset_s
from drivers.configfile import ConfigError

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "urja.toml"


def test_example_config_loads():
    cfg = load_config(EXAMPLE)
    assert cfg.site_id == "in.blr.koramangala.demo-1"
    assert cfg.place.timezone == "Asia/Kolkata"
    assert cfg.board_profile == "sim"
    assert cfg.tariff_file == EXAMPLE.parent / "tariffs" / "flat.toml"


def _write(tmp_path, text):
    p = tmp_path / "urja.toml"
    p.write_text(text)
    return p


BASE = """
[site]
id = "x"
name = "n"
[site.place]
lat = 12.9
lon = 77.6
"""


@pytest.mark.parametrize(
    "extra, key, fragment",
    [
        ('[charging]\nauth = "coins"\n', "charging.auth", "free_vend, allow_list, network"),
        ('[charging]\nauth = "allow_list"\n', "charging.allow_tokens", "at least one token"),
        ('[charging]\nmeter_poll_ms = 50\n', "charging.meter_poll_ms", "100 to 10000"),
        ('[charging]\nmeter_timeout_ms = 900\n', "charging.meter_timeout_ms", "must exceed"),
        ('[charging]\nmeter_timeout_ms = 20000\n', "charging.meter_timeout_ms", "500 to 10000"),
        ('[payment]\nupi_vpa = "owner"\n', "payment.upi_vpa", "name@bank"),
        ('[board]\nprofiel = "sim"\n', "board.profiel", "unknown key"),
        ("[journal]\npath = 3\n", "journal.path", "must be a string"),
        ("[socket]\nplug_hold_ms = 100000\n", "socket.plug_hold_ms", "0 to 60000"),
        ("[socket]\nplug_current_a = 0.5\nfinish_current_a = 2\n", "socket.finish_current_a", "must not exceed"),
        ("[socket]\nplug_current_a = \"low\"\n", "socket.plug_current_a", "number"),
        ("[safety]\novercurrent_margin_pct = 50\n", "safety.overcurrent_margin_pct", "0 to 20"),
        ("[safety]\nmeter_timeout_ms = 2000\n", "safety.meter_timeout_ms", "unknown key"),
    ],
)
def test_bad_values_name_file_key_and_allowed(tmp_path, extra, key, fragment):
    path = _write(tmp_path, BASE + extra)
    with pytest.raises(ConfigError) as info:
        load_config(path)
    err = info.value
    assert err.file == str(path)
    assert err.key == key
    assert fragment in str(err)


def test_socket_and_safety_tables_reach_the_core(tmp_path):
    cfg = load_config(_write(tmp_path, BASE + "[socket]\nplug_current_a = 1.0\nplug_hold_ms = 3000\n"
                                               "[safety]\novercurrent_margin_pct = 15\nweld_settle_ms = 1500\n"))
    assert cfg.socket_settings == {"plug_current_a": 1.0, "plug_hold_ms": 3000}
    assert cfg.safety_settings == {"overcurrent_margin_pct": 15, "weld_settle_ms": 1500}
    assert load_config(_write(tmp_path, BASE)).safety_settings == {}


def test_without_a_charging_table_nobody_charges_for_free(tmp_path):
    cfg = load_config(_write(tmp_path, BASE))
    assert cfg.auth_mode == "network"


def test_bad_place(tmp_path):
    path = _write(tmp_path, BASE.replace("lat = 12.9", "lat = 123.0"))
    with pytest.raises(ConfigError, match=r"site\.place\.lat: out of range.*-90 to 90"):
        load_config(path)
    path = _write(tmp_path, BASE + 'timezone = "Asia/Bangalore"\n')
    with pytest.raises(ConfigError, match=r"site\.place\.timezone: unknown time zone"):
        load_config(path)


def test_missing_file_and_bad_toml(tmp_path):
    with pytest.raises(ConfigError, match="file not found"):
        load_config(tmp_path / "nope.toml")
    path = _write(tmp_path, "[site\nid=")
    with pytest.raises(ConfigError, match="not valid TOML"):
        load_config(path)


def test_utc_offset_at_the_edge():
    assert utc_offset_s("Asia/Kolkata", 1_700_000_000) == 19800
    # Europe/Berlin: +1 h in January, +2 h in July
    assert utc_offset_s("Europe/Berlin", 1_704_067_200) == 3600
    assert utc_offset_s("Europe/Berlin", 1_719_792_000) == 7200
