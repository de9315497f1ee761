"""The Modbus meter driver against SimMeterServer: real pymodbus server and client, real
sockets (TCP loopback) and real serial ptys (socat) with RTU framing and CRC."""
from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys

import pytest

from drivers.configfile import ConfigError
from drivers.meter import (
    MeterEnergyBackwards,
    MeterEnergyJump,
    MeterExceptionResponse,
    MeterFrameError,
    MeterImplausible,
    MeterLinkDown,
    MeterNoAnswer,
    MeterReading,
    make_meter,
)
from drivers.meter.bus import ModbusBus
from drivers.meter.simserver import SimMeterServer


class FakeClock:
    def __init__(self, start_s: float = 1000.0):
        self.now_s = start_s

    def __call__(self) -> float:
        return self.now_s

    def advance(self, seconds: float) -> None:
        self.now_s += seconds


async def wait_until(predicate, timeout_s: float = 5.0) -> None:
    async def poll():
        while not predicate():
            await asyncio.sleep(0.01)

    await asyncio.wait_for(poll(), timeout_s)


@pytest.fixture
def clock():
    return FakeClock()


@pytest.fixture
async def tcp_meter(clock):
    """An SDM630 simulator on an ephemeral loopback port and a driver connected to it."""
    sim = SimMeterServer("sdm630", clock=clock, serial_number="40512345")
    port = await sim.start_tcp()
    meter = make_meter(model="sdm630", transport="tcp", host="127.0.0.1", port=port, clock=clock,
                       timeout_ms=100, retries=2)
    await meter.connect()
    yield sim, meter
    await meter.close()
    await sim.stop()


@pytest.fixture
async def pty_pair(tmp_path):
    if shutil.which("socat") is None:
        pytest.skip("socat is not installed; it links the two ptys the RTU tests talk over")
    a, b = tmp_path / "master", tmp_path / "meter"
    proc = subprocess.Popen(["socat", "-d", "-d", f"pty,raw,echo=0,link={a}", f"pty,raw,echo=0,link={b}"],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        await wait_until(lambda: a.exists() and b.exists())
        yield str(a), str(b)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=5)


# ------------------------------------------------------------------------------- TCP


async def test_reading_over_tcp_integrates_energy_on_the_injected_clock(tcp_meter, clock):
    sim, meter = tcp_meter
    first = await meter.read()
    assert first.energy_import_wh == 0
    assert first.voltage_v == (230.0, 230.0, 230.0) and first.frequency_hz == 50.0
    assert meter.serial == "40512345" and first.serial == "40512345"
    sim.current_a = [16.0, 16.0, 16.0]
    clock.advance(3600.0)
    second = await meter.read()
    assert second.energy_import_wh == 11040  # 3 x 230 V x 16 A for one hour
    assert second.power_w == pytest.approx(11040.0)
    assert second.current_a == (16.0, 16.0, 16.0)
    assert second.meter_time_s == clock.now_s
    assert second.quality == frozenset({"ok"})
    health = meter.health
    assert health.healthy and health.good_reads == 2 and not any(health.counts.values())


async def test_poll_uses_the_planned_number_of_transactions(tcp_meter):
    sim, meter = tcp_meter
    before = sim.requests
    await meter.read()
    assert sim.requests - before == meter.plan.transactions == 2


async def test_silent_meter_gives_no_answer_after_bounded_retries(tcp_meter):
    sim, meter = tcp_meter
    await meter.read()
    sim.silent = True
    before = sim.requests
    with pytest.raises(MeterNoAnswer) as info:
        await meter.read()
    assert info.value.code == "meter-no-answer"
    assert sim.requests - before == 3  # first attempt + retries=2, then it gives up
    health = meter.health
    assert health.counts["meter-no-answer"] == 3
    assert health.consecutive_failures == 1 and not health.healthy
    sim.silent = False
    await meter.read()
    assert meter.health.healthy


async def test_modbus_exception_is_reported_with_its_code(tcp_meter):
    sim, meter = tcp_meter
    sim.exception_code = 2
    before = sim.requests
    with pytest.raises(MeterExceptionResponse) as info:
        await meter.read()
    assert info.value.exception_code == 2 and info.value.code == "meter-modbus-exception"
    assert sim.requests - before == 1  # an illegal address does not get better by asking again
    sim.exception_code = 6  # device busy: worth the bounded retries
    before = sim.requests
    with pytest.raises(MeterExceptionResponse):
        await meter.read()
    assert sim.requests - before == 3


