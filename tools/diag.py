"""The support bundle a site owner sends: what runs, how it is set up, what went wrong; no secret.

``urja diag`` writes a tar.gz with ``versions.json`` (urja, Python, glibc, tzdata, the
dependencies, the journal format), ``config.toml`` (the site configuration with every secret
value removed), ``board.txt`` (the profile), ``log.txt`` (the recent log: ``journalctl -u urja``
or a file), ``faults.json`` (latched and cleared faults from the fault file, readable while the
agent runs), ``status.json`` (meter and bus counters the running agent keeps in its runtime
folder), ``journal.json`` (format version and counts) and ``selftest.txt`` (only with
``--selftest``: it switches the relay, so the agent must be stopped).

Secrets never leave: key files, certificates' private halves, the owner's access file and the
OCPI store are not read at all; in the configuration every value under a key that names a
secret (password, token, secret, key material, credentials) is replaced, and every such value
is also scrubbed from every other text in the bundle (a log line that echoed a password).
``tests/test_diag.py`` greps the whole bundle for each secret.
"""
from __future__ import annotations

import io
import json
import platform
import re
import sqlite3
import subprocess
import sys
import tarfile
import time
from importlib import metadata
from pathlib import Path

REMOVED = "<removed>"
# A key whose value is a secret (not a path to one: those are harmless and help support).
_SECRET_KEY = re.compile(r"(pass(word|phrase)?|secret|token|credential|psk|private_key|api_key)$", re.I)
LOG_LINES = 2000


def redact(data, secrets: list[str], path: str = ""):
    """A copy of a TOML tree with secret values replaced; their values are added to ``secrets``."""
    if isinstance(data, dict):
        return {k: redact(v, secrets, f"{path}.{k}" if path else k) if not _SECRET_KEY.search(k)
                else _remove(v, secrets) for k, v in data.items()}
    if isinstance(data, list):
        return [redact(v, secrets, path) for v in data]
    return data


def _remove(value, secrets: list[str]):
    if isinstance(value, (dict, list)):
        for leaf in _leaves(value):
            secrets.append(str(leaf))
        return REMOVED
    if value not in (None, ""):
        secrets.append(str(value))
    return REMOVED


def _leaves(value):
    if isinstance(value, dict):
        for v in value.values():
            yield from _leaves(v)
    elif isinstance(value, list):
        for v in value:
            yield from _leaves(v)
    else:
        yield value


def _credentials_in_urls(data, secrets: list[str]) -> None:
    """``mqtts://user:password@host`` in any string: the password is a secret too."""
    for leaf in _leaves(data):
        if isinstance(leaf, str):
            for match in re.finditer(r"://[^:/@\s]+:([^@/\s]+)@", leaf):
                secrets.append(match.group(1))


def scrub(text: str, secrets: list[str]) -> str:
    for secret in sorted({s for s in secrets if len(s) >= 4}, key=len, reverse=True):
        text = text.replace(secret, REMOVED)
    return text


def to_toml(data: dict, prefix: str = "") -> str:
    """Enough TOML to show a configuration back (strings, numbers, booleans, lists, tables)."""
    lines, tables = [], []
    for key, value in data.items():
        if isinstance(value, dict):
            tables.append((key, value))
        else:
            lines.append(f"{key} = {json.dumps(value)}")
    out = "\n".join(lines) + ("\n" if lines else "")
    for key, value in tables:
        name = f"{prefix}.{key}" if prefix else key
        out += f"\n[{name}]\n" + to_toml(value, name)
    return out


