"""The binding seam: every way the outside world reaches the charger is a binding in one registry.

A binding (the MQTT network, Beckn over HTTP, OCPI; later the owner's page, OCPP) is a package
that exposes ``BINDING``, a ``BindingSpec``: the configuration table it owns, a parser for that
table and a builder. Adding one is a new package plus one line in ``REGISTRY``; nothing else
in the agent knows its name.

Why the parser is separate from the builder: every table of every file is read and checked
when the configuration is loaded (``agent.config.load_config``), before the relay, the
journal or a port is touched, so ``[http] bogus_key = 1`` stops the agent with a line naming
the file and key instead of half-way through the start. The builder runs later, after the
relay is open and the journal reconciled, and gets a ``BindingContext``: the few things a
binding may use, instead of the whole runtime.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Protocol

# table name in the site configuration -> the module whose ``BINDING`` serves it; the order is
# the start order (and the reverse the stop order).
REGISTRY: tuple[tuple[str, str], ...] = (
    ("network", "protocols.mqtt.binding"),
    ("http", "protocols.http.binding"),
    ("ocpi", "protocols.ocpi.binding"),
    ("owner_page", "protocols.owner.binding"),
    ("load_share", "protocols.loadshare"),
)


class Binding(Protocol):
    """A running binding: the agent starts it after the runtime and closes it before."""

    async def start(self) -> None: ...

    async def close(self) -> None: ...

    def describe(self) -> str:
        """One line for the log once started (where it listens, what it joined)."""
        ...


@dataclass(frozen=True, kw_only=True)
class BindingContext:
    """What a binding is handed: the facade and the few shared services it may use.

    ``service`` is the ``ChargerService`` (the only way to the charger); ``outbox`` the journal's
    durable outbox (``enqueue``/``due``/``ack``/``retry``, each binding under its own topic
    prefix); ``orders`` the journal's order store (``save_order``/``orders``/``delete_order``,
    each binding under its own name); ``now_s`` the charger's wall clock; ``data_dir`` the
    folder beside the journal where a binding may keep files of its own; ``revocations`` the
    agency's checked revocation list from ``[identity] revocations`` (or None).
    """

    service: Any
    site: Any
    identity: Any
    outbox: Any
    orders: Any
    now_s: Callable[[], float]
    data_dir: Path
    revocations: dict | None = None


@dataclass(frozen=True, kw_only=True)
class BindingSpec:
    """How the agent parses and builds one binding.

    ``parse(table, file)`` validates the table (``ConfigError`` naming file and key) and returns
    its settings; it does no I/O beyond reading files the table names. ``build(ctx, settings)``
    returns the ``Binding``, or None when the settings say it is off.
    """

    table: str
    parse: Callable[[dict, Path], Any]
    build: Callable[[BindingContext, Any], Binding | None]


def spec(table: str) -> BindingSpec:
    """The registered binding for a configuration table (imported only when the table is there)."""
    for name, module in REGISTRY:
        if name == table:
            found = importlib.import_module(module).BINDING
            if found.table != table:
                raise TypeError(f"{module}.BINDING serves [{found.table}], registered for [{table}]")
            return found
    raise KeyError(table)


def tables() -> tuple[str, ...]:
    return tuple(name for name, _ in REGISTRY)


def parse_tables(root: dict, file: Path) -> dict[str, Any]:
    """Every binding table present in a configuration, parsed: ``{table: settings}``."""
    return {name: spec(name).parse(root[name], file) for name in tables() if name in root}