async def test_nan_in_a_quantity_is_implausible(tcp_meter):
    sim, meter = tcp_meter
    sim.nan = "voltage_l2"
    with pytest.raises(MeterImplausible) as info:
        await meter.read()
    assert info.value.details["quantity"] == "voltage_l2"
    assert meter.health.counts["meter-implausible"] == 1


async def test_out_of_range_voltage_is_implausible(tcp_meter):
    sim, meter = tcp_meter
    sim.voltage_v = [230.0, 415.0, 230.0]  # a phase-to-phase value where phase-to-neutral belongs
    with pytest.raises(MeterImplausible) as info:
        await meter.read()
    assert info.value.details["reason"] == "range"


async def test_energy_register_going_backwards_is_a_fault(tcp_meter, clock):
    sim, meter = tcp_meter
    sim.energy_import_wh = 5000.0
    await meter.read()
    sim.energy_backwards_wh = 40.0
    clock.advance(1.0)
    with pytest.raises(MeterEnergyBackwards) as info:
        await meter.read()
    assert info.value.details["previous_wh"] == 5000 and info.value.details["energy_wh"] == 4960


async def test_energy_jump_beyond_measured_power_is_a_fault(tcp_meter, clock):
    sim, meter = tcp_meter
    sim.current_a = [10.0, 0.0, 0.0]  # 2.3 kW
    await meter.read()
    clock.advance(10.0)  # 2.3 kW for 10 s is 6.4 Wh
    sim.energy_import_wh = sim.energy_import_wh + 2000.0
    with pytest.raises(MeterEnergyJump) as info:
        await meter.read()
    assert info.value.details["energy_wh"] - info.value.details["previous_wh"] >= 2000
    clock.advance(10.0)
    await meter.read()  # reported once; the baseline moved on
    assert meter.health.counts["meter-energy-jump"] == 1


async def test_steady_charging_never_trips_the_jump_check(tcp_meter, clock):
    sim, meter = tcp_meter
    sim.current_a = [32.0, 32.0, 32.0]
    for _ in range(20):
        clock.advance(1.0)
        await meter.read()
    assert meter.health.consecutive_failures == 0 and meter.health.counts["meter-energy-jump"] == 0


async def test_a_stall_after_the_meter_answered_is_never_taken_for_an_energy_jump(tcp_meter, clock):
    """The meter samples its registers when it answers; the driver may hear the answer only
    later (a busy event loop, a slow link). Energy accrued during that stall shows up in the
    next poll and is explained by the time since the previous question, not since the
    previous poll ended."""
    sim, meter = tcp_meter
    sim.current_a = [32.0, 32.0, 32.0]  # about 22 kW
    await meter.read()
    stall_s = {"each_read": 15.0}
    bus_read = meter._bus.read

    async def answer_heard_late(*args, **kwargs):
        answer = await bus_read(*args, **kwargs)  # the meter sampled and answered
        clock.advance(stall_s["each_read"])  # time passes before the driver hears it
        return answer

    meter._bus.read = answer_heard_late
    clock.advance(1.0)
    await meter.read()  # every read of this poll is heard 15 s after the meter sampled it
    stall_s["each_read"] = 0.0
    clock.advance(1.0)
    await meter.read()  # at least 15 s of energy since the last sample, 1 s since the poll ended
    assert meter.health.counts["meter-energy-jump"] == 0 and meter.health.consecutive_failures == 0


async def test_energy_drawn_while_the_meter_did_not_answer_is_not_a_jump(tcp_meter, clock):
    """Both good readings show no load, but between them a contactor closed, a car drew 22 kW
    and the contactor opened again while every poll went unanswered: that energy is real."""
    sim, meter = tcp_meter
    await meter.read()  # 0 W
    sim.silent = True
    sim.current_a = [32.0, 32.0, 32.0]
    with pytest.raises(MeterNoAnswer):
        await meter.read()
    clock.advance(10.0)  # about 61 Wh at 22 kW
    sim.current_a = [0.0, 0.0, 0.0]
    sim.silent = False
    reading = await meter.read()  # 0 W again
    assert reading.energy_import_wh >= 60 and meter.health.counts["meter-energy-jump"] == 0


async def test_energy_drawn_while_nobody_polled_is_not_a_jump(tcp_meter, clock):
    """A stalled poll loop: no poll failed, but none ran for 8 s, in which a contactor closed,
    a car drew 22 kW and the contactor opened again; both readings either side show no load."""
    sim, meter = tcp_meter
    await meter.read()  # 0 W
    sim.current_a = [32.0, 32.0, 32.0]
    clock.advance(8.0)  # about 49 Wh at 22 kW, unwatched
    sim.current_a = [0.0, 0.0, 0.0]
    reading = await meter.read()  # 0 W again
    assert reading.energy_import_wh >= 45 and meter.health.counts["meter-energy-jump"] == 0


