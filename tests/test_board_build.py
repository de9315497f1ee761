"""build_board end to end: real Modbus client against the simulated meter, coupled to car and relay."""
from __future__ import annotations

import asyncio

import pytest

from board.build import build_board
from board.profile import load_profile
from drivers.meter import EnergyMeter
from drivers.pilot import NonePilot
from drivers.relay import RelayError


class FakeClock:
    def __init__(self):
        self.now = 5000.0

    def __call__(self):
        return self.now

    def advance(self, seconds):
        self.now += seconds

    async def sleep(self, seconds):
        self.now += seconds
        await asyncio.sleep(0)


async def test_sim_board_relay_and_car_drive_the_meter():
    clock = FakeClock()
    async with build_board("sim", clock=clock, sleep=clock.sleep) as board:
        assert isinstance(board.meter, EnergyMeter)
        assert board.profile.name == "sim"
        assert board.relay is board.sim.relay and board.pilot is board.sim.pilot
        idle = await board.meter.read()
        assert idle.current_a == (0.0, 0.0, 0.0)
        assert idle.voltage_v[0] == pytest.approx(230, abs=1)

        car = board.sim.car
        car.plug_in()
        car.request_power()
        await board.pilot.set_offered_current(32)
        assert board.pilot.state == "C"
        # car in C but the contactor open: nothing flows
        assert (await board.meter.read()).current_a == (0.0, 0.0, 0.0)

        await board.relay.close()
        charging = await board.meter.read()
        assert charging.current_a == pytest.approx((16.0, 16.0, 16.0), abs=0.01)  # car max 16 A
        assert charging.power_w == pytest.approx(3 * 230 * 16, rel=0.01)

        clock.advance(1800)  # half an hour at 11.04 kW
        later = await board.meter.read()
        gained_wh = later.energy_import_wh - charging.energy_import_wh
        assert gained_wh == pytest.approx(5520, abs=20)

        await board.pilot.set_offered_current(10)
        assert (await board.meter.read()).current_a == pytest.approx((10.0, 10.0, 10.0), abs=0.01)

        await board.relay.open()
        clock.advance(600)
        stopped = await board.meter.read()
        assert stopped.current_a == (0.0, 0.0, 0.0)
        # the 10 A were never integrated over time: energy stands where it was
        assert stopped.energy_import_wh == pytest.approx(later.energy_import_wh, abs=2)
        await board.relay.close()
        relay = board.relay
    assert relay.closed is False and relay.released
    assert relay.contacts_closed is False
    with pytest.raises(RelayError):
        await relay.close()


async def test_sim_board_single_phase_car_on_three_phase_meter(tmp_path):
    text = load_profile("sim").path.read_text().replace("car_phases = 3", "car_phases = 1")
    path = tmp_path / "sim1.toml"
    path.write_text(text)
    async with build_board(path) as board:
        board.sim.car.plug_in()
        board.sim.car.request_power()
        await board.pilot.set_offered_current(16)
        await board.relay.close()
        reading = await board.meter.read()
        assert reading.current_a == pytest.approx((16.0, 0.0, 0.0), abs=0.01)


async def test_gpiod_board_with_fake_gpio_and_sim_meter(tmp_path):
    """A hardware-style relay profile, built with a fake gpiod request and the simulated meter."""
    from test_relay import FakeGpio

    text = (load_profile("usb-rs485-sbc").path.read_text()
            .replace('backend = "modbus-rtu"', 'backend = "sim"'))
    # a sim meter takes no link settings
    lines = [ln for ln in text.splitlines()
             if not ln.split("=")[0].strip() in ("device", "baudrate", "parity", "stopbits", "unit_id", "timeout_ms", "retries")]
    path = tmp_path / "sbc.toml"
    path.write_text("\n".join(lines))
    gpio = FakeGpio()
    async with build_board(path, gpio_request_lines=gpio.request_lines) as board:
        assert isinstance(board.pilot, NonePilot) and board.pilot.state is None
        assert board.sim.car is None
        request = gpio.last
        assert request.chip == "/dev/gpiochip0" and 17 in request.config
        await board.relay.close()
        assert request.values[17].name == "ACTIVE"
    assert request.released and request.values[17].name == "INACTIVE"


async def test_failed_start_cleans_up_and_reports_the_cause():
    from test_relay import FakeGpio

    gpio = FakeGpio(fail=OSError(16, "Device or resource busy"))
    profile = load_profile("usb-rs485-sbc")
    with pytest.raises(RelayError, match="busy"):
        async with build_board(profile, gpio_request_lines=gpio.request_lines):
            pass


async def test_cm4_profile_on_fake_gpio_and_fake_sysfs_passes_the_selftest(tmp_path):
    """The CM4 carrier profile as shipped, with the hardware swapped for fakes and a sim meter."""
    from test_pilot import FakeSysfs
    from test_relay import FakeGpio

    from board.selftest import PASS, run_selftest

    fs = FakeSysfs(tmp_path / "sys", exported=True)
    fs.GAIN, fs.OFFSET_V = 7.2727, -12.0  # the profile's conditioning
    fs.set_v(0, 12.0)
    fs.set_v(1, -12.0)
    text = load_profile("cm4-carrier").path.read_text()
    text = text.replace('backend = "modbus-rtu"', 'backend = "sim"')
    lines = [ln for ln in text.splitlines()
             if ln.split("=")[0].strip() not in ("device", "baudrate", "parity", "stopbits", "unit_id")]
    text = "\n".join(lines).replace("[pilot]\nbackend = \"linux\"", f"[pilot]\nbackend = \"linux\"\nsysfs_root = \"{fs.root}\"")
    path = tmp_path / "cm4.toml"
    path.write_text(text)
    gpio = FakeGpio()
    clock = FakeClock()
    async with build_board(path, clock=clock, sleep=clock.sleep, gpio_request_lines=gpio.request_lines) as board:
        assert board.pilot.state == "A"
        assert fs.read("period") == "1000000" and fs.read("enable") == "1"
        results = await run_selftest(board)
        assert [r.status for r in results] == [PASS] * 4, results
        await board.pilot.set_offered_current(32)
        assert fs.read("duty_cycle") == "533333"
    assert fs.read("duty_cycle") == "1000000"
    assert gpio.last.released
