"""Board profiles: which driver backends a charger board uses and how they are wired.

A profile is a TOML file with four tables, ``[board]``, ``[meter]``, ``[relay]`` and
``[pilot]``; each driver table names a ``backend`` and the keys that backend needs (the
backends and their readers are registered in ``board/backends.py``). An optional
``[grid_meter]`` names the meter of the site's whole draw, for the load manager
(``drivers.meter.grid``).

A board with several connectors (a Bharat AC-001 point: three socket outlets on one controller;
a twin Type 2 post) writes one ``[[connector]]`` table per connector instead of the three device
tables: its ``id``, its ``max_current_a``, the supply ``phase`` it is wired to (1 to 3; left out,
all of the board's phases) and its own ``meter``, ``relay`` and ``pilot`` sub-tables, read by the
same backends. Each connector becomes a ``BoardProfile`` of its own (``connectors``), built and
run as one charger by the runtime; the board's ``meter``, ``relay`` and ``pilot`` are then the
first connector's. Built-in
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

from board import backends
from drivers.backend import BoardFacts
from drivers.configfile import ConfigError, Section, load_toml

PROFILES_DIR = Path(__file__).resolve().parent / "profiles"
DEFAULT_PROFILE = "sim"

_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


def _frozen(options: dict) -> Mapping[str, Any]:
    return MappingProxyType(dict(options))


@dataclass(frozen=True)
class DriverSettings:
    """One driver's backend and the settings its ``parse`` read, which its ``build`` takes."""

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
    watchdog: str | None = None  # the board's hardware watchdog device, pinged by the agent
    grid_meter: DriverSettings | None = None
    connectors: tuple["ConnectorProfile", ...] = ()

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
        if self.watchdog:
            rows.append(("watchdog", self.watchdog))
        if self.grid_meter is not None:
            rows.append(("grid meter", f"{self.grid_meter.backend}: " + _opts(self.grid_meter.options)))
        for conn in self.connectors:
            rows.append((f"connector {conn.connector_id}",
                         f"max {conn.board.max_current_a:g} A on {_phase_text(conn.phase, self.phases)}, "
                         f"meter {conn.board.meter.backend} {conn.board.meter.options.get('model')}, "
                         f"relay {conn.board.relay.backend}, pilot {conn.board.pilot.backend}"))
        return rows


@dataclass(frozen=True)
class ConnectorProfile:
    """One connector of a several-connector board: its id, the supply phase it is on, its drivers."""

    connector_id: str
    phase: int | None  # 1 to 3, or None: all of the board's phases
    board: BoardProfile

    @property
    def supply_phases(self) -> tuple[int, ...]:
        """The site phases (0-based) this connector draws from."""
        return (self.phase - 1,) if self.phase is not None else tuple(range(self.board.phases))


def _phase_text(phase: int | None, phases: int) -> str:
    return f"phase L{phase}" if phase is not None else f"{phases} phase(s)"


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
    watchdog = board.str("watchdog", None)
    if watchdog is not None and not watchdog.startswith("/"):
        raise board.error("watchdog", f"not an absolute device path {watchdog!r}", "e.g. /dev/watchdog0")
    board.finish()

    facts = BoardFacts(max_current_a=max_current_a, phases=phases)
    grid_meter = _grid_meter(root.section("grid_meter"), facts) if root.has("grid_meter") else None
    if root.has("connector"):
        for table in ("meter", "relay", "pilot"):
            if root.has(table):
                raise root.error(table, "a board with [[connector]] tables gives each connector its own "
                                        f"{table}", "[connector.meter], [connector.relay], [connector.pilot]")
        connectors = _connectors(root, name, path, description, max_current_a, phases)
        root.finish()
        first = connectors[0].board
        return BoardProfile(name=name, path=path, description=description, max_current_a=max_current_a,
                            phases=phases, meter=first.meter, relay=first.relay, pilot=first.pilot,
                            grid_meter=grid_meter, connectors=tuple(connectors))
    meter = _driver("meter", root.section("meter", required=True), facts)
    relay = _driver("relay", root.section("relay", required=True), facts)
    pilot = _driver("pilot", root.section("pilot", required=True), facts)
    root.finish()
    return BoardProfile(
        name=name, path=path, description=description, max_current_a=max_current_a, phases=phases,
        meter=meter, relay=relay, pilot=pilot, watchdog=watchdog, grid_meter=grid_meter,
    )


MAX_CONNECTORS = 8


def _connectors(root: Section, name: str, path: Path, description: str, board_max_a: float,
                phases: int) -> list[ConnectorProfile]:
    tables = root.sections("connector")
    if not 1 <= len(tables) <= MAX_CONNECTORS:
        raise root.error("connector", f"{len(tables)} connectors", f"1 to {MAX_CONNECTORS} [[connector]] tables")
    out: list[ConnectorProfile] = []
    for sec in tables:
        cid = sec.str("id")
        if not cid.isdigit() or int(cid) < 1 or any(c.connector_id == cid for c in out):
            raise sec.error("id", f"connector id {cid!r} is not a new number", "1, 2, 3 ... each once")
        max_a = sec.float("max_current_a", board_max_a, min=1.0, max=board_max_a)
        phase = sec.int("phase", None, min=1, max=phases)
        conn_phases = 1 if phase is not None else phases
        facts = BoardFacts(max_current_a=max_a, phases=conn_phases)
        meter = _driver("meter", sec.section("meter", required=True), facts)
        relay = _driver("relay", sec.section("relay", required=True), facts)
        pilot = _driver("pilot", sec.section("pilot", required=True), facts)
        sec.finish()
        board = BoardProfile(name=f"{name}#{cid}", path=path, description=description, max_current_a=max_a,
                             phases=conn_phases, meter=meter, relay=relay, pilot=pilot)
        out.append(ConnectorProfile(connector_id=cid, phase=phase, board=board))
    return out


def _grid_meter(sec: Section, facts: BoardFacts) -> DriverSettings:
    """The site's meter: any meter backend, the simulated one serving a household."""
    from drivers.meter.grid import parse_sim

    backend = sec.str("backend", choices=backends.names("meter"))
    if backend == "sim":
        options = parse_sim(sec, facts)
    else:
        options = backends.spec("meter", backend).parse(sec, facts)
    sec.finish()
    return DriverSettings(backend, _frozen(options))


def _driver(kind: str, sec: Section, facts: BoardFacts) -> DriverSettings:
    """One device table: its ``backend`` from the registry, then that backend's own keys."""
    backend = sec.str("backend", choices=backends.names(kind))
    options = backends.spec(kind, backend).parse(sec, facts)
    sec.finish()
    if kind == "relay" and not str(options.get("fail_safe", "")).strip():
        raise TypeError(f"relay backend {backend!r} must return its fail_safe sentence")
    return DriverSettings(backend, _frozen(options))
