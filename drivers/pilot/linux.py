"""Pilot wired to the SoC: PWM from the kernel PWM class, voltage through an IIO ADC.

Expected hardware: a PWM output (1 kHz) driving the +/-12 V pilot stage, and an ADC channel
that sees the pilot's *positive* plateau through a divider (most designs feed it from a peak
detector or sample it synchronously). An optional second ADC channel sees the *negative*
plateau and enables the diode check. ``adc_gain`` and ``adc_offset_v`` undo the board's
conditioning: ``pilot_v = adc_v * adc_gain + adc_offset_v`` where ``adc_v`` is the IIO value
``(raw + offset) * scale`` converted from millivolts.

Only sysfs files are touched, under ``sysfs_root`` (default ``/sys``), so tests run against a
fake tree. A background task named ``pilot-sampler`` reads the ADC every
``sample_interval_ms``; ``sample()`` does one reading on demand.
"""
from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Awaitable, Callable

from drivers.pilot.base import ControlPilot, PilotError, log
from drivers.pilot.duty import NO_PWM_DUTY

# Lower edge of each state's band (volts), highest first; below the last edge is F.
# The edges sit midway between the nominal levels 12/9/6/3/0 V; E spans the invalid
# region down to -6 V, where a -12 V plateau (F) begins.
_EDGES = (("A", 10.5), ("B", 7.5), ("C", 4.5), ("D", 1.5), ("E", -6.0))
_BANDS = {}
_upper = float("inf")
for _state, _lower in _EDGES:
    _BANDS[_state] = (_lower, _upper)
    _upper = _lower
_BANDS["F"] = (float("-inf"), _upper)
del _state, _lower, _upper

# A healthy diode keeps the negative plateau near -12 V; without it the car's resistors pull
# it towards the positive level's magnitude (about -9 V in B). Anything above this is a fault.
DIODE_OK_BELOW_V = -10.5


def classify(voltage_v: float, current: str | None = None, *, hysteresis_v: float = 0.5) -> str:
    """Pilot state for a positive-plateau voltage, staying in ``current`` near its edges.

    Hysteresis keeps a reading that wanders around an edge (noise, a car's resistor at the
    tolerance limit) from flapping between two states.
    """
    if current in _BANDS:
        low, high = _BANDS[current]
        if low - hysteresis_v <= voltage_v < high + hysteresis_v:
            return current
    for state, low in _EDGES:
        if voltage_v >= low:
            return state
    return "F"


