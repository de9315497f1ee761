"""Versions side by side, one link to switch, a health check, and going back by itself.

Layout under a prefix (``/opt/urja``)::

    versions/0.1.0/   a complete install (a venv with bin/urja)
    versions/0.2.0/
    current  -> versions/0.2.0     what the service runs (ExecStart=/opt/urja/current/bin/urja)
    previous -> versions/0.1.0     where ``rollback`` goes

``activate`` stops the service, copies the journal, switches ``current`` atomically (a new link
renamed over the old one) and runs the health check with the new version: the agent must send
READY (relay open, journal reconciled, so its journal migration ran), read the meter once and
stop cleanly, and the board's self-test must pass. If anything fails, ``current`` goes back,
the journal copy is put back (the new version may have carried the file to a newer format;
nothing was recorded meanwhile because the service was stopped), and the service starts the old
version again. ``rollback`` later, by hand, asks the version being left to carry the journal
back to the format the older one reads (``urja journal migrate``), so sessions recorded since
the upgrade are kept.

This module uses the standard library only and imports nothing of the agent: the bundle's
``install.sh`` runs it with the system's Python, so the code that decides to go back is never
the new version's.
"""
from __future__ import annotations

import argparse
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import tomllib
from dataclasses import dataclass
from pathlib import Path

DEFAULT_PREFIX = Path("/opt/urja")
DEFAULT_CONFIG = Path("/etc/urja/urja.toml")
DEFAULT_JOURNAL = "/var/lib/urja/journal.sqlite"
HEALTH_TIMEOUT_S = 120.0


class UpgradeError(Exception):
    """An upgrade or rollback that could not be done; the message says what and what was kept."""


@dataclass(frozen=True)
class Check:
    ok: bool
    detail: str


class Systemd:
    """The service, through systemctl."""

    def __init__(self, unit: str = "urja.service"):
        self.unit = unit

    def stop(self) -> None:
        subprocess.run(["systemctl", "stop", self.unit], check=False)

    def start(self) -> None:
        subprocess.run(["systemctl", "start", self.unit], check=False)


class NoService:
    """No service manager (a chroot, a test): nothing to stop or start."""

    def stop(self) -> None:
        pass

    def start(self) -> None:
        pass


class Layout:
    def __init__(self, prefix: str | Path):
        self.prefix = Path(prefix)
        self.versions = self.prefix / "versions"
        self.current = self.prefix / "current"
        self.previous = self.prefix / "previous"

    def version_dir(self, version: str) -> Path:
        return self.versions / version

    def linked(self, link: Path) -> str | None:
        """The version a link points at, or None."""
        if not link.is_symlink():
            return None
        return Path(os.readlink(link)).name

    def point(self, link: Path, version: str | None) -> None:
        """Point ``link`` at a version atomically (rename over it), or remove it."""
        if version is None:
            if link.is_symlink():
                link.unlink()
            return
        tmp = link.with_name(f".{link.name}.new")
        if tmp.is_symlink() or tmp.exists():
            tmp.unlink()
        os.symlink(Path("versions") / version, tmp)
        os.replace(tmp, link)


def journal_path(config: Path) -> Path:
    """The journal a site configuration names (``[journal] path``, relative to the file)."""
    try:
        with open(config, "rb") as fh:
            data = tomllib.load(fh)
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise UpgradeError(f"{config}: cannot read the site configuration: {exc}") from None
    value = Path(str(data.get("journal", {}).get("path", DEFAULT_JOURNAL)))
    return value if value.is_absolute() else config.parent / value


def board_profile(config: Path) -> str:
    with open(config, "rb") as fh:
        return str(tomllib.load(fh).get("board", {}).get("profile", "sim"))


def snapshot(journal: Path, into: Path) -> Path | None:
    """A consistent copy of the journal (SQLite's backup), or None when there is none yet."""
    if not journal.exists():
        return None
    copy = into / journal.name
    src = sqlite3.connect(journal)
    dst = sqlite3.connect(copy)
    try:
        src.backup(dst)
    finally:
        dst.close()
        src.close()
    return copy


