"""The ``urja`` command: argument parsing only; each sub-command lives in its own module.

A sub-command module exposes ``register(subparsers)`` which adds its parser and sets
``func(args) -> int`` as the handler. Keeping them apart lets each command import only
what it needs, so ``urja tariff check`` does not load Modbus or MQTT.
"""
from __future__ import annotations

import argparse
import importlib
import os
import sys

from agent.core.errors import AgentError
from drivers.configfile import ConfigError
from drivers.errors import DriverError
from protocols.errors import ProtocolError

# Module names under tools/, in the order they appear in --help.
COMMAND_MODULES = (
    "run_cmd",
    "selftest_cmd",
    "board_cmd",
    "tariff_cmd",
    "keygen_cmd",
    "agency_cmd",
    "verify_cmd",
    "bridge_cmd",
    "ocpi_cmd",
    "fault_cmd",
    "discover_cmd", "charge_cmd",
    "cds_cmd", "registry_cmd",
    "journal_cmd", "provision_cmd", "diag_cmd", "bundle_cmd", "upgrade_cmd",
)


def _columns() -> int:
    """The terminal's width as ``shutil.get_terminal_size`` finds it."""
    try:
        return int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        pass
    try:
        return os.get_terminal_size(sys.__stdout__.fileno()).columns or 80
    except (AttributeError, ValueError, OSError):
        return 80


class _Formatter(argparse.HelpFormatter):
    """argparse's own, sized without importing ``shutil``.

    argparse builds a formatter for every argument it adds, and its default imports ``shutil``
    (with ``bz2``, ``lzma`` and ``zlib``) to find the terminal's width: half a MiB the agent would
    keep for its whole life.
    """

    def __init__(self, prog: str, **kwargs):
        kwargs.setdefault("width", _columns() - 2)
        super().__init__(prog, **kwargs)


class _Parser(argparse.ArgumentParser):
    """Every parser of the command line, sub-commands' included, uses :class:`_Formatter`."""

    def __init__(self, *args, formatter_class=_Formatter, **kwargs):
        super().__init__(*args, formatter_class=formatter_class, **kwargs)


def build_parser(modules: tuple[str, ...] = COMMAND_MODULES) -> argparse.ArgumentParser:
    parser = _Parser(prog="urja", description="Urja charge-controller agent")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in modules:
        importlib.import_module(f"tools.{name}").register(sub)
    return parser


def _named_module(argv: list[str]) -> str | None:
    """The module of the command ``argv`` names, when the name says which (``run`` -> ``run_cmd``).

    The agent is a long-lived process on a small board: the other commands' modules and their
    parsers would stay in its memory for nothing. Help before the command needs them all.
    """
    args = iter(argv)
    for arg in args:
        if arg == "--log-level":
            next(args, None)
        elif arg in ("-h", "--help"):
            return None
        elif not arg.startswith("-"):
            return f"{arg}_cmd" if f"{arg}_cmd" in COMMAND_MODULES else None
    return None


def _parse(argv: list[str]) -> argparse.Namespace:
    module = _named_module(argv)
    return build_parser((module,) if module else COMMAND_MODULES).parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    from tools.logs import setup_logging

    args = _parse(sys.argv[1:] if argv is None else argv)
    setup_logging(args.log_level)
    try:
        return int(args.func(args) or 0)
    except ConfigError as exc:
        print(f"urja: configuration error: {exc}", file=sys.stderr)
        return 2
    except (AgentError, DriverError, ProtocolError) as exc:
        # A refusal the agent understood (journal held by another agent, a meter that does not
        # answer, a bad signature): one line naming it, never a traceback.
        print(f"urja: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130


if __name__ == "__main__":
    sys.exit(main())
