"""Register maps as data: loading, validation, decoding and its inverse.

A meter model is a TOML file in ``drivers/meter/maps/``; adding a model means adding a
file, never code. The loader checks every key with ``drivers.configfile.Section`` so that a
maker's typo is reported with the file, the dotted key and what would have been accepted.

Decoding (registers -> quantities) is kept apart from the transport so that it can be
tested on known register values, and the simulator uses the exact inverse
(:func:`encode_value`) so that both directions are exercised by the same map.
"""
from __future__ import annotations

import math
import struct
from pathlib import Path

from drivers.configfile import ConfigError, Section, load_toml

MAPS_DIR = Path(__file__).resolve().parent / "maps"

# type name -> (registers, struct format of the big-endian byte string)
TYPES: dict[str, tuple[int, str]] = {
    "int16": (1, ">h"),
    "uint16": (1, ">H"),
    "int32": (2, ">i"),
    "uint32": (2, ">I"),
    "float32": (2, ">f"),
    "int64": (4, ">q"),
    "uint64": (4, ">Q"),
}
WORD_ORDERS = ("big", "little")  # big: most significant register first
FUNCTIONS = (3, 4)  # read holding registers, read input registers
MODBUS_MAX_READ = 125  # registers in one read request, by the Modbus specification

# quantity -> allowed units and the factor that converts each to the canonical unit
QUANTITY_UNITS: dict[str, dict[str, float]] = {
    "energy_import": {"Wh": 1.0, "kWh": 1000.0},
    "power": {"W": 1.0, "kW": 1000.0},
    "voltage": {"V": 1.0},
    "current": {"A": 1.0},
    "frequency": {"Hz": 1.0},
}
PHASE_QUANTITIES = ("voltage", "current")


def quantity_kind(name: str) -> str:
    """``voltage_l2`` -> ``voltage``; plain names map to themselves."""
    for kind in PHASE_QUANTITIES:
        if name.startswith(kind + "_l"):
            return kind
    return name


def quantity_names(phases: int) -> tuple[str, ...]:
    per_phase = tuple(f"{kind}_l{i}" for kind in PHASE_QUANTITIES for i in range(1, phases + 1))
    return ("energy_import", "power") + per_phase + ("frequency",)


class Register:
    """Where one value lives and how its registers turn into a number."""

    __slots__ = ("name", "function", "address", "type", "word_order", "scale", "unit", "sentinels", "count")

    def __init__(self, *, name, function, address, type, word_order="big", scale=1.0, unit="", sentinels=(), count=None):
        self.name = name
        self.function = function
        self.address = address
        self.type = type
        self.word_order = word_order
        self.scale = scale
        self.unit = unit
        self.sentinels = frozenset(sentinels)
        self.count = count if count is not None else TYPES[type][0]

    @property
    def last(self) -> int:
        return self.address + self.count - 1

    @property
    def to_canonical(self) -> float:
        """Factor from the register's unit to the quantity's canonical unit (kWh -> Wh etc.)."""
        units = QUANTITY_UNITS.get(quantity_kind(self.name))
        return units[self.unit] if units else 1.0

    def __repr__(self):
        return f"Register({self.name}, fc={self.function}, addr={self.address}, {self.type}, {self.word_order})"


class Limits:
    __slots__ = ("voltage_max_v", "current_max_a", "frequency_min_hz", "frequency_max_hz")

    def __init__(self, *, voltage_max_v=300.0, current_max_a=100.0, frequency_min_hz=45.0, frequency_max_hz=65.0):
        self.voltage_max_v = voltage_max_v
        self.current_max_a = current_max_a
        self.frequency_min_hz = frequency_min_hz
        self.frequency_max_hz = frequency_max_hz


class RegisterMap:
    """One meter model: metadata, limits, the serial-number register and the quantities."""

    def __init__(self, *, model, name, maker, phases, max_registers_per_read, sources, limits,
                 quantities, serial=None, unreadable=(), path=None, notes=""):
        self.model = model
        self.name = name
        self.maker = maker
        self.phases = phases
        self.max_registers_per_read = max_registers_per_read
        self.sources = tuple(sources)
        self.limits = limits
        self.quantities: dict[str, Register] = dict(quantities)
        self.serial = serial
        self.unreadable: tuple[tuple[int, int, int], ...] = tuple(unreadable)  # (function, first, last)
        self.path = path
        self.notes = notes

    def poll_registers(self) -> list[Register]:
        return list(self.quantities.values())

    def is_unreadable(self, function: int, address: int) -> bool:
        return any(f == function and first <= address <= last for f, first, last in self.unreadable)

    def __repr__(self):
        return f"RegisterMap({self.model!r}, {self.maker} {self.name}, phases={self.phases})"


