"""The systemd unit the bundle installs, checked by systemd's own ``systemd-analyze verify``."""
from __future__ import annotations

import configparser
import shutil
import subprocess
import sys
from importlib import resources
from pathlib import Path

import pytest

UNIT = (resources.files("tools") / "data" / "urja.service.in").read_text()


def analyze() -> str:
    found = shutil.which("systemd-analyze")
    if found is None:
        if not sys.platform.startswith("linux"):
            pytest.skip("systemd exists only on Linux")
        pytest.fail("systemd-analyze is missing: install Debian's systemd package (make deps)")
    return found


def render(tmp_path: Path, text: str = UNIT, *, with_binary: bool = True) -> Path:
    tmp_path.mkdir(parents=True, exist_ok=True)
    prefix = tmp_path / "opt" / "urja"
    if with_binary:
        (prefix / "current" / "bin").mkdir(parents=True)
        urja = prefix / "current" / "bin" / "urja"
        urja.write_text("#!/bin/sh\n")
        urja.chmod(0o755)
    unit = tmp_path / "urja.service"
    unit.write_text(text.replace("@PREFIX@", str(prefix)).replace("@CONFIG@", "/etc/urja/urja.toml")
                    .replace("@USER@", "urja"))
    return unit


def verify(unit: Path) -> subprocess.CompletedProcess:
    return subprocess.run([analyze(), "verify", str(unit)], capture_output=True, text=True, timeout=60)


def test_the_unit_passes_systemd_analyze_verify_without_a_single_warning(tmp_path):
    out = verify(render(tmp_path))
    assert out.returncode == 0 and out.stdout + out.stderr == "", out.stdout + out.stderr


def test_verify_would_catch_a_misspelt_key_and_a_missing_program(tmp_path):
    misspelt = verify(render(tmp_path / "a", UNIT.replace("WatchdogSec=", "WatchdogSecs=")))
    assert "Unknown key 'WatchdogSecs'" in misspelt.stderr
    missing = verify(render(tmp_path / "b", with_binary=False))
    assert missing.returncode != 0 and "is not executable" in missing.stderr


def test_the_unit_waits_for_ready_has_a_watchdog_and_runs_unprivileged_in_a_sandbox(tmp_path):
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.optionxform = str
    unit.read_string(render(tmp_path).read_text())
    service = unit["Service"]
    assert service["Type"] == "notify" and service["NotifyAccess"] == "main"
    assert 0 < int(service["WatchdogSec"]) <= 30 and service["Restart"] == "always"
    assert service["User"] == "urja" and service["CapabilityBoundingSet"] == ""
    assert service["ProtectSystem"] == "strict" and service["NoNewPrivileges"] == "yes"
    assert service["ExecStart"].endswith("/current/bin/urja run --config /etc/urja/urja.toml")
