"""``ModbusMeter``: an :class:`EnergyMeter` driven by a register map over a shared bus.

Three layers, kept apart so each can be tested alone: the register map says where values
live (``regmap``), the planner says which reads fetch them cheapest (``plan``), the bus owns
the wire (``bus``). This module only glues them and applies the plausibility rules that
turn raw numbers into a reading someone may bill from.
"""
from __future__ import annotations

import math
import time
from typing import Callable

from drivers.meter.base import (
    QUALITY_OK,
    QUALITY_RETRIED,
    QUALITY_SUSPECT,
    EnergyMeter,
    MeterEnergyBackwards,
    MeterEnergyJump,
    MeterExceptionResponse,
    MeterFault,
    MeterFrameError,
    MeterHealth,
    MeterImplausible,
    MeterReading,
)
from drivers.meter.bus import ModbusBus
from drivers.meter.plan import Plan, Read, plan_for_map
from drivers.meter.regmap import RegisterMap, decode_serial, decode_value, energy_resolution_wh

MAX_ENERGY_WH = 2**53  # beyond this a float no longer holds whole watt-hours


def decode_reads(regmap: RegisterMap, reads: list[tuple[Read, list[int]]]) -> dict[str, tuple[float, bool]]:
    """Registers fetched by a plan -> ``{quantity: (canonical value, sentinel_seen)}``.

    Pure: no bus, no clock, so every map can be checked against known register values.
    """
    values: dict[str, tuple[float, bool]] = {}
    for read, words in reads:
        for reg in read.registers:
            offset = reg.address - read.address
            values[reg.name] = decode_value(reg, words[offset : offset + reg.count])
    return values


def check_plausible(regmap: RegisterMap, values: dict[str, tuple[float, bool]]) -> None:
    """Raise MeterImplausible for the first value that is NaN, a sentinel or out of range."""
    lim = regmap.limits
    power_max_w = regmap.phases * lim.voltage_max_v * lim.current_max_a
    ranges = {
        "energy_import": (0.0, float(MAX_ENERGY_WH), "Wh"),
        "power": (-power_max_w, power_max_w, "W"),
        "frequency": (lim.frequency_min_hz, lim.frequency_max_hz, "Hz"),
    }
    for i in range(1, regmap.phases + 1):
        ranges[f"voltage_l{i}"] = (0.0, lim.voltage_max_v, "V")
        # a few mA of negative noise at zero load is normal on signed current registers
        ranges[f"current_l{i}"] = (-0.1, lim.current_max_a, "A")
    for name, (value, sentinel) in values.items():
        lo, hi, unit = ranges[name]
        if sentinel:
            raise MeterImplausible(f"{regmap.model}: {name} reads the 'not available' sentinel",
                                   quantity=name, reason="sentinel")
        if math.isnan(value) or math.isinf(value):
            raise MeterImplausible(f"{regmap.model}: {name} is {value}", quantity=name, reason="nan")
        if not lo <= value <= hi:
            raise MeterImplausible(f"{regmap.model}: {name} = {value:g} {unit} outside {lo:g}..{hi:g} {unit}",
                                   quantity=name, reason="range", value=value, low=lo, high=hi)