async def test_a_leap_between_close_readings_at_no_load_is_still_a_jump(tcp_meter, clock):
    sim, meter = tcp_meter
    await meter.read()
    clock.advance(1.0)
    sim.energy_import_wh = sim.energy_import_wh + 30.0  # 30 Wh in a second with nothing drawing
    with pytest.raises(MeterEnergyJump):
        await meter.read()


async def test_a_jump_across_unanswered_polls_is_still_a_fault(tcp_meter, clock):
    sim, meter = tcp_meter
    await meter.read()
    sim.silent = True
    with pytest.raises(MeterNoAnswer):
        await meter.read()
    clock.advance(10.0)
    sim.silent = False
    sim.energy_import_wh = sim.energy_import_wh + 2000.0  # no installation draws 720 kW
    with pytest.raises(MeterEnergyJump):
        await meter.read()


async def test_power_above_v_times_i_is_flagged_suspect(tcp_meter):
    sim, meter = tcp_meter
    sim.current_a = [10.0, 10.0, 10.0]
    sim.power_factor = 1.5  # no real load does this; a wrong CT or register does
    reading = await meter.read()
    assert "suspect" in reading.quality


async def test_garbled_tcp_answer_is_a_frame_error(tcp_meter):
    sim, meter = tcp_meter
    sim.corrupt = True
    with pytest.raises(MeterFrameError):
        await meter.read()
    sim.corrupt = False
    await meter.read()


async def test_two_unit_ids_share_one_tcp_link(clock):
    sim1 = SimMeterServer("sdm630", clock=clock, unit_id=1)
    sim2 = SimMeterServer("em340", clock=clock, unit_id=2)
    sim1.add_neighbour(sim2)
    port = await sim1.start_tcp()
    bus = ModbusBus(transport="tcp", host="127.0.0.1", port=port, timeout_ms=200, retries=1, clock=clock)
    m1 = make_meter(model="sdm630", transport="tcp", unit_id=1, bus=bus, clock=clock)
    m2 = make_meter(model="em340", transport="tcp", unit_id=2, bus=bus, clock=clock)
    try:
        await m1.connect()
        await m2.connect()
        sim1.current_a = [6.0, 6.0, 6.0]
        sim2.current_a = [20.0, 0.0, 0.0]
        r1, r2 = await asyncio.gather(m1.read(), m2.read())
        assert r1.current_a == (6.0, 6.0, 6.0)
        assert r2.current_a == (20.0, 0.0, 0.0)
        sim2.silent = True
        with pytest.raises(MeterNoAnswer):
            await m2.read()
        assert (await m1.read()).current_a == (6.0, 6.0, 6.0)  # one silent meter does not block the other
    finally:
        await m1.close()
        await m2.close()
        await sim1.stop()


async def test_unreachable_meter_is_link_down(unused_tcp_port):
    meter = make_meter(model="sdm120", transport="tcp", host="127.0.0.1", port=unused_tcp_port, timeout_ms=200)
    with pytest.raises(MeterLinkDown):
        await meter.connect()
    assert meter.health.counts["meter-link-down"] == 1
    await meter.close()


# ------------------------------------------------------------------------------- RTU


async def test_rtu_over_a_pty_pair(pty_pair, clock):
    master, slave = pty_pair
    sim = SimMeterServer("sdm120", clock=clock, serial_number="22000123", unit_id=1)
    await sim.start_serial(slave, baudrate=9600)
    meter = make_meter(model="sdm120", transport="rtu", device=master, baudrate=9600, unit_id=1,
                       timeout_ms=300, retries=1, clock=clock)
    try:
        await meter.connect()
        sim.current_a = [16.0]
        clock.advance(1800.0)
        reading = await meter.read()
        assert reading.voltage_v == (230.0,) and reading.current_a == (16.0,)
        assert meter.serial == "22000123"
        clock.advance(1800.0)
        assert (await meter.read()).energy_import_wh == 3680
    finally:
        await meter.close()
        await sim.stop()


async def test_rtu_corrupted_frames_are_crc_errors(pty_pair, clock):
    master, slave = pty_pair
    sim = SimMeterServer("abb_b23", clock=clock, unit_id=1)
    await sim.start_serial(slave, baudrate=19200)
    meter = make_meter(model="abb_b23", transport="rtu", device=master, baudrate=19200, unit_id=1,
                       timeout_ms=200, retries=1, clock=clock)
    try:
        await meter.connect()
        await meter.read()
        sim.corrupt = True
        with pytest.raises(MeterFrameError) as info:
            await meter.read()
        assert info.value.details["crc"] is True
        assert meter.health.counts["meter-frame-error"] == 2  # both attempts were garbled
        sim.corrupt = False
        sim.silent = True
        with pytest.raises(MeterNoAnswer):
            await meter.read()
    finally:
        await meter.close()
        await sim.stop()


