"""Board profiles: the built-ins load, and broken ones fail naming file, key and allowed values."""
from __future__ import annotations

import pytest

import tools.cli
from board.profile import PROFILES_DIR, list_profiles, load_profile
from drivers.configfile import ConfigError

CM4 = (PROFILES_DIR / "cm4-carrier.toml").read_text()
SIM = (PROFILES_DIR / "sim.toml").read_text()
USB = (PROFILES_DIR / "usb-rs485-sbc.toml").read_text()


def test_builtins_are_listed_and_load():
    assert {"sim", "usb-rs485-sbc", "cm4-carrier"} <= set(list_profiles())
    for name in list_profiles():
        profile = load_profile(name)
        assert profile.name == name
        assert profile.fail_safe.strip()


def test_cm4_profile_contents():
    p = load_profile("cm4-carrier")
    assert (p.meter.backend, p.meter_model, p.phases) == ("modbus-rtu", "sdm630", 3)
    assert p.meter.options["device"] == "/dev/ttyAMA0"
    assert p.relay.options["line"] == "CONTACTOR_EN" and p.relay.options["feedback_line"] == "CONTACTOR_FB"
    assert p.pilot.backend == "linux" and p.pilot.options["adc_negative_channel"] == 1


def test_usb_profile_contents():
    p = load_profile("usb-rs485-sbc")
    assert p.meter.options["device"] == "/dev/ttyUSB0" and p.meter_model == "sdm120"
    assert p.relay.options["line"] == 17 and p.relay.options["feedback_line"] is None
    assert p.pilot.backend == "none"


def test_sim_is_the_default_and_loads_by_path():
    assert load_profile().name == "sim"
    assert load_profile(PROFILES_DIR / "sim.toml").name == "sim"


BROKEN = {
    "unknown relay backend": (CM4, 'backend = "gpiod"', 'backend = "mqtt"', "relay.backend", ["gpiod", "sim"]),
    "unknown pilot backend": (CM4, 'backend = "linux"', 'backend = "can"', "pilot.backend", ["none", "linux", "sim"]),
    "unknown meter backend": (CM4, 'backend = "modbus-rtu"', 'backend = "mbus"', "meter.backend", ["modbus-rtu", "modbus-tcp", "sim"]),
    "unknown meter model": (CM4, 'model = "sdm630"', 'model = "sdm999"', "meter.model", ["sdm630", "sdm120"]),
    "misspelt key": (CM4, "active_low = false", "activ_low = false", "relay.activ_low", ["active_low"]),
    "fail_safe renamed": (USB, "fail_safe = ", "comment = ", "relay.fail_safe", []),
    "bad baud rate": (CM4, "baudrate = 9600", "baudrate = 9601", "meter.baudrate", ["9600", "115200"]),
    "bad parity": (CM4, 'parity = "N"', 'parity = "X"', "meter.parity", ["N, E, O"]),
    "line as a float": (USB, "line = 17", "line = 17.5", "relay.line", []),
    "current too high": (CM4, "max_current_a = 32", "max_current_a = 100", "board.max_current_a", ["1.0 to 80.0"]),
    "two phases": (CM4, "phases = 3", "phases = 2", "board.phases", ["1, 3"]),
    "single-phase meter on three phases": (SIM, 'model = "sdm630"', 'model = "sdm120"', "meter.model", ["sdm630"]),
    "feedback on the output line": (CM4, 'feedback_line = "CONTACTOR_FB"', 'feedback_line = "CONTACTOR_EN"', "relay.feedback_line", []),
    "unknown table": (SIM, "[pilot]", "[pilots]\nx = 1\n[pilot]", "pilots", ["board", "meter", "pilot", "relay"]),
    "missing table": (USB, '[pilot]\nbackend = "none"', "", "pilot", []),
}


@pytest.mark.parametrize("case", sorted(BROKEN))
def test_broken_profile_names_file_key_and_allowed(tmp_path, case):
    base, old, new, key, allowed = BROKEN[case]
    assert old in base, "test setup: the replaced text must be in the profile"
    path = tmp_path / "broken.toml"
    path.write_text(base.replace(old, new, 1))
    with pytest.raises(ConfigError) as err:
        load_profile(path)
    assert err.value.file == str(path)
    assert err.value.key == key
    for word in allowed:
        assert word in (err.value.allowed or ""), (word, err.value.allowed)
    assert str(path) in str(err.value) and key in str(err.value)


def test_missing_fail_safe_on_gpiod_relay(tmp_path):
    path = tmp_path / "nofs.toml"
    start = USB.index("fail_safe =")
    end = USB.index("[pilot]")
    path.write_text(USB[:start] + USB[end:])
    with pytest.raises(ConfigError) as err:
        load_profile(path)
    assert err.value.key == "relay.fail_safe"
    assert "missing" in err.value.problem


def test_not_toml_and_unknown_name(tmp_path):
    path = tmp_path / "bad.toml"
    path.write_text("[board\n")
    with pytest.raises(ConfigError, match="not valid TOML") as err:
        load_profile(path)
    assert err.value.file == str(path)
    with pytest.raises(ConfigError) as err:
        load_profile("no-such-board")
    assert "sim" in err.value.allowed and "cm4-carrier" in err.value.allowed


def main(argv):
    """The real ``urja`` entry point, with only this area's sub-commands loaded."""
    saved = tools.cli.COMMAND_MODULES
    tools.cli.COMMAND_MODULES = ("selftest_cmd", "board_cmd")
    try:
        return tools.cli.main(argv)
    finally:
        tools.cli.COMMAND_MODULES = saved


def test_cli_board_check_ok(capsys):
    assert main(["board", "check", "cm4-carrier"]) == 0
    out = capsys.readouterr().out
    assert "profile OK" in out and "CONTACTOR_EN" in out and "normally-open" in out


def test_cli_board_check_bad_exits_2_naming_file_key_allowed(tmp_path, capsys):
    path = tmp_path / "typo.toml"
    path.write_text(CM4.replace('backend = "gpiod"', 'backend = "gpio"'))
    assert main(["board", "check", str(path)]) == 2
    err = capsys.readouterr().err
    assert str(path) in err and "relay.backend" in err and "allowed: sim, gpiod" in err


def test_cli_board_list(capsys):
    assert main(["board", "list"]) == 0
    out = capsys.readouterr().out
    for name in ("sim", "usb-rs485-sbc", "cm4-carrier"):
        assert name in out