class ModbusMeter(EnergyMeter):
    """A Modbus RTU/TCP meter described by a register map."""

    def __init__(self, *, regmap: RegisterMap, bus: ModbusBus, unit_id: int = 1,
                 clock: Callable[[], float] = time.monotonic, owns_bus: bool = False,
                 jump_margin_ratio: float = 0.5, jump_margin_wh: float = 5.0,
                 power_ceiling_w: float | None = None, vouched_gap_s: float = 2.0):
        if not 0 <= unit_id <= 247:
            raise ValueError(f"unit_id {unit_id} out of range (allowed: 0 to 247)")
        self._map = regmap
        self._bus = bus
        self._unit_id = unit_id
        self._clock = clock
        self._owns_bus = owns_bus
        self._jump_margin_ratio = jump_margin_ratio
        self._jump_margin_wh = jump_margin_wh
        self._energy_slack_wh = energy_resolution_wh(regmap.quantities["energy_import"])
        self._plan: Plan = plan_for_map(regmap, timing=bus.timing)
        self._health = MeterHealth()
        self._serial: str | None = None
        self._connected = False
        self._previous: tuple[int, float, float] | None = None  # energy_wh, power_w, time_s
        # The most the installation can draw; the meter's own measuring range when not told.
        lim = regmap.limits
        self._power_ceiling_w = (power_ceiling_w if power_ceiling_w is not None
                                 else regmap.phases * lim.voltage_max_v * lim.current_max_a)
        self._failed_since_good = False  # a poll failed since the last good reading
        # How long two good readings in a row vouch for the power between them; beyond that the
        # load was not watched (a stalled poll loop) and may have been anything up to the ceiling.
        self._vouched_gap_s = vouched_gap_s

    # ---------------------------------------------------------------- contract

    @property
    def model(self) -> str:
        return self._map.model

    @property
    def serial(self) -> str | None:
        return self._serial

    @property
    def health(self) -> MeterHealth:
        return self._health.copy()

    @property
    def plan(self) -> Plan:
        return self._plan

    @property
    def regmap(self) -> RegisterMap:
        return self._map

    @property
    def unit_id(self) -> int:
        return self._unit_id

    @property
    def bus(self) -> ModbusBus:
        """The link this meter talks over, which another unit id on it (a grid meter) shares."""
        return self._bus

    async def connect(self) -> None:
        if self._connected:
            return
        try:
            await self._bus.acquire()
        except MeterFault as fault:
            self._health.poll_failed(fault, self._clock())
            raise
        self._connected = True
        self._health.connected = True
        reg = self._map.serial
        if reg is None:
            return
        try:
            result = await self._bus.read(self._unit_id, reg.function, reg.address, reg.count, on_fault=self._note)
        except (MeterExceptionResponse, MeterFrameError):
            # The meter is there but will not tell its serial: keep going, the fault is counted.
            return
        except MeterFault as fault:
            self._health.poll_failed(fault, self._clock(), counted=True)
            await self.close()
            raise
        self._serial = decode_serial(reg, result.registers)

    async def read(self) -> MeterReading:
        if not self._connected:
            await self.connect()
        flags: set[str] = set()
        fetched: list[tuple[Read, list[int]]] = []
        energy_window_s = (0.0, 0.0)
        try:
            for read in self._plan.reads:
                asked_s = self._clock()
                result = await self._bus.read(self._unit_id, read.function, read.address, read.count,
                                              on_fault=self._note)
                if result.attempts > 1:
                    flags.add(QUALITY_RETRIED)
                fetched.append((read, result.registers))
                if any(reg.name == "energy_import" for reg in read.registers):
                    energy_window_s = (asked_s, self._clock())
        except MeterFault as fault:
            self._failed_since_good = True
            self._health.poll_failed(fault, self._clock(), counted=True)
            raise
        now_s = self._clock()
        try:
            reading = self._build(decode_reads(self._map, fetched), now_s, flags, energy_window_s)
        except MeterFault as fault:
            self._health.poll_failed(fault, now_s)
            raise
        self._health.poll_ok()
        return reading

    async def close(self) -> None:
        if self._connected:
            self._connected = False
            self._health.connected = False
            await self._bus.release()
        if self._owns_bus:
            await self._bus.close()

    # ---------------------------------------------------------------- internals

    def _note(self, fault: MeterFault) -> None:
        self._health.note_fault(fault, self._clock())

    def _build(self, values: dict[str, tuple[float, bool]], now_s: float, flags: set[str],
               energy_window_s: tuple[float, float]) -> MeterReading:
        check_plausible(self._map, values)
        phases = self._map.phases
        energy_wh = int(round(values["energy_import"][0]))
        power_w = values["power"][0]
        voltage_v = tuple(values[f"voltage_l{i}"][0] for i in range(1, phases + 1))
        current_a = tuple(values[f"current_l{i}"][0] for i in range(1, phases + 1))
        frequency_hz = values["frequency"][0] if "frequency" in values else None
        self._check_energy(energy_wh, power_w, energy_window_s)
        apparent_va = sum(v * abs(a) for v, a in zip(voltage_v, current_a, strict=True))
        if abs(power_w) > apparent_va * 1.1 + 50.0:
            flags.add(QUALITY_SUSPECT)  # active power cannot exceed V x I; one of them is off
        return MeterReading(energy_import_wh=energy_wh, power_w=power_w, voltage_v=voltage_v,
                            current_a=current_a, frequency_hz=frequency_hz, meter_time_s=now_s,
                            quality=frozenset(flags or {QUALITY_OK}), serial=self._serial)

    def _check_energy(self, energy_wh: int, power_w: float, energy_window_s: tuple[float, float]) -> None:
        """Compare with the previous good reading; the baseline moves on even after a fault.

        Moving on means each event is reported once; the layer above latches it (a register
        that went backwards stops billing there, not here).

        The meter sampled its register somewhere between asking for it and the answer, so the
        energy between two polls accrued over at most this answer's time minus the previous
        question's. The end of the poll is not that time: a stall or a retry between the
        energy read and the other reads of a poll would leave the energy older than the
        poll's time stamp, and the next poll would show the stalled seconds' energy as a jump.
        """
        asked_s, answered_s = energy_window_s
        previous, self._previous = self._previous, (energy_wh, power_w, asked_s)
        blind, self._failed_since_good = self._failed_since_good, False
        if previous is None:
            return
        prev_wh, prev_w, prev_s = previous
        if energy_wh < prev_wh:
            raise MeterEnergyBackwards(
                f"{self.model}: import energy went from {prev_wh} Wh to {energy_wh} Wh",
                previous_wh=prev_wh, energy_wh=energy_wh)
        elapsed_s = max(0.0, answered_s - prev_s)
        # Two good readings close together bound the power between them. Across failed polls,
        # or a gap longer than readings vouch for, the load was not watched: a contactor may have
        # closed and opened again in between, so only the installation's ceiling explains the
        # energy of that unwatched time.
        unwatched_s = elapsed_s if blind else max(0.0, elapsed_s - self._vouched_gap_s)
        watched_s = elapsed_s - unwatched_s
        bound_wh = (max(abs(prev_w), abs(power_w)) * watched_s + self._power_ceiling_w * unwatched_s) / 3600.0
        allowed_wh = bound_wh * (1.0 + self._jump_margin_ratio) + self._jump_margin_wh + self._energy_slack_wh
        if energy_wh - prev_wh > allowed_wh:
            raise MeterEnergyJump(
                f"{self.model}: import energy rose {energy_wh - prev_wh} Wh in {elapsed_s:.1f} s; "
                f"measured power explains at most {allowed_wh:.1f} Wh",
                previous_wh=prev_wh, energy_wh=energy_wh, elapsed_s=elapsed_s, allowed_wh=allowed_wh)
