"""A real mosquitto broker for tests: generated configuration, ephemeral port, torn down after.

Used as a library by the MQTT, node, federation tests and the network benchmark. Readiness is
taken from the broker's own log line ("... running"), read by a small drain thread, so no test
waits on a fixed delay, and the log pipe never fills up and stalls the broker.
"""
from __future__ import annotations

import datetime
import getpass
import ipaddress
import shutil
import signal
import socket
import subprocess
import threading
from pathlib import Path

MOSQUITTO = shutil.which("mosquitto") or ("/usr/sbin/mosquitto" if Path("/usr/sbin/mosquitto").exists() else None)
MOSQUITTO_PASSWD = shutil.which("mosquitto_passwd")


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Broker:
    """One mosquitto process. ``extra`` lines go into the generated configuration."""

    def __init__(self, workdir: Path, *, name: str = "broker", tls: dict | None = None,
                 passwords: dict[str, str] | None = None, bridge_to: int | None = None,
                 bridge_topics: tuple[str, ...] = ("urja/#",), max_connections: int = -1,
                 persistent: bool = False):
        if MOSQUITTO is None:
            raise RuntimeError("mosquitto is not installed")
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
                 # run as whoever runs the tests, so the broker can read the files made for it
                 f"user {getpass.getuser()}"]
        if self.passwords:
            path = self.workdir / "passwd"
            path.write_text("")
            for user, pw in self.passwords.items():
                subprocess.run([MOSQUITTO_PASSWD, "-b", str(path), user, pw], check=True, capture_output=True)
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
        for _ in range(5):
            if self.port is None:
                self.port = free_port()
            conf = self.workdir / "mosquitto.conf"
            conf.write_text(self._config())
            self._ready = threading.Event()
            self.proc = subprocess.Popen([MOSQUITTO, "-c", str(conf)], stdout=subprocess.PIPE,
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
        proc, self.proc = self.proc, None
        if proc is not None:
            proc.kill()
            proc.wait()

    def __enter__(self):
        return self.start()

    def __exit__(self, *exc):
        self.stop()


def make_tls_files(directory: Path, *, client_cn: str | None = None) -> dict:
    """A throwaway CA, a server certificate for 127.0.0.1/localhost and optionally a client one."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def write_key(key, path):
        path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("urja test CA")).issuer_name(name("urja test CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    out = {"ca": directory / "ca.pem"}
    out["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))

    def leaf(cn, san, stem):
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (x509.CertificateBuilder().subject_name(name(cn)).issuer_name(ca.subject)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=1)))
        if san:
            builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
        cert = builder.sign(ca_key, hashes.SHA256())
        (directory / f"{stem}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        write_key(key, directory / f"{stem}.key")
        return directory / f"{stem}.pem", directory / f"{stem}.key"

    out["cert"], out["key"] = leaf("127.0.0.1", [x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                  x509.DNSName("localhost")], "server")
    if client_cn:
        out["client_cert"], out["client_key"] = leaf(client_cn, None, "client")
    return out
