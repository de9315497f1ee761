"""Board profiles: which driver backends a charger board uses and how they are wired.

A profile is a TOML file with four tables, ``[board]``, ``[meter]``, ``[relay]`` and
``[pilot]``; each driver table names a ``backend`` and the keys that backend needs. Built-in
profiles live in ``board/profiles/<name>.toml``; a site can also point at its own file.

Everything is checked on load, with errors naming the file, the dotted key and the allowed
values: a profile is written once per board design, often by someone who is not going to read
Python, and a silent default on the relay line is not an acceptable failure mode.

Every relay table must say in ``fail_safe`` how the hardware keeps the contactor open when the
agent is not running; the self-test prints it so the person commissioning the charger sees it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

from drivers.configfile import ConfigError, Section, load_toml

PROFILES_DIR = Path(__file__).resolve().parent / "profiles"
DEFAULT_PROFILE = "sim"

METER_BACKENDS = ("sim", "modbus-rtu", "modbus-tcp")
RELAY_BACKENDS = ("sim", "gpiod")
PILOT_BACKENDS = ("sim", "none", "linux")
BAUDRATES = (1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200)
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


def _frozen(options: dict) -> Mapping[str, Any]:
    return MappingProxyType(dict(options))


@dataclass(frozen=True)
class DriverSettings:
    """One driver's backend and the keyword arguments its constructor takes."""

    backend: str
    options: Mapping[str, Any] = field(default_factory=lambda: _frozen({}))


@dataclass(frozen=True)
class BoardProfile:
    name: str
    path: Path
    description: str
    max_current_a: float
    phases: int
    meter: DriverSettings
    relay: DriverSettings
    pilot: DriverSettings

    @property
    def fail_safe(self) -> str:
        return self.relay.options["fail_safe"]

    @property
    def meter_model(self) -> str:
        return self.meter.options["model"]

    def summary(self) -> list[tuple[str, str]]:
        """(label, value) lines for ``urja board check`` and the self-test header."""
        rows = [
            ("board", f"{self.name} ({self.path})"),
            ("description", self.description or "-"),
            ("supply", f"{self.phases}-phase, max {self.max_current_a:g} A"),
            ("meter", f"{self.meter.backend}: " + _opts(self.meter.options)),
            ("relay", f"{self.relay.backend}: " + _opts(self.relay.options, skip=("fail_safe",))),
            ("relay fail-safe", self.fail_safe),
            ("pilot", f"{self.pilot.backend}" + (": " + _opts(self.pilot.options) if self.pilot.options else "")),
        ]
        return rows


def _opts(options: Mapping[str, Any], skip: tuple[str, ...] = ()) -> str:
    return ", ".join(f"{k}={v}" for k, v in options.items() if k not in skip and v is not None)


def list_profiles() -> list[str]:
    """Names of the built-in profiles."""
    return sorted(p.stem for p in PROFILES_DIR.glob("*.toml"))


def resolve_profile_path(name_or_path: str | Path) -> Path:
    """A built-in name (``sim``) or a path to a TOML file."""
    text = str(name_or_path)
    if isinstance(name_or_path, Path) or "/" in text or text.endswith(".toml"):
        return Path(name_or_path)
    if not _NAME.match(text):
        raise ConfigError(text, "", "not a profile name or a path to a .toml file",
                          allowed=", ".join(list_profiles()))
    path = PROFILES_DIR / f"{text}.toml"
    if not path.exists():
        raise ConfigError(text, "", "no built-in board profile by that name",
                          allowed=", ".join(list_profiles()) + ", or a path to a .toml file")
    return path


def load_profile(name_or_path: str | Path = DEFAULT_PROFILE) -> BoardProfile:
    path = resolve_profile_path(name_or_path)
    return parse_profile(load_toml(path), path)


def parse_profile(data: dict, path: str | Path) -> BoardProfile:
    path = Path(path)
    root = Section(data, path)
    board = root.section("board", required=True)
    name = board.str("name")
    description = board.str("description", "")
    max_current_a = board.float("max_current_a", min=1.0, max=80.0)
    phases = board.int("phases", 1, min=1, max=3)
    if phases == 2:
        raise board.error("phases", "unsupported phase count 2", "1, 3")
    board.finish()

    meter = _meter(root.section("meter", required=True), phases)
    relay = _relay(root.section("relay", required=True))
    pilot = _pilot(root.section("pilot", required=True), phases)
    root.finish()
    return BoardProfile(
        name=name, path=path, description=description, max_current_a=max_current_a, phases=phases,
        meter=meter, relay=relay, pilot=pilot,
    )


def _backend(sec: Section, allowed: tuple[str, ...]) -> str:
    return sec.str("backend", choices=allowed)