# --------------------------------------------------------------------------- loading


def list_models() -> list[str]:
    return sorted(p.stem for p in MAPS_DIR.glob("*.toml"))


def load_map(model_or_path: str | Path) -> RegisterMap:
    """Load a shipped model by name (``"sdm630"``) or any map file by path."""
    text = str(model_or_path)
    if isinstance(model_or_path, Path) or text.endswith(".toml") or "/" in text:
        path = Path(model_or_path)
    else:
        path = MAPS_DIR / f"{text}.toml"
        if not path.exists():
            raise ConfigError(path, "", f"unknown meter model {text!r}", allowed=", ".join(list_models()) or "none")
    return parse_map(load_toml(path), path)


def _register(sec: Section, name: str, *, kind: str | None, max_registers: int) -> Register:
    function = sec.int("function", min=3, max=4)
    address = sec.int("address", min=0, max=0xFFFF)
    if kind is None:
        type_name = sec.str("type", choices=list(TYPES) + ["ascii"])
    else:
        type_name = sec.str("type", choices=list(TYPES))
    count = None
    if type_name == "ascii":
        count = sec.int("count", min=1, max=max_registers)
    word_order = sec.str("word_order", "big", choices=WORD_ORDERS)
    if kind is None:
        scale, unit = 1.0, ""
    else:
        scale = sec.float("scale", 1.0)
        if scale == 0.0:
            raise sec.error("scale", "must not be zero")
        units = QUANTITY_UNITS[kind]
        unit = sec.str("unit", choices=list(units))
    sentinels = sec.list("sentinels", [])
    for i, value in enumerate(sentinels):
        if isinstance(value, bool) or not isinstance(value, int) or value < 0:
            raise sec.error("sentinels", f"entry {i} must be a non-negative whole number (raw register value), got {value!r}")
    reg = Register(name=name, function=function, address=address, type=type_name, word_order=word_order,
                   scale=scale, unit=unit, sentinels=sentinels, count=count)
    if reg.last > 0xFFFF:
        raise sec.error("address", f"register block {address}..{reg.last} runs past 65535")
    sec.finish()
    return reg


def parse_map(data: dict, path: str | Path, model: str | None = None) -> RegisterMap:
    """Validate a parsed map; every problem is a ConfigError naming file and key."""
    path = Path(path)
    root = Section(data, path)
    meta = root.section("meter", required=True)
    name = meta.str("name")
    maker = meta.str("maker")
    phases = meta.int("phases")
    if phases not in (1, 3):
        raise meta.error("phases", f"unsupported phase count {phases}", "1, 3")
    max_regs = meta.int("max_registers_per_read", MODBUS_MAX_READ, min=4, max=MODBUS_MAX_READ)
    sources = meta.list("sources")
    if not sources or not all(isinstance(s, str) and s.strip() for s in sources):
        raise meta.error("sources", "must list at least one public document the map was checked against")
    notes = meta.str("notes", "")
    meta.finish()

    lim = root.section("limits")
    limits = Limits(
        voltage_max_v=lim.float("voltage_max_v", 300.0, min=1.0, max=1000.0),
        current_max_a=lim.float("current_max_a", 100.0, min=0.1, max=10000.0),
        frequency_min_hz=lim.float("frequency_min_hz", 45.0, min=1.0, max=100.0),
        frequency_max_hz=lim.float("frequency_max_hz", 65.0, min=1.0, max=100.0),
    )
    if limits.frequency_min_hz >= limits.frequency_max_hz:
        raise lim.error("frequency_min_hz", "must be below frequency_max_hz")
    lim.finish()

    serial = None
    if root.has("serial"):
        serial = _register(root.section("serial"), "serial", kind=None, max_registers=max_regs)
    else:
        root.section("serial")  # mark as known

    unreadable = []
    for sec in root.sections("unreadable"):
        function = sec.int("function", min=3, max=4)
        first = sec.int("first", min=0, max=0xFFFF)
        last = sec.int("last", min=first, max=0xFFFF)
        sec.finish()
        unreadable.append((function, first, last))

    qsec = root.section("quantities", required=True)
    wanted = quantity_names(phases)
    quantities: dict[str, Register] = {}
    for qname in wanted:
        if not qsec.has(qname):
            if qname == "frequency":
                qsec.section(qname)
                continue
            raise qsec.error(qname, "missing required quantity", ", ".join(wanted))
        quantities[qname] = _register(qsec.section(qname), qname, kind=quantity_kind(qname), max_registers=max_regs)
    unknown = sorted(set(qsec.data) - set(wanted))
    if unknown:
        raise qsec.error(unknown[0], "unknown quantity", ", ".join(wanted))
    root.finish()

    regmap = RegisterMap(model=model or path.stem, name=name, maker=maker, phases=phases,
                         max_registers_per_read=max_regs, sources=sources, limits=limits,
                         quantities=quantities, serial=serial, unreadable=unreadable, path=path, notes=notes)
    for reg in list(quantities.values()) + ([serial] if serial else []):
        for addr in range(reg.address, reg.last + 1):
            if regmap.is_unreadable(reg.function, addr):
                key = f"quantities.{reg.name}" if reg.name != "serial" else "serial"
                raise ConfigError(path, f"{key}.address", f"register {addr} lies in a range marked unreadable")
    return regmap


