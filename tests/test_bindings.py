"""The binding seam: one registry, every table checked before anything starts, a small context."""
from __future__ import annotations

import ast
import os
import subprocess
import sys
from pathlib import Path

import pytest

from agent import bindings
from agent.config import load_config
from agent.journal import Journal, StorageError
from drivers.configfile import ConfigError
from tests import echo_binding
from tests.support import sim_config

ROOT = Path(__file__).resolve().parent.parent


def _site_file(tmp_path: Path, extra_toml: str) -> Path:
    path = Path(sim_config(tmp_path).path)
    path.write_text(path.read_text() + "\n" + extra_toml)
    return path


def test_every_registered_binding_serves_the_table_it_is_registered_for():
    for table in bindings.tables():
        assert bindings.spec(table).table == table


@pytest.mark.parametrize("table", ["network", "http", "ocpi"])
def test_a_misspelt_key_in_any_binding_table_is_refused_when_the_configuration_is_loaded(tmp_path, table):
    path = _site_file(tmp_path, f"[{table}]\nbogus_key = 1\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert err.value.key == f"{table}.bogus_key"
    assert str(path) in str(err.value)


def test_a_bad_value_in_a_binding_table_is_refused_when_the_configuration_is_loaded(tmp_path):
    path = _site_file(tmp_path, '[http]\nlisten = "nowhere"\n')
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert err.value.key == "http.listen"


def test_the_loaded_configuration_carries_each_binding_table_parsed(tmp_path):
    path = _site_file(tmp_path, '[http]\nlisten = "127.0.0.1:0"\n\n[ocpi]\nenabled = false\n')
    cfg = load_config(path)
    assert set(cfg.bindings) == {"http", "ocpi"}
    assert cfg.bindings["http"].port == 0 and cfg.bindings["ocpi"].enabled is False


def test_urja_run_names_a_bad_binding_key_in_one_line_before_anything_starts(tmp_path):
    path = _site_file(tmp_path, "[http]\nbogus_key = 1\n")
    env = dict(os.environ, PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, "-m", "tools.cli", "run", "--config", str(path), "--duration-s", "5"],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "http.bogus_key" in lines[0], done.stderr
    assert "started" not in done.stderr + done.stdout


async def test_a_second_agent_is_refused_by_the_journal_before_it_touches_the_board(tmp_path):
    from agent.bootstrap import open_runtime

    cfg = sim_config(tmp_path)
    # A board whose relay and meter cannot exist here: had it been built first, the error would be
    # about the GPIO chip or the serial port, and a real bus would have heard from us.
    profile = tmp_path / "absent-board.toml"
    profile.write_text((ROOT / "board" / "profiles" / "usb-rs485-sbc.toml").read_text()
                       .replace("/dev/ttyUSB0", str(tmp_path / "no-such-tty"))
                       .replace("/dev/gpiochip0", str(tmp_path / "no-such-gpiochip")))
    Path(cfg.journal_path).parent.mkdir(parents=True, exist_ok=True)
    held = Journal.open(cfg.journal_path)
    try:
        with pytest.raises(StorageError, match="held by another process"):
            async with open_runtime(cfg, board_profile=str(profile)):
                pass
    finally:
        held.close()


def test_urja_run_refused_by_a_held_journal_says_so_in_one_line(tmp_path):
    cfg = sim_config(tmp_path)
    Path(cfg.journal_path).parent.mkdir(parents=True, exist_ok=True)
    held = Journal.open(cfg.journal_path)
    try:
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        done = subprocess.run([sys.executable, "-m", "tools.cli", "run", "--config", cfg.path, "--duration-s", "5"],
                              cwd=ROOT, env=env, capture_output=True, text=True, timeout=60)
    finally:
        held.close()
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert done.stderr.strip().splitlines()[-1].startswith("urja: journal ")


@pytest.fixture
def echo_registered(monkeypatch):
    monkeypatch.setattr(bindings, "REGISTRY", bindings.REGISTRY + (("echo", "tests.echo_binding"),))
    echo_binding.EVENTS.clear()
    yield
    echo_binding.EVENTS.clear()


def test_a_new_binding_table_is_checked_by_its_own_parser(tmp_path, echo_registered):
    path = _site_file(tmp_path, "[echo]\ngreting = 'hi'\n")
    with pytest.raises(ConfigError) as err:
        load_config(path)
    assert err.value.key == "echo.greting"


async def test_a_new_binding_is_started_after_the_runtime_and_closed_before_it(tmp_path, echo_registered):
    from agent.bootstrap import open_runtime

    cfg = load_config(_site_file(tmp_path, "[echo]\ngreeting = 'namaste'\n"))
    async with open_runtime(cfg) as rt:
        assert isinstance(rt.bindings["echo"], echo_binding.Echo)
        ctx = rt.bindings["echo"].ctx
        assert ctx.service is rt and ctx.outbox is rt.journal and ctx.orders is rt.journal
        assert ctx.data_dir == Path(cfg.journal_path).parent
    assert echo_binding.EVENTS == [("start", "namaste", "AVAILABLE"), ("close", "AVAILABLE")]


def test_only_the_registry_names_the_binding_packages():
    """Adding a binding is a package plus one registry line: nothing else in the agent may
    import a binding package."""
    binding_packages = ("protocols.mqtt", "protocols.http", "protocols.ocpi")
    found = []
    for path in sorted((ROOT / "agent").rglob("*.py")):
        if path.name == "bindings.py":
            continue
        for node in ast.walk(ast.parse(path.read_text(), str(path))):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                if name.startswith(binding_packages):
                    found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {name}")
    assert found == []


def test_the_network_table_is_parsed_once_with_the_providers_keys_and_the_transports(tmp_path):
    path = _site_file(tmp_path, '[network]\nbrokers = ["mqtt://127.0.0.1:1883"]\npayment = "postpaid_certified"\n'
                                'quote_ttl_s = 60\n')
    cfg = load_config(path)
    from protocols.beckn.policy import Policy

    assert cfg.bindings["network"].brokers == ("mqtt://127.0.0.1:1883",)
    assert Policy.from_site(cfg) == cfg.bindings["network"].policy == Policy(payment="postpaid_certified",
                                                                               quote_ttl_s=60)
    bad = _site_file(tmp_path / "bad", '[network]\npayment = "credit"\n')
    with pytest.raises(ConfigError) as err:
        load_config(bad)
    assert err.value.key == "network.payment" and "prepaid" in str(err.value)
