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
mosquitto when installed) + HTTP + OCPI on loopback ports; MQTT alone. Import time is the sum of the
top-level entries of ``-X importtime`` in one more run of each case, "modules" the number of
its entries. Medians of ``ROUNDS``.

Two interpreters, each with its own bare-interpreter case: this virtualenv's, running the
checkout (``PYTHONPATH``), and the one a board runs, a virtualenv made in the temp dir on
``SYSTEM_PYTHON`` (Debian's ``/usr/bin/python3``, no system site-packages) with the project's
wheel and its dependencies installed by that venv's pip (``pip install CHECKOUT``: pip builds the
wheel, fetches the dependencies or takes them from its cache), run from the temp dir so that the
installed package, not the checkout, is what starts. Both run from bytecode as an installed
board does: the checkout's modules are compiled by one uncounted warm-up run into a cache in the
temp dir (``PYTHONPYCACHEPREFIX``), pip compiled the installed ones.
"""
from __future__ import annotations

import asyncio
import json
import os
import platform
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
SYSTEM_PYTHON = "/usr/bin/python3"
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


def _env(notify: str, *, pycache: Path | None = None) -> dict:
    """The checkout on ``PYTHONPATH`` (or, without ``pycache``, an installed package and no path)."""
    env = dict(os.environ, NOTIFY_SOCKET=notify)
    for name in ("WATCHDOG_USEC", "PYTHONDONTWRITEBYTECODE", "PYTHONPATH", "PYTHONPYCACHEPREFIX"):
        env.pop(name, None)
    if pycache is not None:
        env.update(PYTHONPATH=str(ROOT), PYTHONPYCACHEPREFIX=str(pycache))
    return env


def _rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise RuntimeError("no VmRSS")


def _once(argv: list[str], sock: socket.socket, run: dict) -> tuple[float, int]:
    t0 = time.perf_counter()
    proc = subprocess.Popen(argv, **run, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
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


def _importtime(argv: list[str], sock: socket.socket, run: dict, log: Path) -> str:
    """One more run under ``-X importtime``; its report goes to a file (a pipe could fill and stall it)."""
    with open(log, "w") as err:
        proc = subprocess.Popen([argv[0], "-X", "importtime", *argv[1:]], **run, stdout=subprocess.DEVNULL, stderr=err)
        try:
            while not sock.recv(4096).startswith(b"READY=1"):
                pass
        finally:
            proc.send_signal(signal.SIGTERM)
            proc.wait(20)
    return log.read_text()


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


def _case(argv: list[str], sock: socket.socket, run: dict, log: Path) -> dict:
    _once(argv, sock, run)  # warm-up, not counted: writes the bytecode cache
    times, rss = [], []
    for _ in range(ROUNDS):
        ready_s, rss_kib = _once(argv, sock, run)
        times.append(ready_s)
        rss.append(rss_kib)
    err = _importtime(argv, sock, run, log)
    return {"ready_s_median": round(statistics.median(times), 3), "ready_s_max": round(max(times), 3),
            "rss_mib_median": round(statistics.median(rss) / 1024, 1),
            "import_ms": round(_top_level_us(err) / 1000, 1),
            "modules": sum(1 for line in err.splitlines() if line.startswith("import time:") and "|" in line) - 1}


def _system_venv(tmp: Path) -> Path | None:
    """A virtualenv on the board's interpreter with the project installed as a board installs it."""
    if not Path(SYSTEM_PYTHON).exists():
        return None
    venv = tmp / "system-venv"
    try:
        subprocess.run([SYSTEM_PYTHON, "-m", "venv", str(venv)], check=True, capture_output=True, timeout=300)
        subprocess.run([str(venv / "bin" / "python"), "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
                        str(ROOT)], check=True, capture_output=True, timeout=900, env=_env(""))
    except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as exc:
        print(f"  no {SYSTEM_PYTHON} venv case: {exc}")
        return None
    return venv / "bin" / "python"


def _cases(python: str, run: dict, sock: socket.socket, sites: dict[str, Path], logs: Path) -> dict:
    bare_argv = [python, "-c", "import os, socket; s = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM); "
                 "s.sendto(b'READY=1', os.environ['NOTIFY_SOCKET']); import time; time.sleep(30)"]
    agent = [python, "-m", "tools.cli", "run", "--config"]
    cases = {"bare interpreter": _case(bare_argv, sock, run, logs / "bare.txt")}
    for i, (name, site) in enumerate(sites.items()):
        cases[name] = _case([*agent, str(site)], sock, run, logs / f"site-{i}.txt")
    return cases


def _loaded(argv: list[str], pycache: Path) -> list[str]:
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
    out = subprocess.run([sys.executable, "-c", code], env=_env("", pycache=pycache),
                         cwd=ROOT, capture_output=True, text=True)
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
        pycache = tmp / "pycache"
        try:
            plain = _site(tmp / "plain", profile, "")
            network = f'\n[network]\nbrokers = ["{broker.url}"]\n' if broker else ""
            full = _site(tmp / "full", profile, network + '\n[http]\nlisten = "127.0.0.1:0"\n'
                         '\n[ocpi]\nlisten = "127.0.0.1:0"\n')
            sites = {"agent, real-meter profile, no bindings": plain,
                     "agent, real-meter profile, MQTT + HTTP + OCPI": full}
            if broker:
                sites["agent, real-meter profile, MQTT"] = _site(tmp / "mqtt", profile, network)
            system_python = _system_venv(tmp)
            runs = {f"this venv ({platform.python_version()}, checkout)":
                    (sys.executable, {"env": _env(notify, pycache=pycache), "cwd": ROOT})}
            if system_python is not None:
                runs[f"{SYSTEM_PYTHON} venv (installed wheel)"] = (str(system_python), {"env": _env(notify), "cwd": tmp})
            interpreters = {}
            for label, (python, run) in runs.items():
                logs = tmp / f"importtime-{len(interpreters)}"
                logs.mkdir()
                interpreters[label] = _cases(python, run, sock, sites, logs)
        finally:
            sock.close()
            if broker is not None:
                broker.stop()
        cli = {" ".join(cmd): _loaded(cmd, pycache) for cmd in (["urja", "--help"], ["urja", "board", "list"],
                                                                  ["urja", "tariff", "check", "examples/tariffs/flat.toml"])}
    judged = interpreters[list(runs)[-1]]  # the board's interpreter when there is one
    plain_c = judged["agent, real-meter profile, no bindings"]
    full_c = judged["agent, real-meter profile, MQTT + HTTP + OCPI"]
    result = {
        "method": __doc__, "rounds": ROUNDS, "interpreters": interpreters, "targets_judged_on": list(runs)[-1],
        "cli_heavy_imports": cli, "mqtt_broker": bool(broker), "targets": TARGETS,
        "targets_met": (plain_c["rss_mib_median"] <= TARGETS["no_bindings_rss_mib"]
                        and full_c["rss_mib_median"] <= TARGETS["all_bindings_rss_mib"]
                        and max(plain_c["ready_s_median"], full_c["ready_s_median"]) < TARGETS["ready_s"]),
    }
    (out_dir / "startup.json").write_text(json.dumps(result, indent=2) + "\n")
    for label, cases in interpreters.items():
        print(f"  {label}")
        for name, c in cases.items():
            print(f"    {name}: READY {c['ready_s_median']} s, RSS {c['rss_mib_median']} MiB, "
                  f"imports {c['import_ms']} ms, {c['modules']} modules")
    return result