class LinuxPilot(ControlPilot):
    def __init__(
        self,
        *,
        sysfs_root: str | Path = "/sys",
        pwmchip: int = 0,
        pwm_channel: int = 0,
        pwm_inverted: bool = False,
        frequency_hz: int = 1000,
        iio_device: int = 0,
        adc_channel: int = 0,
        adc_negative_channel: int | None = None,
        adc_gain: float = 1.0,
        adc_offset_v: float = 0.0,
        hysteresis_v: float = 0.5,
        sample_interval_ms: int = 10,
        max_current_a: float = 80.0,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ):
        super().__init__(max_current_a=max_current_a)
        if frequency_hz <= 0 or sample_interval_ms <= 0:
            raise ValueError("frequency_hz and sample_interval_ms must be positive")
        root = Path(sysfs_root)
        self.pwm_chip_dir = root / "class" / "pwm" / f"pwmchip{pwmchip}"
        self.pwm_channel = pwm_channel
        self.pwm_dir = self.pwm_chip_dir / f"pwm{pwm_channel}"
        self.pwm_inverted = pwm_inverted
        self.period_ns = round(1_000_000_000 / frequency_hz)
        self.iio_dir = root / "bus" / "iio" / "devices" / f"iio:device{iio_device}"
        self.adc_channel = adc_channel
        self.adc_negative_channel = adc_negative_channel
        self.adc_gain = adc_gain
        self.adc_offset_v = adc_offset_v
        self.hysteresis_v = hysteresis_v
        self.sample_interval_ms = sample_interval_ms
        self._sleep = sleep
        self._duty_pct = NO_PWM_DUTY
        self._scale: dict[int, tuple[float, float]] = {}
        self._task: asyncio.Task | None = None
        self._started = False
        self._sample_failing = False
        self.last_voltage_v: float | None = None
        self.last_negative_v: float | None = None

    # ----- sysfs ----------------------------------------------------------------------------
    def _write(self, path: Path, value) -> None:
        try:
            path.write_text(f"{value}\n")
        except OSError as exc:
            raise PilotError(f"cannot write {value!r} to {path}: {exc}", code="pilot-io", path=str(path)) from exc

    def _read(self, path: Path) -> str:
        try:
            return path.read_text().strip()
        except OSError as exc:
            raise PilotError(f"cannot read {path}: {exc}", code="pilot-io", path=str(path)) from exc

    def _channel_scale(self, channel: int) -> tuple[float, float]:
        """(offset, scale) for a channel: per-channel files win over the shared ones."""
        if channel not in self._scale:
            values = []
            for name, default in (("offset", 0.0), ("scale", None)):
                candidates = (self.iio_dir / f"in_voltage{channel}_{name}", self.iio_dir / f"in_voltage_{name}")
                found = next((p for p in candidates if p.exists()), None)
                if found is None:
                    if default is None:
                        raise PilotError(
                            f"no in_voltage{channel}_scale or in_voltage_scale in {self.iio_dir}",
                            code="pilot-unavailable",
                        )
                    values.append(default)
                else:
                    values.append(self._number(found))
            self._scale[channel] = (values[0], values[1])
        return self._scale[channel]

    def _number(self, path: Path) -> float:
        text = self._read(path)
        try:
            return float(text)
        except ValueError:
            raise PilotError(f"{path} holds {text!r}, not a number", code="pilot-io", path=str(path)) from None

    def read_voltage(self, channel: int) -> float:
        """Pilot volts seen on one ADC channel, board conditioning undone."""
        offset, scale = self._channel_scale(channel)
        raw = self._number(self.iio_dir / f"in_voltage{channel}_raw")
        adc_v = (raw + offset) * scale / 1000.0
        return adc_v * self.adc_gain + self.adc_offset_v

    def _write_duty(self, duty_pct: float) -> None:
        high_ns = round(self.period_ns * duty_pct / 100.0)
        if self.pwm_inverted:
            high_ns = self.period_ns - high_ns
        self._write(self.pwm_dir / "duty_cycle", high_ns)

    # ----- contract ---------------------------------------------------------------------------
    async def start(self) -> None:
        if self._started:
            return
        if not self.pwm_chip_dir.is_dir():
            raise PilotError(f"no PWM chip at {self.pwm_chip_dir}", code="pilot-unavailable")
        if not self.iio_dir.is_dir():
            raise PilotError(f"no IIO device at {self.iio_dir}", code="pilot-unavailable")
        if not self.pwm_dir.is_dir():
            self._write(self.pwm_chip_dir / "export", self.pwm_channel)
            if not self.pwm_dir.is_dir():
                raise PilotError(f"exporting PWM channel did not create {self.pwm_dir}", code="pilot-unavailable")
        # duty_cycle may never exceed period, so clear it before changing the period.
        if self._read(self.pwm_dir / "period") != str(self.period_ns):
            self._write(self.pwm_dir / "duty_cycle", 0)
            self._write(self.pwm_dir / "period", self.period_ns)
        self._write_duty(NO_PWM_DUTY)
        self._write(self.pwm_dir / "enable", 1)
        self._duty_pct = NO_PWM_DUTY
        self._offered_a = 0.0
        self._started = True
        await self.sample()
        self._task = asyncio.create_task(self._sampler(), name="pilot-sampler")

    async def _apply_duty(self, duty_pct: float) -> None:
        if not self._started:
            raise PilotError("pilot not started (call start() first)", code="pilot-not-started")
        self._write_duty(duty_pct)
        self._duty_pct = duty_pct

    async def sample(self) -> str:
        """Read the ADC once, update state and diode flag, notify on change; returns the state."""
        voltage = self.read_voltage(self.adc_channel)
        self.last_voltage_v = voltage
        state = classify(voltage, self._state, hysteresis_v=self.hysteresis_v)
        diode_fault = False
        pwm_running = 0.0 < self._duty_pct < NO_PWM_DUTY
        if self.adc_negative_channel is not None and pwm_running and state in ("B", "C", "D"):
            negative = self.read_voltage(self.adc_negative_channel)
            self.last_negative_v = negative
            diode_fault = negative > DIODE_OK_BELOW_V
        elif self.adc_negative_channel is not None:
            # Without PWM there is no negative plateau to judge: keep the last verdict while
            # a car is connected, clear it when it leaves.
            diode_fault = self._diode_fault and state in ("B", "C", "D")
        self._update(state, diode_fault)
        return state

    async def _sampler(self) -> None:
        while True:
            await self._sleep(self.sample_interval_ms / 1000)
            try:
                await self.sample()
            except PilotError as exc:
                # An unreadable ADC is a pilot error: report E so the safety gate opens.
                # Log once per outage, not 100 times a second.
                if not self._sample_failing:
                    log.error("pilot sample failed: %s", exc)
                self._sample_failing = True
                self._update("E", self._diode_fault)
            else:
                if self._sample_failing:
                    log.info("pilot readings are back")
                self._sample_failing = False

    async def release(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            # gather lets our own cancellation through while collecting the task's end.
            (outcome,) = await asyncio.gather(task, return_exceptions=True)
            if isinstance(outcome, Exception):
                log.error("pilot sampler had stopped with an error: %r", outcome)
        if self._started:
            self._started = False
            # Steady +12 V: no offer. The PWM stays enabled so the car sees a valid level.
            self._write_duty(NO_PWM_DUTY)
            self._duty_pct = NO_PWM_DUTY
            self._offered_a = 0.0
