"""Start-up time and memory of the agent and the CLI, beside a bare interpreter.

Method: each case is a fresh ``python -m tools.cli run --config FILE`` process with
``NOTIFY_SOCKET`` pointing at a unix datagram socket this process reads. Time is from just
before ``Popen`` to the ``READY=1`` datagram (the agent sends it once the relay is open and the
journal reconciled); RSS is ``VmRSS`` of the agent read from ``/proc`` at that moment, then the
agent gets SIGTERM. The "bare interpreter" is ``python -c`` sending READY itself on the same
socket, so the figures include what every Python process pays. The real-meter profile serves
an SDM630 simulated by pymodbus's server *in this process*, reached over Modbus TCP on
loopback, so the agent runs the real client path and imports no server; its relay is
simulated (no GPIO here), its pilot absent (socket outlet). Bindings: none; MQTT (a local
mosquitto when installed) + HTTP + OCPI on loopback ports. Import time is the sum of the
top-level entries of ``-X importtime`` in one more run of each case. Medians of ``ROUNDS``.
"""
from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
ROUNDS = 7
MIB = 1024 * 1024
TARGETS = {"no_bindings_rss_mib": 30.0, "all_bindings_rss_mib": 40.0, "ready_s": 0.5}

_PROFILE = """[board]
name = "bench-tcp-meter"
description = "SDM630 over Modbus TCP, simulated contactor, socket outlet"
max_current_a = 16
phases = 1

[meter]
backend = "modbus-tcp"
model = "sdm120"
host = "127.0.0.1"
port = {port}

[relay]
backend = "sim"
settle_ms = 100
fail_safe = "simulated contactor"

[pilot]
backend = "none"
"""


class _Meter:
    """A simulated meter served by pymodbus in a thread of this process."""

    def __enter__(self):
        from drivers.meter.simserver import SimMeterServer

        self.loop = asyncio.new_event_loop()
        self.server = SimMeterServer("sdm120")
        started = threading.Event()

        def serve():
            asyncio.set_event_loop(self.loop)
            self.port = self.loop.run_until_complete(self.server.start_tcp("127.0.0.1", 0))
            started.set()
            self.loop.run_forever()

        self.thread = threading.Thread(target=serve, daemon=True)
        self.thread.start()
        if not started.wait(10):
            raise RuntimeError("simulated meter did not start")
        return self

    def __exit__(self, *exc):
        asyncio.run_coroutine_threadsafe(self.server.stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)


def _site(folder: Path, profile: Path, extra: str) -> Path:
    from tools.provision import provision_site

    return provision_site(folder, site_id="in.bench.start", name="Start-up bench", lat=12.93, lon=77.62,
                          board=str(profile), auth="free_vend", extra_toml=extra)


def _env(notify: str) -> dict:
    env = dict(os.environ, NOTIFY_SOCKET=notify, PYTHONPATH=str(ROOT))
    env.pop("WATCHDOG_USEC", None)
    return env


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def _once(argv: list[str], sock: socket.socket, notify: str) -> tuple[float, int]:
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, env=_env(notify), cwd=ROOT, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        while True:
            data = sock.recv(4096)
            if data.startswith(b"READY=1"):
                ready_s = time.perf_counter() - t0
                return ready_s, _rss_kib(proc.pid)
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def _start_with_importtime(argv: list[str], notify: str) -> subprocess.Popen:
    return subprocess.Popen([argv[0], "-X", "importtime", *argv[1:]], env=_env(notify), cwd=ROOT,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)


def _top_level_us(stderr: str) -> int:
    """Sum of the cumulative times of the top-level imports (one space before the name)."""
    total = 0
    for line in stderr.splitlines():
        parts = line.split("|")
        if line.startswith("import time:") and len(parts) == 3 and parts[1].strip().isdigit():
            name = parts[2]
            if name.startswith(" ") and not name.startswith("  "):
                total += int(parts[1])
    return total


