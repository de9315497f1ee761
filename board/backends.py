"""The board's registry of driver backends, one line per backend and one tuple per device kind.

Each line is (name a profile writes in ``backend = "..."``, module exposing ``BACKEND``, a
``drivers.backend.Backend``). Adding a backend (a relay driver, a CAN-bus pilot, a meter
transport) is its module plus one line here; the profile reader, the error messages' allowed
names and the board builder take it from here. Modules are imported only when a profile names
them, so a backend's hardware library stays unloaded until it is chosen.
"""
from __future__ import annotations

import importlib

from drivers.backend import Backend

Registry = tuple[tuple[str, str], ...]

METERS: Registry = (
    ("sim", "drivers.meter.sim_backend"),
    ("modbus-rtu", "drivers.meter.rtu_backend"),
    ("modbus-tcp", "drivers.meter.tcp_backend"),
)
RELAYS: Registry = (
    ("sim", "drivers.relay.sim_backend"),
    ("gpiod", "drivers.relay.gpiod_backend"),
)
PILOTS: Registry = (
    ("sim", "drivers.pilot.sim_backend"),
    ("none", "drivers.pilot.none_backend"),
    ("linux", "drivers.pilot.linux_backend"),
)


def registry(kind: str) -> Registry:
    """The registry of one device kind, read when asked (so a test can add a line to it)."""
    tables = {"meter": METERS, "relay": RELAYS, "pilot": PILOTS}
    if kind not in tables:
        raise ValueError(f"backend kind {kind!r} unknown (allowed: {', '.join(tables)})")
    return tables[kind]


def names(kind: str) -> tuple[str, ...]:
    """The backend names a profile may write for ``kind``, in registry order."""
    return tuple(name for name, _ in registry(kind))


def spec(kind: str, name: str) -> Backend:
    """The registered ``Backend`` of ``kind`` called ``name``; a mismatched module is a coding error."""
    modules = dict(registry(kind))
    if name not in modules:
        raise ValueError(f"no {kind} backend {name!r} (registered: {', '.join(names(kind))})")
    backend = getattr(importlib.import_module(modules[name]), "BACKEND", None)
    if not isinstance(backend, Backend) or (backend.kind, backend.name) != (kind, name):
        raise TypeError(f"{modules[name]}.BACKEND must be Backend(kind={kind!r}, name={name!r}, ...)")
    return backend