def restore(copy: Path | None, journal: Path) -> None:
    for suffix in ("-wal", "-shm"):
        side = journal.with_name(journal.name + suffix)
        if side.exists():
            side.unlink()
    if copy is None:
        if journal.exists():
            journal.unlink()
        return
    shutil.copyfile(copy, journal)


def as_user(user: str | None) -> dict:
    """``subprocess`` arguments that run the check as the service's user (with its groups).

    The check must create the journal and read the keys as the service will, or it would leave
    a root-owned journal the service cannot write.
    """
    if user is None or os.geteuid() != 0:
        return {}
    import pwd

    try:
        entry = pwd.getpwnam(user)
    except KeyError:
        raise UpgradeError(f"no user {user!r} here to run the health check as the service does "
                           f"(give --user, or install with install.sh)") from None
    return {"user": entry.pw_uid, "group": entry.pw_gid, "extra_groups": os.getgrouplist(user, entry.pw_gid)}


def health_check(version_dir: Path, config: Path, *, timeout_s: float = HEALTH_TIMEOUT_S,
                 user: str | None = None) -> Check:
    """READY, one meter read and a clean stop from ``urja run --check``; then the self-test."""
    urja = version_dir / "bin" / "urja"
    if not os.access(urja, os.X_OK):
        return Check(False, f"{urja} is missing")
    run_as = as_user(user)
    with tempfile.TemporaryDirectory(prefix="urja-health-") as tmp:
        address = os.path.join(tmp, "notify.sock")
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        sock.bind(address)
        if run_as:  # the agent, as the service user, must reach the socket (it carries only READY)
            os.chmod(tmp, 0o711)
            os.chmod(address, 0o722)
        env = dict(os.environ, NOTIFY_SOCKET=address)
        env.pop("WATCHDOG_USEC", None)
        deadline = time.monotonic() + timeout_s
        with open(os.path.join(tmp, "check.log"), "w+") as log:
            proc = subprocess.Popen([str(urja), "run", "--config", str(config), "--check"], env=env,
                                    stdout=log, stderr=subprocess.STDOUT, cwd=config.parent, **run_as)
            try:
                ready = _wait_ready(sock, proc, deadline)
                code = proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
                code = None
            finally:
                sock.close()
            log.seek(0)
            tail = " | ".join(log.read().strip().splitlines()[-3:])
        if not ready or code != 0:
            said = "no READY" if not ready else f"exit {code}"
            return Check(False, f"agent check failed ({said}): {tail or 'no output'}")
    test = subprocess.run([str(urja), "selftest", "--board", board_profile(config)], cwd=config.parent,
                          capture_output=True, text=True, timeout=max(1.0, deadline - time.monotonic()), **run_as)
    if test.returncode != 0:
        return Check(False, f"self-test failed: {(test.stdout + test.stderr).strip().splitlines()[-1:]}")
    return Check(True, "READY, meter read, self-test passed")


def _wait_ready(sock: socket.socket, proc: subprocess.Popen, deadline: float) -> bool:
    while time.monotonic() < deadline:
        sock.settimeout(0.2)
        try:
            if sock.recv(4096).startswith(b"READY=1"):
                return True
        except TimeoutError:
            if proc.poll() is not None:
                return False
    return False


