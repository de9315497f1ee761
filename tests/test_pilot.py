"""Pilot backends: the simulated car, the no-pilot socket mode and LinuxPilot on a fake sysfs."""
from __future__ import annotations

import asyncio

import pytest

from drivers.pilot import LinuxPilot, NonePilot, PilotError, PilotEvent, SimPilot, classify
from drivers.relay import SimRelay

# ----- SimPilot and its car ---------------------------------------------------------------

async def test_sim_car_script_walks_the_states():
    relay = SimRelay()
    pilot = SimPilot(relay=relay, car_max_current_a=16)
    events = []
    pilot.add_listener(events.append)
    car = pilot.car
    assert pilot.state == "A"
    car.plug_in()
    car.request_power()
    assert pilot.state == "B"  # no PWM yet: a well-behaved car waits in B
    await pilot.set_offered_current(32)
    assert pilot.state == "C"
    car.vent()
    assert pilot.state == "D"
    await pilot.set_offered_current(0)
    assert pilot.state == "B"
    await pilot.set_offered_current(10)
    car.pause()
    assert pilot.state == "B"
    car.error_e()
    assert pilot.state == "E"
    car.unplug()
    assert pilot.state == "A"
    assert [e.state for e in events] == ["B", "C", "D", "B", "D", "B", "E", "A"]
    assert events[0] == PilotEvent("B", "A", False)


async def test_sim_car_draws_min_of_offer_and_its_max_only_with_contacts_closed():
    relay = SimRelay()
    pilot = SimPilot(relay=relay, car_max_current_a=16)
    draws = []
    pilot.add_draw_listener(draws.append)
    pilot.car.plug_in()
    pilot.car.request_power()
    await pilot.set_offered_current(32)
    assert pilot.draw_a == 0  # contactor still open
    await relay.close()
    assert pilot.draw_a == 16
    await pilot.set_offered_current(10)
    assert pilot.draw_a == 10
    pilot.car.pause()
    assert pilot.draw_a == 0
    pilot.car.request_power()
    await relay.open()
    assert draws == [16, 10, 0, 10, 0]
    await pilot.release()
    await relay.release()


async def test_sim_diode_fault_is_flagged_while_connected():
    pilot = SimPilot()
    events = []
    pilot.add_listener(events.append)
    pilot.car.plug_in()
    pilot.car.diode_fault()
    assert pilot.diode_fault and pilot.state == "B"
    assert events[-1] == PilotEvent("B", "B", True)
    pilot.car.unplug()
    assert not pilot.diode_fault


async def test_offer_limits_are_enforced():
    pilot = SimPilot(max_current_a=32)
    with pytest.raises(PilotError) as err:
        await pilot.set_offered_current(40)
    assert err.value.code == "pilot-current-above-limit"
    with pytest.raises(PilotError) as err:
        await pilot.set_offered_current(3)
    assert err.value.code == "pilot-current-out-of-range"
    assert pilot.offered_current_a == 0


async def test_gap_offer_is_reported_as_what_the_car_reads():
    pilot = SimPilot()
    await pilot.set_offered_current(52)
    assert pilot.offered_current_a == 51.0
    assert pilot.duty_pct == 85.0


async def test_a_broken_listener_does_not_hide_the_event_from_others():
    pilot = SimPilot()
    seen = []
    pilot.add_listener(lambda e: 1 / 0)
    pilot.add_listener(seen.append)
    pilot.car.plug_in()
    assert seen and seen[0].state == "B"


# ----- NonePilot ----------------------------------------------------------------------------

async def test_none_pilot_has_no_state_and_records_the_limit():
    pilot = NonePilot(max_current_a=16)
    assert pilot.has_pilot is False
    assert pilot.state is None and pilot.state_text == "no pilot"
    await pilot.set_offered_current(3.5)  # no PWM table for a socket outlet
    assert pilot.offered_current_a == 3.5
    with pytest.raises(PilotError):
        await pilot.set_offered_current(20)
    async with pilot:
        assert pilot.state is None


# ----- LinuxPilot on a fake sysfs -------------------------------------------------------------

class FakeSysfs:
    """A sysfs tree with one PWM chip and an IIO ADC whose raw values the test sets."""

    # 12-bit ADC, 3.3 V reference: scale in mV per count, as the kernel reports it.
    SCALE_MV = 0.805664062
    GAIN = 5.0  # board divider: pilot 12 V -> ADC 2.4 V ... re-centred by the offset below
    OFFSET_V = -1.0

    def __init__(self, root, *, exported=False):
        self.root = root
        self.chip = root / "class/pwm/pwmchip0"
        self.chip.mkdir(parents=True)
        (self.chip / "export").write_text("")
        self.pwm = self.chip / "pwm0"
        if exported:
            self._make_pwm()
        self.iio = root / "bus/iio/devices/iio:device0"
        self.iio.mkdir(parents=True)
        (self.iio / "in_voltage_scale").write_text(f"{self.SCALE_MV}\n")
        self.set_v(0, 12.0)
        self.set_v(1, -12.0)

    def _make_pwm(self):
        self.pwm.mkdir()
        for name, value in (("period", "0"), ("duty_cycle", "0"), ("enable", "0")):
            (self.pwm / name).write_text(value + "\n")

    def export_written(self):
        if (self.chip / "export").read_text().strip() == "0" and not self.pwm.exists():
            self._make_pwm()

    def set_v(self, channel, pilot_v):
        adc_v = (pilot_v - self.OFFSET_V) / self.GAIN
        raw = round(adc_v * 1000 / self.SCALE_MV)
        (self.iio / f"in_voltage{channel}_raw").write_text(f"{raw}\n")

    def read(self, name):
        return (self.pwm / name).read_text().strip()