def _case(argv: list[str], sock: socket.socket, notify: str) -> dict:
    times, rss = [], []
    for _ in range(ROUNDS):
        ready_s, rss_kib = _once(argv, sock, notify)
        times.append(ready_s)
        rss.append(rss_kib)
    proc = _start_with_importtime(argv, notify)
    while not sock.recv(4096).startswith(b"READY=1"):
        pass
    proc.send_signal(signal.SIGTERM)
    _, err = proc.communicate(timeout=20)
    return {"ready_s_median": round(statistics.median(times), 3), "ready_s_max": round(max(times), 3),
            "rss_mib_median": round(statistics.median(rss) / 1024, 1),
            "import_ms": round(_top_level_us(err) / 1000, 1)}


def _loaded(argv: list[str]) -> list[str]:
    """Which heavy libraries a CLI command imports (for the table; the test checks it too)."""
    heavy = ("paho", "cryptography", "aiohttp", "pymodbus", "sqlite3", "asyncio")
    code = "\n".join([
        "import sys, runpy",
        f"sys.argv = {argv!r}",
        "try:",
        "    runpy.run_module('tools.cli', run_name='__main__')",
        "except SystemExit:",
        "    pass",
        f"print('LOADED:' + ','.join(m for m in {heavy!r} if m in sys.modules))",
    ])
    out = subprocess.run([sys.executable, "-c", code], env=_env(""), cwd=ROOT, capture_output=True, text=True)
    line = next((ln for ln in out.stdout.splitlines() if ln.startswith("LOADED:")), "LOADED:?")
    return [m for m in line[len("LOADED:"):].split(",") if m]


def main(out_dir: Path) -> dict:
    from tools.broker import Broker, find_mosquitto

    with tempfile.TemporaryDirectory(prefix="urja-bench-start-") as tmp, _Meter() as meter:
        tmp = Path(tmp)
        notify = str(tmp / "notify.sock")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(notify)
        sock.settimeout(30)
        profile = tmp / "board.toml"
        profile.write_text(_PROFILE.format(port=meter.port))
        broker = Broker(tmp / "broker").start() if find_mosquitto() else None
        try:
            bare_argv = [sys.executable, "-c", "import os, socket; s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); "
                         "s.sendto(b'READY=1', os.environ['NOTIFY_SOCKET']); import time; time.sleep(30)"]
            plain = _site(tmp / "plain", profile, "")
            network = f'\n[network]\nbrokers = ["{broker.url}"]\n' if broker else ""
            full = _site(tmp / "full", profile, network + '\n[http]\nlisten = "127.0.0.1:0"\n'
                         '\n[ocpi]\nlisten = "127.0.0.1:0"\n')
            agent = [sys.executable, "-m", "tools.cli", "run", "--config"]
            cases = {
                "bare interpreter": _case(bare_argv, sock, notify),
                "agent, real-meter profile, no bindings": _case([*agent, str(plain)], sock, notify),
                "agent, real-meter profile, MQTT + HTTP + OCPI": _case([*agent, str(full)], sock, notify),
            }
        finally:
            sock.close()
            if broker is not None:
                broker.stop()
    cli = {" ".join(cmd): _loaded(cmd) for cmd in (["urja", "--help"], ["urja", "board", "list"],
                                                     ["urja", "tariff", "check", "examples/tariffs/flat.toml"])}
    plain_c = cases["agent, real-meter profile, no bindings"]
    full_c = cases["agent, real-meter profile, MQTT + HTTP + OCPI"]
    result = {
        "method": __doc__, "rounds": ROUNDS, "cases": cases, "cli_heavy_imports": cli,
        "mqtt_broker": bool(broker), "targets": TARGETS,
        "targets_met": (plain_c["rss_mib_median"] <= TARGETS["no_bindings_rss_mib"]
                        and full_c["rss_mib_median"] <= TARGETS["all_bindings_rss_mib"]
                        and max(plain_c["ready_s_median"], full_c["ready_s_median"]) < TARGETS["ready_s"]),
    }
    (out_dir / "startup.json").write_text(json.dumps(result, indent=2) + "\n")
    for name, c in cases.items():
        print(f"  {name}: READY {c['ready_s_median']} s, RSS {c['rss_mib_median']} MiB, imports {c['import_ms']} ms")
    return result
