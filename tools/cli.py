"""The ``urja`` command: argument parsing only; each sub-command lives in its own module.

A sub-command module exposes ``register(subparsers)`` which adds its parser and sets
``func(args) -> int`` as the handler. Keeping them apart lets each command import only
what it needs, so ``urja tariff check`` does not load Modbus or MQTT.
"""
from __future__ import annotations

import argparse
import importlib
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


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="urja", description="Urja charge-controller agent")
    parser.add_argument("--log-level", default="INFO", choices=["DEBUG", "INFO", "WARNING", "ERROR"])
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    for name in COMMAND_MODULES:
        importlib.import_module(f"tools.{name}").register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    from tools.logs import setup_logging

    parser = build_parser()
    args = parser.parse_args(argv)
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
