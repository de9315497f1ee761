"""A local mosquitto broker: generated configuration, a free loopback port, a temp directory.

The demo and the tests need a real MQTT broker but no one should have to configure one, so
this starts Debian's mosquitto with a configuration written for the occasion and stops it
afterwards. Readiness is taken from the broker's own log line ("... running"), read by a
small drain thread: nobody waits on a fixed delay, and the log pipe never fills up and
stalls the broker.
"""
from __future__ import annotations

import getpass
import shutil
import signal
import socket
import subprocess
import threading
from pathlib import Path

INSTALL_HINT = "sudo apt-get install mosquitto"
_SBIN = Path("/usr/sbin/mosquitto")


class BrokerMissing(RuntimeError):
    """mosquitto is not installed; the message says how to install it."""


def find_mosquitto() -> str | None:
    """The mosquitto binary: on PATH, or Debian's ``/usr/sbin`` (not on an ordinary user's PATH)."""
    return shutil.which("mosquitto") or (str(_SBIN) if _SBIN.exists() else None)


def find_mosquitto_passwd() -> str | None:
    return shutil.which("mosquitto_passwd") or (
        "/usr/bin/mosquitto_passwd" if Path("/usr/bin/mosquitto_passwd").exists() else None)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """One mosquitto process listening on 127.0.0.1. ``with Broker(dir) as b: b.url``.

    ``tls`` (paths ``ca``, ``cert``, ``key``), ``passwords`` (user -> password),
    ``bridge_to`` (port of another local broker) and ``persistent`` shape the generated
    configuration; the defaults give a plain anonymous broker.
    """

    def __init__(self, workdir: str | Path, *, name: str = "broker", tls: dict | None = None,
                 passwords: dict[str, str] | None = None, bridge_to: int | None = None,
                 bridge_topics: tuple[str, ...] = ("urja/#",), max_connections: int = -1,
                 persistent: bool = False, binary: str | None = None):
        self.binary = binary or find_mosquitto()
        if self.binary is None:
            raise BrokerMissing(f"mosquitto (the MQTT broker) is not installed; install it with: {INSTALL_HINT}")
        self.workdir = Path(workdir) / name
        self.workdir.mkdir(parents=True, exist_ok=True)
        self.name = name
        self.tls = tls
        self.passwords = passwords
        self.bridge_to = bridge_to
        self.bridge_topics = bridge_topics
        self.max_connections = max_connections
        self.persistent = persistent
        self.port: int | None = None
        self.proc: subprocess.Popen | None = None
        self.log: list[str] = []
        self._ready = threading.Event()

    @property
    def url(self) -> str:
        return f"{'mqtts' if self.tls else 'mqtt'}://127.0.0.1:{self.port}"

    def _config(self) -> str:
        persistence = (["persistence true", f"persistence_location {self.workdir}/"] if self.persistent
                       else ["persistence false"])
        lines = [f"listener {self.port} 127.0.0.1", *persistence, "log_dest stderr",
                 "log_type error", "log_type warning", "log_type notice", "log_type information",
                 "connection_messages false", f"max_connections {self.max_connections}",
                 "max_queued_messages 100000", "set_tcp_nodelay true",
                 # run as whoever started it, so the broker can read the files made for it
                 f"user {getpass.getuser()}"]
        if self.passwords:
            passwd = find_mosquitto_passwd()
            if passwd is None:
                raise BrokerMissing(f"mosquitto_passwd is not installed; install it with: {INSTALL_HINT}")
            path = self.workdir / "passwd"
            path.write_text("")
            for user, pw in self.passwords.items():
                subprocess.run([passwd, "-b", str(path), user, pw], check=True, capture_output=True)
            path.chmod(0o600)
            lines += ["allow_anonymous false", f"password_file {path}"]
        else:
            lines.append("allow_anonymous true")
        if self.tls:
            lines += [f"cafile {self.tls['ca']}", f"certfile {self.tls['cert']}", f"keyfile {self.tls['key']}"]
        if self.bridge_to is not None:
            lines += [f"connection {self.name}-bridge", f"address 127.0.0.1:{self.bridge_to}",
                      "cleansession true", "try_private true", f"remote_clientid {self.name}-bridge",
                      "restart_timeout 1 5"]
            lines += [f"topic {t} both 1" for t in self.bridge_topics]
        return "\n".join(lines) + "\n"

    def start(self, timeout_s: float = 10.0) -> "Broker":
        """Start and wait for the broker's "running" line; a port taken meanwhile is retried."""
        for _ in range(5):
            if self.port is None:
                self.port = free_port()
            conf = self.workdir / "mosquitto.conf"
            conf.write_text(self._config())
            self._ready = threading.Event()
            self.proc = subprocess.Popen([self.binary, "-c", str(conf)], stdout=subprocess.PIPE,
                                         stderr=subprocess.STDOUT, text=True, bufsize=1)
            threading.Thread(target=self._drain, args=(self.proc, self._ready), daemon=True,
                             name=f"mosquitto-log-{self.name}").start()
            if self._ready.wait(timeout_s) and self.proc.poll() is None:
                return self
            self.proc.kill()
            self.proc.wait()
            self.proc = None
            if any("Address already in use" in line for line in self.log[-5:]):
                self.port = free_port()
                continue
            break
        raise RuntimeError(f"mosquitto {self.name} did not start: {' | '.join(self.log[-5:])}")

    def _drain(self, proc, ready) -> None:
        for line in proc.stdout:
            self.log.append(line.rstrip())
            if " running" in line:
                ready.set()
        ready.set()

    def stop(self) -> None:
        proc, self.proc = self.proc, None
        if proc is None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(5)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()

    def kill(self) -> None:
        """Stop without a goodbye (tests of failover and last wills)."""
        proc, self.proc = self.proc, None
        if proc is not None:
            proc.kill()
            proc.wait()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()