def activate(prefix: str | Path, version: str, config: str | Path, *, service=None,
             timeout_s: float = HEALTH_TIMEOUT_S, say=print, user: str | None = None) -> Check:
    """Switch to an installed version; keep it only if it passes the health check."""
    layout = Layout(prefix)
    config = Path(config)
    service = service or NoService()
    new_dir = layout.version_dir(version)
    if not new_dir.is_dir():
        raise UpgradeError(f"version {version} is not installed in {layout.versions}")
    old = layout.linked(layout.current)
    if old == version:
        raise UpgradeError(f"version {version} is already the current one")
    as_user(user)  # an unknown user is refused before anything is stopped or switched
    journal = journal_path(config)
    with tempfile.TemporaryDirectory(prefix="urja-upgrade-") as tmp:
        service.stop()
        copy = snapshot(journal, Path(tmp))
        layout.point(layout.current, version)
        say(f"switched {layout.current} -> versions/{version}; health check")
        check = health_check(layout.current, config, timeout_s=timeout_s, user=user)
        if check.ok:
            layout.point(layout.previous, old)
            service.start()
            say(f"version {version} is running: {check.detail}")
            return check
        say(f"version {version} failed its health check: {check.detail}")
        layout.point(layout.current, old)
        restore(copy, journal)
        say(f"rolled back to {old or 'nothing'}; journal restored from the copy taken before the switch")
        if old is not None:
            again = health_check(layout.current, config, timeout_s=timeout_s, user=user)
            say(f"version {old}: {again.detail}")
            service.start()
        return check


def rollback(prefix: str | Path, config: str | Path, *, service=None, timeout_s: float = HEALTH_TIMEOUT_S,
             say=print, user: str | None = None) -> Check:
    """Go back to ``previous`` by hand; the journal is carried back by the version being left."""
    layout = Layout(prefix)
    config = Path(config)
    service = service or NoService()
    leaving, target = layout.linked(layout.current), layout.linked(layout.previous)
    if target is None or leaving is None:
        raise UpgradeError(f"nothing to roll back to in {layout.prefix}")
    as_user(user)
    fmt = subprocess.run([str(layout.version_dir(target) / "bin" / "urja"), "journal", "format"],
                         capture_output=True, text=True)
    if fmt.returncode != 0 or not fmt.stdout.strip().isdigit():
        raise UpgradeError(f"version {target} does not say its journal format: {fmt.stderr.strip()}")
    service.stop()
    if journal_path(config).exists():
        down = subprocess.run([str(layout.version_dir(leaving) / "bin" / "urja"), "journal", "migrate",
                               "--config", str(config), "--to", fmt.stdout.strip()], capture_output=True, text=True,
                              **as_user(user))
        if down.returncode != 0:
            service.start()
            raise UpgradeError(f"journal not carried back to format {fmt.stdout.strip()}: {down.stderr.strip()}; "
                               f"still on {leaving}")
        say(down.stdout.strip())
    layout.point(layout.current, target)
    layout.point(layout.previous, leaving)
    check = health_check(layout.current, config, timeout_s=timeout_s, user=user)
    say(f"rolled back to {target}: {check.detail}")
    service.start()
    return check


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="activate.py", description="switch urja versions with a health check")
    parser.add_argument("action", choices=["activate", "rollback", "status"])
    parser.add_argument("version", nargs="?")
    parser.add_argument("--prefix", default=str(DEFAULT_PREFIX))
    parser.add_argument("--config", default=str(DEFAULT_CONFIG))
    parser.add_argument("--no-service", action="store_true", help="no systemd here: do not stop or start the unit")
    parser.add_argument("--timeout-s", type=float, default=HEALTH_TIMEOUT_S)
    parser.add_argument("--user", default=None, help="run the health check as the service's user (when root)")
    args = parser.parse_args(argv)
    service = NoService() if args.no_service else Systemd()
    layout = Layout(args.prefix)
    try:
        if args.action == "status":
            print(f"current: {layout.linked(layout.current) or '-'}  previous: {layout.linked(layout.previous) or '-'}")
            return 0
        if args.action == "activate":
            if not args.version:
                parser.error("activate needs a VERSION")
            check = activate(args.prefix, args.version, args.config, service=service, timeout_s=args.timeout_s,
                             user=args.user)
        else:
            check = rollback(args.prefix, args.config, service=service, timeout_s=args.timeout_s, user=args.user)
    except UpgradeError as exc:
        print(f"urja upgrade: {exc}", file=sys.stderr)
        return 1
    return 0 if check.ok else 1


if __name__ == "__main__":
    sys.exit(main())