def _meter(sec: Section, phases: int) -> DriverSettings:
    from drivers.meter import list_models  # the meter package loads its maps lazily too

    backend = _backend(sec, METER_BACKENDS)
    model = sec.str("model", choices=list_models())
    model_phases = _model_phases(model)
    if model_phases < phases:
        raise sec.error("model", f"{model} measures {model_phases} phase(s) but the board has {phases}",
                        ", ".join(m for m in list_models() if _model_phases(m) >= phases))
    opts: dict[str, Any] = {"model": model}
    if backend == "modbus-rtu":
        opts["transport"] = "rtu"
        opts["device"] = sec.str("device")
        opts["baudrate"] = sec.int("baudrate", 9600)
        if opts["baudrate"] not in BAUDRATES:
            raise sec.error("baudrate", f"unsupported baud rate {opts['baudrate']}",
                            ", ".join(map(str, BAUDRATES)))
        opts["parity"] = sec.str("parity", "N", choices=("N", "E", "O"))
        opts["stopbits"] = sec.int("stopbits", 1, min=1, max=2)
    elif backend == "modbus-tcp":
        opts["transport"] = "tcp"
        opts["host"] = sec.str("host")
        opts["port"] = sec.int("port", 502, min=1, max=65535)
    if backend != "sim":
        opts["unit_id"] = sec.int("unit_id", 1, min=1, max=247)
    else:
        register_file = sec.str("register_file", None)
        if register_file is not None:
            opts["register_file"] = register_file
    # timeouts and retries apply to the simulated link too (tests shorten them)
    opts["timeout_ms"] = sec.int("timeout_ms", 500, min=20, max=10000)
    opts["retries"] = sec.int("retries", 2, min=0, max=10)
    sec.finish()
    return DriverSettings(backend, _frozen(opts))


def _model_phases(model: str) -> int:
    from drivers.meter import load_map

    return load_map(model).phases


def _line(sec: Section, name: str, *, required: bool) -> int | str | None:
    """A GPIO line: an offset on the chip or a line name from the device tree."""
    if not sec.has(name):
        return sec.str(name) if required else sec.str(name, None)
    value = sec.data[name]
    if isinstance(value, str):
        if not value:
            raise sec.error(name, "line name must not be empty")
        return sec.str(name)
    if isinstance(value, int) and not isinstance(value, bool):
        return sec.int(name, min=0, max=4095)
    raise sec.error(name, f"must be a line offset (whole number) or a line name (string), got {value!r}")


def _relay(sec: Section) -> DriverSettings:
    backend = _backend(sec, RELAY_BACKENDS)
    opts: dict[str, Any] = {"settle_ms": sec.int("settle_ms", 100, min=0, max=5000)}
    if backend == "sim":
        opts["switch_delay_ms"] = sec.int("switch_delay_ms", 0, min=0, max=5000)
        opts["has_feedback"] = sec.bool("feedback", True)
        fail_safe = sec.str("fail_safe", "simulated contactor; opens when the process stops")
    else:
        opts["chip"] = sec.str("chip", "/dev/gpiochip0")
        opts["line"] = _line(sec, "line", required=True)
        opts["active_low"] = sec.bool("active_low", False)
        opts["feedback_line"] = _line(sec, "feedback_line", required=False)
        opts["feedback_active_low"] = sec.bool("feedback_active_low", False)
        if opts["feedback_line"] is not None and opts["feedback_line"] == opts["line"]:
            raise sec.error("feedback_line", "must differ from relay.line")
        fail_safe = sec.str("fail_safe")
    if not fail_safe.strip():
        raise sec.error("fail_safe", "must say how the hardware keeps the relay open without the agent")
    opts["fail_safe"] = fail_safe
    sec.finish()
    return DriverSettings(backend, _frozen(opts))


def _pilot(sec: Section, phases: int) -> DriverSettings:
    backend = _backend(sec, PILOT_BACKENDS)
    opts: dict[str, Any] = {}
    if backend == "sim":
        opts["car_max_current_a"] = sec.float("car_max_current_a", 16.0, min=6.0, max=80.0)
        opts["car_phases"] = sec.int("car_phases", phases, min=1, max=3)
        if opts["car_phases"] == 2:
            raise sec.error("car_phases", "unsupported phase count 2", "1, 3")
    elif backend == "linux":
        opts["sysfs_root"] = sec.str("sysfs_root", "/sys")
        opts["pwmchip"] = sec.int("pwmchip", 0, min=0, max=255)
        opts["pwm_channel"] = sec.int("pwm_channel", 0, min=0, max=255)
        opts["pwm_inverted"] = sec.bool("pwm_inverted", False)
        opts["iio_device"] = sec.int("iio_device", 0, min=0, max=255)
        opts["adc_channel"] = sec.int("adc_channel", 0, min=0, max=255)
        opts["adc_negative_channel"] = sec.int("adc_negative_channel", None, min=0, max=255)
        opts["adc_gain"] = sec.float("adc_gain", 1.0, min=-1000.0, max=1000.0)
        opts["adc_offset_v"] = sec.float("adc_offset_v", 0.0, min=-50.0, max=50.0)
        opts["hysteresis_v"] = sec.float("hysteresis_v", 0.5, min=0.0, max=1.4)
        opts["sample_interval_ms"] = sec.int("sample_interval_ms", 10, min=1, max=1000)
    sec.finish()
    return DriverSettings(backend, _frozen(opts))