async def test_two_meters_with_different_unit_ids_share_one_rs485_bus(pty_pair, clock):
    master, slave = pty_pair
    sim1 = SimMeterServer("sdm630", clock=clock, unit_id=3)
    sim2 = SimMeterServer("iem3155", clock=clock, unit_id=7)
    sim1.add_neighbour(sim2)
    await sim1.start_serial(slave, baudrate=38400)
    bus = ModbusBus(transport="rtu", device=master, baudrate=38400, timeout_ms=300, retries=1, clock=clock)
    m1 = make_meter(model="sdm630", transport="rtu", unit_id=3, bus=bus, clock=clock)
    m2 = make_meter(model="iem3155", transport="rtu", unit_id=7, bus=bus, clock=clock)
    try:
        await m1.connect()
        await m2.connect()
        sim1.current_a = [8.0, 8.0, 8.0]
        sim2.current_a = [0.0, 12.0, 0.0]
        r1, r2 = await asyncio.gather(m1.read(), m2.read())  # the bus lock keeps frames apart
        assert r1.current_a == (8.0, 8.0, 8.0)
        assert r2.current_a == (0.0, 12.0, 0.0)
        assert bus.transactions == 2 + m1.plan.transactions + m2.plan.transactions  # + the two serial reads
    finally:
        await m1.close()
        await m2.close()
        await sim1.stop()


# ------------------------------------------------------------------------------- contract


def test_reading_is_immutable_and_validated():
    reading = MeterReading(energy_import_wh=10, power_w=0.0, voltage_v=(230.0,), current_a=(0.0,),
                           frequency_hz=None, meter_time_s=1.0)
    with pytest.raises(AttributeError):
        reading.energy_import_wh = 11
    with pytest.raises(ValueError):
        MeterReading(energy_import_wh=10, power_w=0.0, voltage_v=(230.0, 230.0), current_a=(0.0, 0.0),
                     frequency_hz=None, meter_time_s=1.0)
    with pytest.raises(TypeError):
        MeterReading(energy_import_wh=10.5, power_w=0.0, voltage_v=(230.0,), current_a=(0.0,),
                     frequency_hz=None, meter_time_s=1.0)
    with pytest.raises(ValueError, match="unknown quality"):
        MeterReading(energy_import_wh=10, power_w=0.0, voltage_v=(230.0,), current_a=(0.0,),
                     frequency_hz=None, meter_time_s=1.0, quality=frozenset({"fine"}))


def test_make_meter_rejects_bad_settings():
    with pytest.raises(ValueError, match="allowed: tcp, rtu"):
        make_meter(model="sdm630", transport="udp")
    with pytest.raises(ValueError, match="parity"):
        make_meter(model="sdm630", transport="rtu", device="/dev/null", parity="X")
    with pytest.raises(ValueError, match="host and port"):
        make_meter(model="sdm630", transport="tcp")
    with pytest.raises(ConfigError):
        make_meter(model="no-such-meter", transport="tcp", host="h", port=1)


def test_factory_opens_nothing_and_imports_no_modbus_library():
    code = (
        "import sys\n"
        "from drivers.meter import make_meter\n"
        "m = make_meter(model='sdm630', transport='rtu', device='/dev/does-not-exist')\n"
        "assert 'pymodbus' not in sys.modules, 'pymodbus imported before connect()'\n"
        "assert 'serial' not in sys.modules\n"
    )
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                            cwd=os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    assert result.returncode == 0, result.stderr


def test_simulator_rejects_a_wrong_phase_count_clearly(clock):
    sim = SimMeterServer("sdm630", clock=clock)
    sim.current_a = 10.0  # one number: every phase
    assert sim.current_a == [10.0, 10.0, 10.0]
    with pytest.raises(ValueError, match="3 value"):
        sim.current_a = [16.0]
    clock.advance(360.0)
    sim.current_a = [0.0, 0.0, 0.0]  # energy accrued before the change is kept
    clock.advance(360.0)
    assert sim.energy_import_wh == pytest.approx(690.0)


async def test_missing_serial_port_is_link_down(tmp_path):
    meter = make_meter(model="sdm120", transport="rtu", device=str(tmp_path / "ttyUSB9"), timeout_ms=100)
    with pytest.raises(MeterLinkDown):
        await meter.connect()
    await meter.close()
