"""A simulated physical meter, served by pymodbus's own Modbus server.

The simulated board sets ``current_a`` (what the car draws) and reads money off the energy
register, exactly as on a real charger; tests point the real client code path (pymodbus
client, our bus, planner and decoder) at it over TCP loopback or a pty pair with RTU framing.

Energy integrates ``power_w`` over the injected clock lazily, whenever the registers are
read (or ``energy_import_wh`` is touched), so a test that advances a fake clock gets
deterministic energy. Values are written through the same register map the driver decodes
with (``regmap.encode_value``), so a wrong map entry shows up as a wrong reading.

Fault injection (plain attributes, change them at any time):

* ``silent``: the meter hears requests but never answers (no-answer fault).
* ``exception_code``: answer every read with this Modbus exception code.
* ``nan``: ``True`` for every quantity, or a quantity name / collection of names
  (``"voltage_l1"``, ``{"energy_import"}``); floats read NaN, integers the model's
  sentinel (or an out-of-range value where the model has none).
* ``energy_backwards_wh``: the energy register shows this much less than the truth.
* ``corrupt``: answers are sent with a bad CRC (RTU) or a wrong transaction id (TCP).
"""
from __future__ import annotations

import math
import time
from typing import Callable, Iterable

from drivers.meter.regmap import RegisterMap, encode_serial, encode_value, load_map, raw_to_registers

# Registers served either side of the mapped ones, so gap reads the planner chooses succeed.
_PAD = 8


