"""What each command and the agent load: checked in a fresh interpreter by ``sys.modules``, never by timing.

The libraries named here cost tens of milliseconds and several MiB each on a charger's board
(``BENCHMARKS.md``, start-up); a command that does not use them must not import them.
"""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
HEAVY = ("paho", "cryptography", "aiohttp", "pymodbus", "pymodbus.server", "asyncio", "sqlite3")


def loaded_after(code: str, names: tuple[str, ...] = HEAVY) -> set[str]:
    probe = code + f"\nimport json, sys\nprint(json.dumps([m for m in {names!r} if m in sys.modules]))\n"
    out = subprocess.run([sys.executable, "-c", probe], cwd=ROOT, capture_output=True, text=True, timeout=60,
                         env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    return set(json.loads(out.stdout.strip().splitlines()[-1]))


def test_building_the_command_line_imports_no_network_crypto_or_event_loop_library():
    assert loaded_after("import tools.cli; tools.cli.build_parser()") == set()


@pytest.mark.parametrize("argv", [["tariff", "check", "examples/tariffs/flat.toml"], ["board", "list"]])
def test_a_command_that_reads_files_loads_none_of_the_heavy_libraries(argv):
    loaded = loaded_after(f"import tools.cli\ntry:\n    tools.cli.main({argv!r})\nexcept SystemExit:\n    pass")
    assert loaded <= {"asyncio"}, loaded


def test_loading_the_configuration_of_a_site_without_bindings_loads_no_binding_library(tmp_path):
    from tools.provision import provision_site

    config = provision_site(tmp_path, site_id="in.test.lazy", name="Lazy", lat=12.9, lon=77.6, auth="free_vend")
    loaded = loaded_after(f"from agent.config import load_config\nload_config({str(config)!r})")
    assert not loaded & {"paho", "aiohttp", "cryptography", "pymodbus"}, loaded


def test_the_agent_without_bindings_loads_neither_mqtt_nor_http():
    loaded = loaded_after("import agent.bootstrap, board.build, tools.run_cmd, tools.service")
    assert not loaded & {"paho", "aiohttp"}, loaded


def test_the_simulated_board_serves_its_meter_without_pymodbus_http_simulator():
    code = """
import asyncio
from board.build import build_board

async def main():
    async with build_board("sim") as board:
        await board.meter.read()

asyncio.run(main())
"""
    loaded = loaded_after(code)
    assert "aiohttp" not in loaded and "pymodbus" in loaded


def test_pymodbus_server_imported_after_the_simulated_meter_is_the_whole_package():
    code = """
import asyncio
from board.build import build_board

async def main():
    async with build_board("sim") as board:
        await board.meter.read()

asyncio.run(main())
from pymodbus.server import ModbusTcpServer, ModbusSimulatorServer
from pymodbus.server.server import ModbusTcpServer as Same
assert ModbusTcpServer is Same
"""
    assert "aiohttp" in loaded_after(code)


def test_the_agent_command_keeps_neither_the_other_commands_nor_shutil_in_memory(tmp_path):
    others = tuple(f"tools.{name}" for name in ("agency_cmd", "ocpi_cmd", "discover_cmd", "upgrade_cmd", "bundle_cmd"))
    code = f"""
import tools.cli
try:
    tools.cli.main(["--log-level", "WARNING", "run", "--config", {str(tmp_path / "missing.toml")!r}])
except SystemExit:
    pass
"""
    loaded = loaded_after(code, ("tools.run_cmd", "shutil", "tempfile", "lzma", "protocols.node", *others))
    assert loaded == {"tools.run_cmd"}, loaded


def test_help_before_the_command_still_lists_every_command():
    out = subprocess.run([sys.executable, "-m", "tools.cli", "--help"], cwd=ROOT, capture_output=True, text=True,
                         timeout=60, env={"PYTHONPATH": str(ROOT), "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    assert all(name in out.stdout for name in ("run", "demo", "tariff", "upgrade", "bundle")), out.stdout


def test_a_site_on_the_mqtt_network_without_catalog_services_loads_no_http_library():
    code = """
import protocols.mqtt.binding
from protocols.mqtt.stack import NetworkConfig
NetworkConfig.from_table({"brokers": ["mqtt://127.0.0.1:1883"]})
"""
    loaded = loaded_after(code)
    assert "aiohttp" not in loaded and "paho" in loaded, loaded


def test_every_command_module_registers_the_command_its_name_says():
    """``urja NAME`` registers ``tools/NAME_cmd.py`` alone, so that module must define NAME."""
    import argparse

    from tools.cli import COMMAND_MODULES, build_parser

    for module in COMMAND_MODULES:
        parser = build_parser((module,))
        commands = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction)).choices
        assert module.removesuffix("_cmd") in commands, (module, sorted(commands))