def make_linux(fs, **kw):
    settings = dict(sysfs_root=fs.root, adc_channel=0, adc_negative_channel=1, adc_gain=FakeSysfs.GAIN,
                    adc_offset_v=FakeSysfs.OFFSET_V, max_current_a=32)
    settings.update(kw)
    return LinuxPilot(**settings)


@pytest.fixture
def fs(tmp_path):
    return FakeSysfs(tmp_path, exported=True)


async def test_linux_start_sets_1khz_steady_high_and_reads_a(fs):
    pilot = make_linux(fs)
    await pilot.start()
    try:
        assert fs.read("period") == "1000000"
        assert fs.read("duty_cycle") == "1000000"
        assert fs.read("enable") == "1"
        assert pilot.state == "A"
        assert pilot.last_voltage_v == pytest.approx(12.0, abs=0.02)
        await pilot.set_offered_current(16)
        assert fs.read("duty_cycle") == "266667"
        await pilot.set_offered_current(0)
        assert fs.read("duty_cycle") == "1000000"
        await pilot.set_offered_current(16)
    finally:
        await pilot.release()
    assert fs.read("duty_cycle") == "1000000"
    assert pilot.offered_current_a == 0


async def test_linux_inverted_output(fs):
    pilot = make_linux(fs, pwm_inverted=True)
    await pilot.start()
    await pilot.set_offered_current(6)
    assert fs.read("duty_cycle") == "900000"
    await pilot.release()
    assert fs.read("duty_cycle") == "0"


async def test_linux_exports_the_channel_when_missing(tmp_path, monkeypatch):
    fs = FakeSysfs(tmp_path, exported=False)
    real_write = LinuxPilot._write

    def write_and_export(self, path, value):
        real_write(self, path, value)
        if path.name == "export":
            fs.export_written()

    monkeypatch.setattr(LinuxPilot, "_write", write_and_export)
    pilot = make_linux(fs)
    await pilot.start()
    assert fs.read("enable") == "1"
    await pilot.release()


async def test_linux_missing_chip_is_a_clear_error(tmp_path):
    pilot = LinuxPilot(sysfs_root=tmp_path, pwmchip=3)
    with pytest.raises(PilotError, match="pwmchip3") as err:
        await pilot.start()
    assert err.value.code == "pilot-unavailable"


async def test_linux_offer_before_start_is_refused(fs):
    pilot = make_linux(fs)
    with pytest.raises(PilotError) as err:
        await pilot.set_offered_current(16)
    assert err.value.code == "pilot-not-started"


async def test_linux_states_with_hysteresis_and_diode_check(fs):
    pilot = make_linux(fs)
    events = []
    pilot.add_listener(events.append)
    await pilot.start()
    try:
        await pilot.set_offered_current(16)
        for volts, expected in [(10.2, "A"), (9.0, "B"), (10.8, "B"), (11.2, "A"), (9.0, "B"),
                                (6.1, "C"), (7.8, "C"), (3.0, "D"), (0.0, "E"), (-12.0, "F"), (12.0, "A")]:
            fs.set_v(0, volts)
            assert await pilot.sample() == expected, volts
        assert not pilot.diode_fault
        fs.set_v(0, 6.0)
        fs.set_v(1, -6.0)  # negative plateau follows the positive one: no diode
        assert await pilot.sample() == "C"
        assert pilot.diode_fault
        assert events[-1] == PilotEvent("C", "A", True)
        fs.set_v(1, -11.8)
        await pilot.sample()
        assert not pilot.diode_fault
    finally:
        await pilot.release()


async def test_linux_no_diode_verdict_without_pwm(fs):
    pilot = make_linux(fs)
    await pilot.start()
    fs.set_v(0, 9.0)
    fs.set_v(1, 0.0)  # no PWM: nothing on the negative half to judge
    await pilot.sample()
    assert pilot.state == "B" and not pilot.diode_fault
    await pilot.release()


async def test_linux_sampler_task_reports_changes_and_an_unreadable_adc_as_e(fs):
    pilot = make_linux(fs, sample_interval_ms=1)
    changed = asyncio.Event()
    seen = []

    def on_event(event):
        seen.append(event.state)
        changed.set()

    pilot.add_listener(on_event)
    await pilot.start()
    try:
        fs.set_v(0, 9.0)
        await asyncio.wait_for(changed.wait(), 2)
        assert seen == ["B"]
        changed.clear()
        (fs.iio / "in_voltage0_raw").unlink()
        await asyncio.wait_for(changed.wait(), 2)
        assert pilot.state == "E"
    finally:
        await pilot.release()


def test_classify_edges():
    assert classify(12.0) == "A"
    assert classify(10.49) == "B"
    assert classify(-5.9) == "E"
    assert classify(-6.1) == "F"
    assert classify(10.4, "A") == "A"
    assert classify(9.9, "A") == "B"