def versions(journal: Path | None) -> dict:
    deps = {}
    for name in ("pymodbus", "paho-mqtt", "cryptography", "aiohttp", "pyserial", "rfc8785", "gpiod"):
        try:
            deps[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            deps[name] = None
    try:
        urja = metadata.version("urja")
    except metadata.PackageNotFoundError:
        urja = "not installed (a checkout)"
    info = {"urja": urja, "python": platform.python_version(), "machine": platform.machine(),
            "glibc": "-".join(platform.libc_ver()), "kernel": platform.release(), "dependencies": deps,
            "tzdata": _tzdata()}
    from agent.journal.migrations import CURRENT_VERSION

    info["journal_format_written"] = CURRENT_VERSION
    return info


def _tzdata() -> str | None:
    out = subprocess.run(["dpkg-query", "-W", "-f=${Version}", "tzdata"], capture_output=True, text=True) \
        if Path("/usr/bin/dpkg-query").exists() else None
    return out.stdout.strip() if out is not None and out.returncode == 0 else None


def journal_summary(path: Path) -> dict:
    """Format and counts, read-only; a journal held by the running agent is reported as such."""
    if not path.exists():
        return {"path": str(path), "exists": False}
    try:
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=0.5)
        try:
            summary = {"path": str(path), "format": conn.execute("PRAGMA user_version").fetchone()[0]}
            for table in ("sessions", "receipts", "outbox"):
                summary[table] = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            summary["open_sessions"] = conn.execute("SELECT count(*) FROM sessions WHERE stop_wh IS NULL").fetchone()[0]
            return summary
        finally:
            conn.close()
    except sqlite3.Error as exc:
        return {"path": str(path), "unreadable": str(exc)}


def faults(journal: Path) -> list[dict] | dict:
    from agent.journal import FaultStore, fault_store_path
    from agent.journal.errors import JournalError

    path = fault_store_path(journal)
    if not path.exists():
        return []
    try:
        with FaultStore.open(path) as store:
            return [{"code": f.code, "detail": f.detail, "latched_s": f.latched_s, "cleared_s": f.cleared_s,
                     "cleared_by": f.cleared_by} for f in store.history(limit=100)]
    except JournalError as exc:
        return {"unreadable": str(exc)}


def recent_log(log_file: Path | None) -> str:
    if log_file is not None:
        try:
            return "".join(log_file.read_text(errors="replace").splitlines(keepends=True)[-LOG_LINES:])
        except OSError as exc:
            return f"(log {log_file} unreadable: {exc.strerror})\n"
    try:
        out = subprocess.run(["journalctl", "-u", "urja.service", "-n", str(LOG_LINES), "--no-pager", "-o", "short-iso"],
                             capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"(no journalctl: {exc})\n"
    return out.stdout or out.stderr


def selftest(board: str) -> str:
    out = subprocess.run([sys.executable, "-m", "tools.cli", "selftest", "--board", board], capture_output=True,
                         text=True, timeout=120)
    return out.stdout + out.stderr + f"\nexit {out.returncode}\n"


def make_diag(config_path: Path, out: Path, *, log_file: Path | None = None, status_file: Path | None = None,
              run_selftest: bool = False, now_s: float | None = None) -> Path:
    """Write the support bundle; returns its path."""
    import tomllib

    from agent.config import load_config
    from board.profile import load_profile

    config = load_config(config_path)
    with open(config_path, "rb") as fh:
        raw = tomllib.load(fh)
    secrets: list[str] = []
    shown = redact(raw, secrets)
    _credentials_in_urls(raw, secrets)
    journal = Path(config.journal_path)
    board = load_profile(config.board_profile)
    parts: dict[str, str] = {
        "versions.json": json.dumps(versions(journal), indent=2),
        "config.toml": f"# {config_path}, secrets removed\n" + to_toml(shown),
        "board.txt": "\n".join(f"{k}: {v}" for k, v in board.summary()),
        "journal.json": json.dumps(journal_summary(journal), indent=2),
        "faults.json": json.dumps(faults(journal), indent=2),
        "log.txt": recent_log(log_file),
    }
    status = status_file or Path("/run/urja/status.json")
    parts["status.json"] = status.read_text() if status.exists() else json.dumps(
        {"note": f"no {status}: the agent is not running under systemd"})
    parts["selftest.txt"] = selftest(config.board_profile) if run_selftest else \
        "not run (it switches the relay: stop the agent and give --selftest)\n"
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime(time.time() if now_s is None else now_s))
    name = f"urja-diag-{config.site_id}-{stamp}"
    out.mkdir(parents=True, exist_ok=True)
    target = out / f"{name}.tar.gz"
    with tarfile.open(target, "w:gz") as tar:
        for file, text in parts.items():
            data = scrub(text, secrets).encode()
            info = tarfile.TarInfo(f"{name}/{file}")
            info.size = len(data)
            info.mtime = int(time.time() if now_s is None else now_s)
            tar.addfile(info, io.BytesIO(data))
    return target
