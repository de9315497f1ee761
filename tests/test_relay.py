"""Relay conformance: every backend opens, closes, reports feedback and fails safe alike."""
from __future__ import annotations

import asyncio
import glob
import os

import pytest
from gpiod.line import Direction, Value

from drivers.relay import Relay, RelayError, SimRelay
from drivers.relay.gpiod_relay import GpiodRelay


class FakeClock:
    """Monotonic seconds that only move when the code under test sleeps."""

    def __init__(self):
        self.now = 1000.0
        self.slept_s = 0.0

    def __call__(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.now += seconds
        self.slept_s += seconds
        await asyncio.sleep(0)


class FakeRequest:
    """Stands in for a gpiod LineRequest on a board whose mirror contact follows the coil."""

    def __init__(self, chip, config, consumer):
        self.chip = chip
        self.config = config
        self.consumer = consumer
        self.values = {}
        self.outputs = [k for k, s in config.items() if s.direction == Direction.OUTPUT]
        self.inputs = [k for k, s in config.items() if s.direction == Direction.INPUT]
        for line in self.outputs:
            self.values[line] = config[line].output_value
        self.released = False
        self.welded = False
        self.contacts = self.values[self.outputs[0]] == Value.ACTIVE
        self.fail_io = False
        self.writes = []

    def set_value(self, line, value):
        if self.released:
            raise OSError("request released")
        if self.fail_io:
            raise OSError(5, "Input/output error")
        self.writes.append((line, value))
        self.values[line] = value
        self.contacts = value == Value.ACTIVE or (self.welded and self.contacts)

    def get_value(self, line):
        if self.released:
            raise OSError("request released")
        if line in self.inputs:
            return Value.ACTIVE if self.contacts else Value.INACTIVE
        return self.values[line]

    def release(self):
        self.released = True
        if not self.welded:
            self.contacts = False  # the board's pull-down takes the undriven line to open


class FakeGpio:
    def __init__(self, *, fail: Exception | None = None):
        self.requests: list[FakeRequest] = []
        self.fail = fail

    def request_lines(self, chip, config, consumer=None):
        if self.fail:
            raise self.fail
        request = FakeRequest(chip, config, consumer)
        self.requests.append(request)
        return request

    @property
    def last(self) -> FakeRequest:
        return self.requests[-1]


def make_sim(clock, feedback=True):
    relay = SimRelay(clock=clock, sleep=clock.sleep, settle_ms=50, has_feedback=feedback)
    return relay, relay.weld


def make_gpiod(clock, feedback=True):
    gpio = FakeGpio()
    relay = GpiodRelay(
        chip="/dev/gpiochip0",
        line=17,
        feedback_line=27 if feedback else None,
        request_lines=gpio.request_lines,
        clock=clock,
        sleep=clock.sleep,
        settle_ms=50,
    )

    def weld():
        gpio.last.welded = True

    return relay, weld


BACKENDS = {"sim": make_sim, "gpiod": make_gpiod}


@pytest.fixture(params=sorted(BACKENDS))
def backend(request):
    return BACKENDS[request.param]


@pytest.fixture
def clock():
    return FakeClock()


async def test_starts_open_and_switches_both_ways(backend, clock):
    relay, _ = backend(clock)
    async with relay:
        assert isinstance(relay, Relay)
        assert relay.closed is False
        assert relay.feedback is False
        await relay.close()
        assert relay.closed is True
        assert await relay.wait_settled() is True
        assert relay.feedback is True
        await relay.open()
        assert relay.closed is False
        assert await relay.wait_settled() is True
        assert relay.feedback is False


async def test_release_leaves_it_open_and_refuses_to_close(backend, clock):
    relay, _ = backend(clock)
    await relay.start()
    await relay.close()
    await relay.release()
    assert relay.closed is False
    assert relay.released
    with pytest.raises(RelayError) as err:
        await relay.close()
    assert err.value.code == "relay-released"
    await relay.open()  # always allowed
    await relay.release()  # idempotent


async def test_welded_contacts_are_caught_by_the_settle_check(backend, clock):
    relay, weld = backend(clock)
    async with relay:
        await relay.close()
        weld()
        await relay.open()
        assert relay.closed is False
        assert relay.feedback is True
        started = clock.now
        assert await relay.wait_settled(timeout_ms=200) is False
        assert clock.now - started == pytest.approx(0.2, abs=0.01)


async def test_without_feedback_settle_cannot_check(backend, clock):
    relay, _ = backend(clock, feedback=False)
    async with relay:
        assert relay.has_feedback is False
        assert relay.feedback is None
        await relay.close()
        assert await relay.wait_settled() is True
        assert clock.slept_s == 0


async def test_listeners_hear_changes_only_and_a_broken_one_does_not_stop_opening(backend, clock):
    relay, _ = backend(clock)
    heard = []

    def broken(closed):
        raise RuntimeError("status publisher down")

    relay.add_listener(broken)
    relay.add_listener(heard.append)
    async with relay:
        await relay.close()
        await relay.close()
        await relay.open()
        await relay.open()
    assert heard == [True, False]
    assert relay.closed is False and relay.released


async def test_sim_switch_delay_goes_through_injected_sleep(clock):
    relay = SimRelay(switch_delay_ms=40, clock=clock, sleep=clock.sleep)
    moved = []
    relay.add_contact_listener(moved.append)
    await relay.close()
    assert clock.slept_s == pytest.approx(0.04)
    assert relay.contacts_closed and moved == [True]
    await relay.release()
    assert moved == [True, False]


async def test_sim_jammed_contactor_never_closes(clock):
    relay = SimRelay(clock=clock, sleep=clock.sleep)
    relay.jam()
    await relay.close()
    assert relay.closed is True and relay.feedback is False
    assert await relay.wait_settled(timeout_ms=30) is False
    relay.repair()
    await relay.open()
    await relay.close()
    assert relay.feedback is True
    await relay.release()


async def test_sim_weld_then_repair(clock):
    relay = SimRelay(clock=clock, sleep=clock.sleep)
    relay.weld()
    await relay.close()
    await relay.open()
    assert relay.contacts_closed
    relay.repair()
    await relay.close()
    await relay.open()
    assert not relay.contacts_closed


# ----- GpiodRelay specifics ---------------------------------------------------------------

async def test_gpiod_requests_output_inactive_with_active_low_and_feedback_input(clock):
    gpio = FakeGpio()
    relay = GpiodRelay(
        chip="/dev/gpiochip2", line="RELAY_EN", active_low=True, feedback_line="RELAY_FB",
        feedback_active_low=True, consumer="urja-test", request_lines=gpio.request_lines,
        clock=clock, sleep=clock.sleep,
    )
    await relay.start()
    req = gpio.last
    assert req.chip == "/dev/gpiochip2" and req.consumer == "urja-test"
    out = req.config["RELAY_EN"]
    assert out.direction == Direction.OUTPUT
    assert out.active_low is True
    assert out.output_value == Value.INACTIVE
    fb = req.config["RELAY_FB"]
    assert fb.direction == Direction.INPUT and fb.active_low is True
    assert req.writes == []  # nothing driven until asked
    await relay.close()
    assert req.writes == [("RELAY_EN", Value.ACTIVE)]
    await relay.release()
    assert req.writes[-1] == ("RELAY_EN", Value.INACTIVE)
    assert req.released


async def test_gpiod_request_failure_names_chip_and_line(clock):
    gpio = FakeGpio(fail=OSError(2, "No such file or directory"))
    relay = GpiodRelay(chip="/dev/gpiochip9", line=5, request_lines=gpio.request_lines)
    with pytest.raises(RelayError) as err:
        await relay.start()
    assert err.value.code == "relay-unavailable"
    assert "/dev/gpiochip9" in str(err.value) and "5" in str(err.value)


async def test_gpiod_close_before_start_refuses_and_stays_open():
    gpio = FakeGpio()
    relay = GpiodRelay(chip="/dev/gpiochip0", line=5, request_lines=gpio.request_lines)
    with pytest.raises(RelayError) as err:
        await relay.close()
    assert err.value.code == "relay-not-started"
    assert relay.closed is False
    await relay.open()  # harmless before start


async def test_gpiod_write_error_during_close_reports_and_leaves_command_open(clock):
    gpio = FakeGpio()
    relay = GpiodRelay(chip="/dev/gpiochip0", line=5, request_lines=gpio.request_lines,
                       clock=clock, sleep=clock.sleep)
    await relay.start()
    gpio.last.fail_io = True
    with pytest.raises(RelayError) as err:
        await relay.close()
    assert err.value.code == "relay-io"
    assert relay.closed is False
    gpio.last.fail_io = False
    await relay.release()
    assert gpio.last.released


def test_gpiod_rejects_feedback_on_the_output_line():
    with pytest.raises(ValueError):
        GpiodRelay(chip="/dev/gpiochip0", line=5, feedback_line=5)


def test_importing_the_relay_package_does_not_load_gpiod():
    import subprocess
    import sys

    code = "import sys, drivers.relay; print('gpiod' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


@pytest.mark.hardware
async def test_gpiod_on_a_real_chip():
    """Opt-in: URJA_TEST_GPIO=/dev/gpiochipN:LINE names a spare, unconnected line."""
    chips = sorted(glob.glob("/dev/gpiochip*"))
    if not chips:
        pytest.skip("no /dev/gpiochip* on this machine")
    spec = os.environ.get("URJA_TEST_GPIO")
    if not spec:
        pytest.skip("set URJA_TEST_GPIO=/dev/gpiochipN:LINE to a spare line to run")
    chip, _, line = spec.rpartition(":")
    relay = GpiodRelay(chip=chip, line=int(line) if line.isdigit() else line)
    async with relay:
        await relay.close()
        assert relay.closed
        await relay.open()
    assert relay.released