# --------------------------------------------------------------------------- decoding


def registers_to_raw(reg: Register, words: list[int]) -> int:
    """The register words as one unsigned integer, most significant word first."""
    if len(words) != reg.count:
        raise ValueError(f"{reg.name}: expected {reg.count} registers, got {len(words)}")
    ordered = list(words) if reg.word_order == "big" else list(reversed(words))
    raw = 0
    for word in ordered:
        raw = (raw << 16) | (word & 0xFFFF)
    return raw


def raw_to_registers(reg: Register, raw: int) -> list[int]:
    words = [(raw >> (16 * (reg.count - 1 - i))) & 0xFFFF for i in range(reg.count)]
    return words if reg.word_order == "big" else list(reversed(words))


def decode_raw(reg: Register, raw: int) -> float:
    """Raw integer -> value in the register's unit (scale applied), without sentinel checks."""
    _, fmt = TYPES[reg.type]
    value = struct.unpack(fmt, raw.to_bytes(2 * reg.count, "big"))[0]
    return value * reg.scale


def decode_value(reg: Register, words: list[int]) -> tuple[float, bool]:
    """Decode to the canonical unit (Wh, W, V, A, Hz); the flag says 'sentinel seen'."""
    raw = registers_to_raw(reg, words)
    if raw in reg.sentinels:
        return math.nan, True
    return decode_raw(reg, raw) * reg.to_canonical, False


def decode_ascii(reg: Register, words: list[int]) -> str:
    data = b"".join(int(w & 0xFFFF).to_bytes(2, "big") for w in words)
    return data.split(b"\x00", 1)[0].decode("ascii", "replace").strip()


def decode_serial(reg: Register, words: list[int]) -> str | None:
    if reg.type == "ascii":
        text = decode_ascii(reg, words)
        return text or None
    raw = registers_to_raw(reg, words)
    if raw in reg.sentinels:
        return None
    _, fmt = TYPES[reg.type]
    value = struct.unpack(fmt, raw.to_bytes(2 * reg.count, "big"))[0]
    return str(int(value))


def encode_value(reg: Register, value: float) -> list[int]:
    """Inverse of :func:`decode_value`: canonical value -> register words (used by the simulator).

    NaN encodes as a float NaN, or as the first sentinel for integer types (that is what a
    real meter does when a value is not available).
    """
    _, fmt = TYPES[reg.type]
    if isinstance(value, float) and math.isnan(value):
        if reg.type == "float32":
            raw = 0x7FC00000
        elif reg.sentinels:
            raw = min(reg.sentinels)
        else:
            raise ValueError(f"{reg.name}: integer type {reg.type} has no sentinel to encode 'not available'")
        return raw_to_registers(reg, raw)
    scaled = value / reg.to_canonical / reg.scale
    if reg.type == "float32":
        packed = struct.pack(fmt, scaled)
    else:
        nbits = 16 * reg.count
        signed = reg.type.startswith("int")
        lo, hi = (-(1 << (nbits - 1)), (1 << (nbits - 1)) - 1) if signed else (0, (1 << nbits) - 1)
        packed = struct.pack(fmt, max(lo, min(hi, int(round(scaled)))))
    return raw_to_registers(reg, int.from_bytes(packed, "big"))


def encode_serial(reg: Register, serial: str) -> list[int]:
    if reg.type == "ascii":
        data = serial.encode("ascii", "replace")[: 2 * reg.count].ljust(2 * reg.count, b"\x00")
        return [int.from_bytes(data[i : i + 2], "big") for i in range(0, len(data), 2)]
    digits = "".join(ch for ch in serial if ch.isdigit()) or "0"
    nbits = 16 * reg.count
    return raw_to_registers(reg, int(digits) % (1 << nbits))


def energy_resolution_wh(reg: Register) -> float:
    """Smallest energy step the register can show, used as slack in the jump check."""
    if reg.type == "float32":
        return 0.0
    return abs(reg.scale) * reg.to_canonical
