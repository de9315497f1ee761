"""Board backends come from one registry per device kind: a backend is a module plus one line.

A backend registered here by a test is read from a profile and built with nothing else
changed; a name nobody registered is refused naming the registered ones; and a profile of a
backend whose hardware library is missing (``gpiod``) still checks.
"""
from __future__ import annotations

import sys

import pytest
from can_pilot_backend import CanPilot

import tools.cli
from board import backends
from board.build import build_board
from board.profile import PROFILES_DIR, load_profile
from drivers.backend import Backend
from drivers.configfile import ConfigError

SIM = (PROFILES_DIR / "sim.toml").read_text()
SIM_PILOT = '[pilot]\nbackend = "sim"\ncar_max_current_a = 16\ncar_phases = 3'


def cli(argv):
    """The real ``urja`` entry point, with only the board sub-commands loaded."""
    saved = tools.cli.COMMAND_MODULES
    tools.cli.COMMAND_MODULES = ("board_cmd",)
    try:
        return tools.cli.main(argv)
    finally:
        tools.cli.COMMAND_MODULES = saved


@pytest.fixture
def can_registered(monkeypatch):
    monkeypatch.setattr(backends, "PILOTS", backends.PILOTS + (("can", "can_pilot_backend"),))


def can_profile(tmp_path, pilot_table: str):
    assert SIM_PILOT in SIM, "test setup: the replaced text must be in the profile"
    path = tmp_path / "can.toml"
    path.write_text(SIM.replace(SIM_PILOT, pilot_table))
    return path


async def test_a_registered_backend_is_read_and_built(can_registered, tmp_path):
    path = can_profile(tmp_path, '[pilot]\nbackend = "can"\nbus = "can1"\nnode_id = 7')
    profile = load_profile(path)
    assert profile.pilot.backend == "can"
    assert dict(profile.pilot.options) == {"bus": "can1", "node_id": 7}
    async with build_board(profile) as board:
        pilot = board.pilot
        assert isinstance(pilot, CanPilot) and pilot.started
        assert (pilot.bus, pilot.node_id, pilot.max_current_a) == ("can1", 7, 32.0)
        assert pilot.relay is board.relay and not board.relay.closed
        assert board.sim.car is None  # nothing simulated rides on a pilot the sim cannot see
        await pilot.set_offered_current(16)
        assert pilot.frames == [(7, 267)]
        assert (await board.meter.read()).current_a == (0.0, 0.0, 0.0)
        relay = board.relay
    assert pilot.released and relay.released


def test_a_registered_backend_checks_its_own_keys(can_registered, tmp_path):
    path = can_profile(tmp_path, '[pilot]\nbackend = "can"\nnode_id = 200')
    with pytest.raises(ConfigError) as err:
        load_profile(path)
    assert (err.value.file, err.value.key, err.value.allowed) == (str(path), "pilot.node_id", "1 to 127")
    path = can_profile(tmp_path, '[pilot]\nbackend = "can"\nnode_id = 1\nbaud = 500000')
    with pytest.raises(ConfigError) as err:
        load_profile(path)
    assert err.value.key == "pilot.baud" and err.value.allowed == "backend, bus, node_id"


def test_an_unknown_backend_is_refused_naming_the_registered_ones(can_registered, tmp_path):
    path = can_profile(tmp_path, '[pilot]\nbackend = "canbus"\nnode_id = 7')
    with pytest.raises(ConfigError) as err:
        load_profile(path)
    assert err.value.file == str(path) and err.value.key == "pilot.backend"
    assert err.value.allowed == "sim, none, linux, can"


def test_every_registered_module_exposes_its_backend():
    for kind in ("meter", "relay", "pilot"):
        for name in backends.names(kind):
            spec = backends.spec(kind, name)
            assert isinstance(spec, Backend) and (spec.kind, spec.name) == (kind, name)


def test_a_module_registered_under_the_wrong_name_is_a_coding_error(monkeypatch):
    monkeypatch.setattr(backends, "PILOTS", backends.PILOTS + (("canopen", "can_pilot_backend"),))
    with pytest.raises(TypeError, match="can_pilot_backend.BACKEND"):
        backends.spec("pilot", "canopen")


@pytest.mark.parametrize("name", ["cm4-carrier", "usb-rs485-sbc"])
def test_gpiod_profile_checks_without_gpiod(monkeypatch, capsys, name):
    # a fresh import of the backend's modules, as on a machine that never had gpiod
    for module in [m for m in sys.modules if m.split(".")[0] == "gpiod" or m.startswith("drivers.relay.gpiod")]:
        parent, _, child = module.rpartition(".")
        if parent in sys.modules:  # the package's attribute too, so both come back afterwards
            monkeypatch.delattr(sys.modules[parent], child, raising=False)
        monkeypatch.delitem(sys.modules, module)
    monkeypatch.setitem(sys.modules, "gpiod", None)  # import gpiod now raises ImportError
    with pytest.raises(ImportError):
        import gpiod  # noqa: F401
    assert cli(["board", "check", name]) == 0
    out = capsys.readouterr().out
    assert any(line.split()[:2] == ["relay", "gpiod:"] for line in out.splitlines()), out
    assert "profile OK" in out
    assert "drivers.relay.gpiod_relay" not in sys.modules
