"""The factory self-test passes on the simulated board and fails for each injected fault."""
from __future__ import annotations

import asyncio

import pytest

import tools.cli
from board.build import build_board
from board.profile import load_profile
from board.selftest import FAIL, PASS, SKIP, format_table, passed, run_selftest


class FakeClock:
    def __init__(self):
        self.now = 100.0

    def __call__(self):
        return self.now

    async def sleep(self, seconds):
        self.now += seconds
        await asyncio.sleep(0)


def by_name(results):
    return {r.name: r for r in results}


async def selftest_on(profile="sim", setup=None, **kw):
    clock = FakeClock()
    async with build_board(profile, clock=clock, sleep=clock.sleep) as board:
        if setup:
            setup(board)
        results = await run_selftest(board, **kw)
        assert board.relay.closed is False  # always left open
        return results


def sim_variant(tmp_path, *replacements):
    text = load_profile("sim").path.read_text()
    for old, new in replacements:
        assert old in text
        text = text.replace(old, new)
    path = tmp_path / "variant.toml"
    path.write_text(text)
    return path


async def test_passes_on_sim_and_reports_the_serial():
    results = await selftest_on()
    assert passed(results)
    checks = by_name(results)
    assert [r.status for r in results] == [PASS] * 4
    assert "serial 10000001" in checks["meter answers"].detail
    assert "230.0/230.0/230.0 V" in checks["meter answers"].detail
    table = format_table(results)
    assert "self-test PASS: 4 passed, 0 failed" in table


async def test_welded_relay_fails_on_opening():
    def weld(board):
        board.sim.relay.weld()

    results = await selftest_on(setup=weld)
    checks = by_name(results)
    assert checks["relay closes"].status == PASS
    assert checks["relay opens"].status == FAIL
    assert "welded" in checks["relay opens"].detail
    assert not passed(results)


async def test_jammed_relay_fails_on_closing():
    results = await selftest_on(setup=lambda b: b.sim.relay.jam())
    checks = by_name(results)
    assert checks["relay closes"].status == FAIL
    assert "still open" in checks["relay closes"].detail


async def test_silent_meter_fails(tmp_path):
    path = sim_variant(tmp_path, ('model = "sdm630"', 'model = "sdm630"\ntimeout_ms = 50\nretries = 0'))

    def silence(board):
        board.sim.server.silent = True

    results = await selftest_on(path, setup=silence)
    checks = by_name(results)
    assert checks["meter answers"].status == FAIL
    assert "meter-no-answer" in checks["meter answers"].detail
    assert checks["relay opens"].status == PASS  # the rest still runs
    assert not passed(results)


async def test_implausible_mains_fails():
    def brownout(board):
        board.sim.server.voltage_v = [150.0, 230.0, 230.0]

    checks = by_name(await selftest_on(setup=brownout))
    assert checks["meter answers"].status == FAIL
    assert "L1 150.0 V" in checks["meter answers"].detail


async def test_car_plugged_in_fails_and_relay_is_not_switched():
    switched = []

    def plug(board):
        board.sim.car.plug_in()
        board.relay.add_listener(switched.append)

    results = await selftest_on(setup=plug)
    checks = by_name(results)
    assert checks["pilot reads A"].status == FAIL
    assert "state B" in checks["pilot reads A"].detail and "unplug" in checks["pilot reads A"].detail
    assert checks["relay closes"].status == SKIP
    assert switched == []
    assert not passed(results)


async def test_pilot_error_fails_and_an_empty_socket_has_no_diode_to_judge():
    def fault(board):
        board.sim.car.diode_missing = True  # a fault on the empty socket side, state stays A

    checks = by_name(await selftest_on(setup=fault))
    assert checks["pilot reads A"].status == PASS  # unplugged: no diode to judge
    checks = by_name(await selftest_on(setup=lambda b: b.sim.car.error_e()))
    assert checks["pilot reads A"].status == FAIL and "state E" in checks["pilot reads A"].detail


async def test_relay_without_feedback_passes_with_a_note(tmp_path):
    path = sim_variant(tmp_path, ("feedback = true", "feedback = false"))
    checks = by_name(await selftest_on(path))
    assert checks["relay opens"].status == PASS
    assert "no feedback contact" in checks["relay opens"].detail


def cli(argv):
    saved = tools.cli.COMMAND_MODULES
    tools.cli.COMMAND_MODULES = ("selftest_cmd", "board_cmd")
    try:
        return tools.cli.main(argv)
    finally:
        tools.cli.COMMAND_MODULES = saved


def test_cli_selftest_passes_on_sim(capsys):
    assert cli(["selftest"]) == 0
    out = capsys.readouterr().out
    assert "relay fail-safe" in out
    assert "self-test PASS" in out


def test_cli_selftest_without_gpio_hardware_exits_1(capsys):
    # The real gpiod module against a machine with no /dev/gpiochip0.
    import glob

    if glob.glob("/dev/gpiochip0"):
        pytest.skip("this machine has a gpiochip0; the failure path needs one missing")
    assert cli(["selftest", "--board", "usb-rs485-sbc"]) == 1
    err = capsys.readouterr().err
    assert "relay-unavailable" in err and "/dev/gpiochip0" in err


def test_cli_selftest_bad_profile_exits_2(tmp_path, capsys):
    path = tmp_path / "bad.toml"
    path.write_text(load_profile("sim").path.read_text().replace('backend = "sim"\nswitch', 'backend = "x"\nswitch'))
    assert cli(["selftest", "--board", str(path)]) == 2
    assert "relay.backend" in capsys.readouterr().err


async def test_unreachable_meter_is_a_failed_row_not_an_aborted_run(tmp_path):
    """A hardware profile whose RS-485 port is missing still tests relay and pilot."""
    from test_relay import FakeGpio

    text = load_profile("usb-rs485-sbc").path.read_text().replace("/dev/ttyUSB0", str(tmp_path / "ttyNone"))
    text = text.replace("timeout_ms = 500", "timeout_ms = 50").replace("retries = 2", "retries = 0")
    path = tmp_path / "sbc.toml"
    path.write_text(text)
    gpio = FakeGpio()
    async with build_board(path, gpio_request_lines=gpio.request_lines, connect_meter=False) as board:
        checks = by_name(await run_selftest(board))
    assert checks["meter answers"].status == FAIL
    assert "meter-link-down" in checks["meter answers"].detail or "meter-no-answer" in checks["meter answers"].detail
    assert checks["pilot reads A"].status == SKIP
    assert checks["relay closes"].status == PASS and "no feedback contact" in checks["relay closes"].detail
    assert gpio.last.released
