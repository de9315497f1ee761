"""READY, watchdog pings and STOPPING over a real unix datagram socket; the board's watchdog device."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from agent.notify import HardwareWatchdog, Heartbeat, SystemdNotifier, heartbeat_for
from board.profile import PROFILES_DIR, load_profile
from drivers.configfile import ConfigError

ROOT = Path(__file__).resolve().parent.parent


@pytest.fixture
def notify_socket(tmp_path):
    path = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(path)
    sock.settimeout(30)
    yield path, sock
    sock.close()


def test_ready_and_watchdog_arrive_as_datagrams_on_the_named_socket(notify_socket):
    path, sock = notify_socket
    notifier = SystemdNotifier(environ={"NOTIFY_SOCKET": path, "WATCHDOG_USEC": "4000000"})
    assert notifier.ready("serving in.test") and notifier.watchdog() and notifier.stopping()
    assert sock.recv(100) == b"READY=1\nSTATUS=serving in.test"
    assert sock.recv(100) == b"WATCHDOG=1"
    assert sock.recv(100) == b"STOPPING=1"
    assert notifier.watchdog_s == 4.0
    notifier.close()


def test_an_abstract_socket_name_is_reached_too():
    name = f"urja-test-{os.getpid()}"
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind("\0" + name)
    sock.settimeout(10)
    try:
        assert SystemdNotifier(environ={"NOTIFY_SOCKET": "@" + name}).ready()
        assert sock.recv(100) == b"READY=1"
    finally:
        sock.close()


def test_without_a_socket_nothing_is_sent_and_nothing_fails():
    notifier = SystemdNotifier(environ={})
    assert not notifier.enabled and not notifier.ready() and notifier.watchdog_s is None


def test_a_watchdog_meant_for_another_process_is_not_ours():
    assert SystemdNotifier(environ={"WATCHDOG_USEC": "1000000", "WATCHDOG_PID": "1"}).watchdog_s is None


def test_the_heartbeat_pings_at_most_once_an_interval_however_often_the_dispatcher_turns():
    now = [0.0]
    pings = []
    beat = Heartbeat(interval_s=1.0, sinks=[lambda: pings.append(now[0])], monotonic_s=lambda: now[0])
    for _ in range(60):  # 3 s of 50 ms safety ticks
        beat.beat()
        now[0] += 0.05
    assert pings == pytest.approx([0.0, 1.0, 2.0])


def test_the_heartbeat_pings_systemd_at_half_its_watchdog_interval_and_the_board_at_its_own():
    notifier = SystemdNotifier(environ={"NOTIFY_SOCKET": "/nonexistent", "WATCHDOG_USEC": "20000000"})
    assert heartbeat_for(notifier, None).interval_s == 10.0
    assert heartbeat_for(SystemdNotifier(environ={}), None) is None


def test_the_hardware_watchdog_is_pinged_and_disarmed_with_the_magic_character(tmp_path):
    device = tmp_path / "watchdog"
    device.write_bytes(b"")
    dog = HardwareWatchdog(str(device))
    dog.ping()
    dog.ping()
    dog.close()
    dog.close()
    assert device.read_bytes() == b"\0\0V"


def test_a_profile_names_its_watchdog_by_absolute_path_only(tmp_path):
    text = (PROFILES_DIR / "sim.toml").read_text().replace('[board]\n', '[board]\nwatchdog = "watchdog0"\n', 1)
    bad = tmp_path / "bad.toml"
    bad.write_text(text)
    with pytest.raises(ConfigError, match="watchdog"):
        load_profile(bad)


def _board_with_watchdog(tmp_path: Path, device: Path) -> Path:
    text = (PROFILES_DIR / "sim.toml").read_text().replace('[board]\n', f'[board]\nwatchdog = "{device}"\n', 1)
    profile = tmp_path / "board.toml"
    profile.write_text(text)
    assert load_profile(profile).watchdog == str(device)
    return profile


@pytest.mark.runtime
def test_the_agent_sends_ready_after_it_started_then_pings_both_watchdogs_and_says_stopping(tmp_path, notify_socket):
    from tools.provision import provision_site

    path, sock = notify_socket
    device = tmp_path / "watchdog"
    device.write_bytes(b"")
    config = provision_site(tmp_path / "site", site_id="in.test.notify", name="Notify", lat=12.9, lon=77.6,
                            auth="free_vend", board=str(_board_with_watchdog(tmp_path, device)))
    env = dict(os.environ, NOTIFY_SOCKET=path, WATCHDOG_USEC="200000", PYTHONPATH=str(ROOT))
    log = tmp_path / "agent.log"
    with log.open("w") as out:
        proc = subprocess.Popen([sys.executable, "-m", "tools.cli", "run", "--config", str(config)], env=env,
                                stdout=out, stderr=subprocess.STDOUT)
    try:
        first = sock.recv(100)
        while first == b"WATCHDOG=1":  # the first beat may come just before READY
            first = sock.recv(100)
        assert first.startswith(b"READY=1")
        assert "started: site in.test.notify" in log.read_text()  # relay open, journal reconciled
        assert sock.recv(100) == b"WATCHDOG=1"  # from the dispatcher, while it runs
        assert sock.recv(100) == b"WATCHDOG=1"
        proc.send_signal(signal.SIGTERM)
        messages = []
        while b"STOPPING=1" not in messages:
            messages.append(sock.recv(100))
        assert proc.wait(30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    written = device.read_bytes()
    assert written.endswith(b"V") and written.count(b"\0") >= 1


@pytest.mark.runtime
def test_a_board_watchdog_that_cannot_be_opened_stops_the_agent_with_one_line(tmp_path):
    from tools.provision import provision_site

    config = provision_site(tmp_path / "site", site_id="in.test.nodog", name="No dog", lat=12.9, lon=77.6,
                            auth="free_vend",
                            board=str(_board_with_watchdog(tmp_path, tmp_path / "missing" / "watchdog")))
    t0 = time.monotonic()
    out = subprocess.run([sys.executable, "-m", "tools.cli", "run", "--config", str(config)], cwd=ROOT,
                         env=dict(os.environ, PYTHONPATH=str(ROOT)), capture_output=True, text=True, timeout=60)
    assert out.returncode == 1, (out.stdout, out.stderr, time.monotonic() - t0)
    assert "board watchdog" in out.stderr and "Traceback" not in out.stderr


@pytest.mark.runtime
async def test_the_watchdog_beats_only_while_the_dispatcher_turns(tmp_path):
    import asyncio

    from agent.aio import cancel_and_wait
    from agent.bootstrap import open_runtime
    from agent.config import load_config
    from tools.provision import provision_site

    config = load_config(provision_site(tmp_path, site_id="in.test.beat", name="Beat", lat=12.9, lon=77.6,
                                        auth="free_vend"))
    async with open_runtime(config) as rt:
        beats: list[int] = []
        beaten = asyncio.Event()

        def beat():
            beats.append(rt._posted)
            beaten.set()

        rt.heartbeat = beat
        await asyncio.wait_for(beaten.wait(), 10)  # the 50 ms safety tick turns the dispatcher
        await cancel_and_wait([rt._tasks["urja-dispatch"]])  # a dispatcher that no longer runs
        stopped_at, posted = len(beats), rt._posted
        deadline = asyncio.get_running_loop().time() + 10
        while rt._posted < posted + 5:  # the ticks go on posting events nobody handles
            assert asyncio.get_running_loop().time() < deadline
            await asyncio.sleep(0.01)
        assert len(beats) == stopped_at
