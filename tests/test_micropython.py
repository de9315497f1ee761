"""The portable core gives the same answers under MicroPython as under CPython.

Every ``tests/portable/*_scenarios.py`` is run twice: imported here under CPython, and inside the
MicroPython WebAssembly port (pinned in ``tests/micropython/package.json``) by Node. Their lines
must be identical. Only a missing Node skips this; a missing npm package is installed from the
lock file, and a failing install fails the test.
"""
from __future__ import annotations

import importlib.util
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
RUNNER_DIR = ROOT / "tests" / "micropython"
PORTABLE_DIR = ROOT / "tests" / "portable"
SCENARIOS = sorted(PORTABLE_DIR.glob("*_scenarios.py"))
PACKAGE = RUNNER_DIR / "node_modules" / "@micropython" / "micropython-webassembly-pyscript" / "micropython.mjs"


def cpython_lines(path: Path) -> list[str]:
    spec = importlib.util.spec_from_file_location("portable_" + path.stem, path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return [str(line) for line in module.run()]


def ensure_package(node: str) -> None:
    if PACKAGE.exists():
        return
    npm = shutil.which("npm")
    if npm is None:
        pytest.fail(f"node is at {node} but npm is not on PATH; cannot install {RUNNER_DIR / 'package.json'}")
    command = [npm, "ci", "--no-audit", "--no-fund"]
    done = subprocess.run(command, cwd=RUNNER_DIR, capture_output=True, text=True, timeout=300)
    if done.returncode != 0 or not PACKAGE.exists():
        pytest.fail(f"{' '.join(command)} in {RUNNER_DIR} failed ({done.returncode}):\n{done.stderr[-2000:]}")


@pytest.fixture(scope="module")
def micropython_sections() -> dict[str, list[str]]:
    node = shutil.which("node")
    if node is None:
        pytest.skip("node is not installed: the MicroPython comparison needs Node 20 (apt-get install nodejs)")
    ensure_package(node)
    command = [node, str(RUNNER_DIR / "run_scenarios.mjs"), str(ROOT)] + [str(p) for p in SCENARIOS]
    done = subprocess.run(command, cwd=RUNNER_DIR, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        pytest.fail(f"MicroPython run failed ({done.returncode}):\n{done.stderr[-4000:]}")
    sections: dict[str, list[str]] = {}
    current = None
    for line in done.stdout.splitlines():
        if line.startswith("=== "):
            current = line[4:]
            sections[current] = []
        elif current is not None:
            sections[current].append(line)
    return sections


def test_scenario_files_are_found():
    assert PORTABLE_DIR / "core_scenarios.py" in SCENARIOS


@pytest.mark.parametrize("path", SCENARIOS, ids=[p.stem for p in SCENARIOS])
def test_micropython_matches_cpython(path, micropython_sections):
    expected = cpython_lines(path)
    assert expected, f"{path.name} produced no lines"
    got = micropython_sections.get(path.stem)
    assert got is not None, f"{path.name} printed nothing under MicroPython"
    for index, (want, have) in enumerate(zip(expected, got, strict=False)):  # lengths compared below
        assert have == want, f"{path.name} line {index} differs:\nCPython:     {want}\nMicroPython: {have}"
    assert len(got) == len(expected)


def test_core_scenarios_cover_the_rules():
    lines = cpython_lines(PORTABLE_DIR / "core_scenarios.py")
    assert lines == sorted(lines)
    text = "\n".join(lines)
    for expected in ("open_relay(pilot_B)", "open_relay(fault_pilot_E)", "open_relay(overcurrent)",
                     "open_relay(meter_timeout)", "code=relay_welded", "open_relay(fault_meter_energy_backwards)",
                     "open_relay(limit_energy)", "open_relay(limit_money)", "open_relay(limit_time)",
                     "open_relay(ev_finished)", "error session-faulted", "error unsafe-config",
                     "auth:card-9 error auth-token-unknown"):
        assert expected in text, expected