class SimMeterServer:
    """One simulated meter (a unit id) plus, optionally, neighbours sharing its link."""

    def __init__(self, model: str, *, clock: Callable[[], float] = time.monotonic,
                 serial_number: str = "10000001", voltage_v: float = 230.0, frequency_hz: float = 50.0,
                 unit_id: int = 0, power_factor: float = 1.0, register_file: str | None = None):
        if not 0 <= unit_id <= 247:
            raise ValueError(f"unit_id {unit_id} out of range (allowed: 0 = answer any id, 1 to 247)")
        self.regmap: RegisterMap = load_map(model)
        self.model = self.regmap.model
        self.clock = clock
        self.serial_number = serial_number
        self.unit_id = unit_id
        self._energy_wh = 0.0
        self._integrated_at_s: float | None = None
        # A real meter's energy register is non-volatile: it survives the agent's crash and a
        # power cut. ``register_file`` gives the simulation the same property (crash tests).
        self.register_file = register_file
        if register_file is not None:
            try:
                with open(register_file) as fh:
                    self._energy_wh = float(fh.read().strip() or 0)
            except FileNotFoundError:
                pass
        self._voltage_v: list[float] = []
        self._current_a: list[float] = []
        self.power_factor = float(power_factor)
        self.voltage_v = voltage_v
        self.current_a = 0.0
        self.frequency_hz = float(frequency_hz)
        # fault injection
        self.silent = False
        self.exception_code: int | None = None
        self.nan: bool | str | Iterable[str] = False
        self.energy_backwards_wh = 0.0
        self.corrupt = False
        # bookkeeping
        self.requests = 0
        self._server = None
        self._framing = None
        self._neighbours: list[SimMeterServer] = []

    # ------------------------------------------------------------------ physics

    def _per_phase(self, name: str, value) -> list[float]:
        phases = self.regmap.phases
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return [float(value)] * phases
        values = [float(v) for v in value]
        if len(values) != phases:
            raise ValueError(f"{name} needs {phases} value(s) for the {phases}-phase {self.regmap.model}, "
                             f"got {len(values)} (allowed: one number for all phases, or {phases} numbers)")
        return values

    @property
    def current_a(self) -> list[float]:
        """Per-phase current drawn by the load; a list, so ``sim.current_a[0] = 16.0`` works too."""
        return self._current_a

    @current_a.setter
    def current_a(self, value) -> None:
        self._integrate()  # energy so far accrued at the old current
        self._current_a = self._per_phase("current_a", value)

    @property
    def voltage_v(self) -> list[float]:
        return self._voltage_v

    @voltage_v.setter
    def voltage_v(self, value) -> None:
        self._integrate()
        self._voltage_v = self._per_phase("voltage_v", value)

    @property
    def power_w(self) -> float:
        # not strict: __init__ sets the voltages while the currents are still an empty list
        return sum(v * a for v, a in zip(self.voltage_v, self.current_a, strict=False)) * self.power_factor

    def _integrate(self) -> None:
        now_s = self.clock()
        if self._integrated_at_s is not None and now_s > self._integrated_at_s:
            self._energy_wh += max(0.0, self.power_w) * (now_s - self._integrated_at_s) / 3600.0
            if self.register_file is not None:
                self._persist()
        self._integrated_at_s = now_s

    def _persist(self) -> None:
        """Write the register atomically (write, fsync, rename), as non-volatile memory would."""
        import os

        tmp = f"{self.register_file}.tmp"
        with open(tmp, "w") as fh:
            fh.write(repr(self._energy_wh))
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, self.register_file)

    @property
    def energy_import_wh(self) -> float:
        """The true import energy so far (what an honest register would show)."""
        self._integrate()
        return self._energy_wh

    @energy_import_wh.setter
    def energy_import_wh(self, value: float) -> None:
        self._integrate()
        self._energy_wh = float(value)

    def _nan_names(self) -> set[str]:
        if self.nan is True:
            return set(self.regmap.quantities)
        if not self.nan:
            return set()
        if isinstance(self.nan, str):
            return {self.nan}
        return set(self.nan)

    def quantity_values(self) -> dict[str, float]:
        """Canonical values the registers carry right now (faults applied)."""
        values = {
            "energy_import": self.energy_import_wh - self.energy_backwards_wh,
            "power": self.power_w,
            "frequency": self.frequency_hz,
        }
        for i in range(self.regmap.phases):
            values[f"voltage_l{i + 1}"] = self.voltage_v[i]
            values[f"current_l{i + 1}"] = self.current_a[i]
        for name in self._nan_names():
            values[name] = math.nan
        return {name: values[name] for name in self.regmap.quantities}

    # ------------------------------------------------------------------ register image

    def _words(self, name: str, value: float) -> list[int]:
        reg = self.regmap.quantities[name]
        try:
            return encode_value(reg, value)
        except ValueError:
            # integer register without a sentinel: serve a value no meter could measure
            nbits = 16 * reg.count
            raw = (1 << (nbits - 1)) - 1 if reg.type.startswith("int") else (1 << nbits) - 1
            return raw_to_registers(reg, raw)

    def _blocks(self) -> dict[int, tuple[int, int]]:
        """Per function code, the address span served: mapped registers plus padding."""
        spans: dict[int, list[int]] = {}
        regs = list(self.regmap.quantities.values()) + ([self.regmap.serial] if self.regmap.serial else [])
        for reg in regs:
            lo, hi = spans.setdefault(reg.function, [reg.address, reg.last])
            spans[reg.function] = [min(lo, reg.address), max(hi, reg.last)]
        return {f: (max(0, lo - _PAD), min(0xFFFF, hi + _PAD)) for f, (lo, hi) in spans.items()}

    def _sim_device(self):
        from pymodbus.simulator import DataType, SimData, SimDevice

        blocks = self._blocks()
        holding, inputs = [], []
        for function, (lo, hi) in blocks.items():
            target = holding if function == 3 else inputs
            invalid = [(first, last) for f, first, last in self.regmap.unreadable if f == function]
            addr = lo
            while addr <= hi:
                blocked = next(((a, b) for a, b in invalid if a <= addr <= b), None)
                if blocked is not None:
                    end = min(hi, blocked[1])
                    target.append(SimData(addr, count=end - addr + 1, datatype=DataType.INVALID))
                else:
                    end = min([a for a, _ in invalid if a > addr] + [hi + 1]) - 1
                    target.append(SimData(addr, count=end - addr + 1, values=0, datatype=DataType.REGISTERS))
                addr = end + 1
        if not holding:
            holding = [SimData(0, values=0, datatype=DataType.REGISTERS)]
        if not inputs:
            inputs = [SimData(0, values=0, datatype=DataType.REGISTERS)]
        bits = [SimData(0, count=16, values=False, datatype=DataType.BITS)]
        return SimDevice(id=self.unit_id, simdata=(list(bits), list(bits), holding, inputs), action=self._action)

    async def _action(self, function_code, start_address, address, count, registers, set_values):
        from pymodbus.constants import ExcCodes

        self.requests += 1
        if set_values is not None:
            return ExcCodes.ILLEGAL_FUNCTION  # a meter's measurement registers are read-only
        if self.exception_code is not None:
            try:
                return ExcCodes(int(self.exception_code))
            except ValueError:
                return ExcCodes.DEVICE_FAILURE
        for name, value in self.quantity_values().items():
            reg = self.regmap.quantities[name]
            if reg.function == function_code:
                self._poke(registers, start_address, reg.address, self._words(name, value))
        serial = self.regmap.serial
        if serial is not None and serial.function == function_code:
            self._poke(registers, start_address, serial.address, encode_serial(serial, self.serial_number))
        return None

    @staticmethod
    def _poke(registers: list[int], start_address: int, address: int, words: list[int]) -> None:
        offset = address - start_address
        registers[offset : offset + len(words)] = words

    # ------------------------------------------------------------------ serving

    def add_neighbour(self, other: "SimMeterServer") -> None:
        """Serve ``other`` on this meter's link too (another unit id on the same RS-485 line)."""
        if self._server is not None:
            raise RuntimeError("add neighbours before starting the server")
        ids = {self.unit_id} | {n.unit_id for n in self._neighbours}
        if other.unit_id == 0 or self.unit_id == 0 or other.unit_id in ids:
            raise ValueError("meters sharing a link need distinct, non-zero unit ids")
        self._neighbours.append(other)

    def _by_unit(self, unit_id: int) -> "SimMeterServer":
        for sim in [self] + self._neighbours:
            if sim.unit_id == unit_id:
                return sim
        return self

    def _trace_packet(self, sending: bool, data: bytes) -> bytes:
        if not sending or not data:
            return data
        if self._framing == "rtu":
            sim = self._by_unit(data[0])
            if sim.silent:
                return b""
            if sim.corrupt:
                return data[:-1] + bytes([data[-1] ^ 0xFF])
            return data
        sim = self._by_unit(data[6] if len(data) > 6 else 0)
        if sim.silent:
            return b""
        if sim.corrupt:
            return bytes([data[0] ^ 0x55, data[1] ^ 0xAA]) + data[2:]
        return data

    def _devices(self):
        return [self._sim_device()] + [n._sim_device() for n in self._neighbours]

    async def start_tcp(self, host: str = "127.0.0.1", port: int = 0) -> int:
        """Serve Modbus TCP; returns the bound port (pass 0 for an ephemeral one)."""
        ModbusTcpServer = _server_class("ModbusTcpServer")

        if self._server is not None:
            raise RuntimeError("server already started")
        self._framing = "tcp"
        server = ModbusTcpServer(self._devices(), address=(host, port), trace_packet=self._trace_packet)
        await server.serve_forever(background=True)
        self._server = server
        return server.transport.sockets[0].getsockname()[1]

    async def start_serial(self, device: str, baudrate: int = 9600) -> None:
        """Serve Modbus RTU on a serial device (a pty end in tests)."""
        ModbusSerialServer = _server_class("ModbusSerialServer")

        if self._server is not None:
            raise RuntimeError("server already started")
        self._framing = "rtu"
        server = ModbusSerialServer(self._devices(), port=device, baudrate=baudrate, reconnect_delay=0.0,
                                    trace_packet=self._trace_packet)
        await server.serve_forever(background=True)
        self._server = server

    async def stop(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            await server.shutdown()


def _server_class(name: str):
    """A server class from ``pymodbus.server.server`` without running ``pymodbus.server``'s init.

    That init also imports pymodbus's HTTP simulator and with it aiohttp (about 100 ms and
    several MiB), which a simulated meter never uses. The package is stood in for by an empty
    shell only while its ``server`` module loads, then removed, so a later
    ``import pymodbus.server`` elsewhere runs the real init and finds the module already loaded.
    """
    import sys

    if "pymodbus.server" in sys.modules:
        return getattr(sys.modules["pymodbus.server"], name)
    import importlib
    import types
    from pathlib import Path

    import pymodbus

    shell = types.ModuleType("pymodbus.server")
    shell.__path__ = [str(Path(pymodbus.__file__).parent / "server")]
    sys.modules["pymodbus.server"] = shell
    try:
        module = importlib.import_module("pymodbus.server.server")
    finally:
        if sys.modules.get("pymodbus.server") is shell:
            del sys.modules["pymodbus.server"]
    return getattr(module, name)
