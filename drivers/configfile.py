"""Typed reads from parsed TOML with errors that name the file, the key and what is allowed.

Both board profiles and the site configuration are hand-written by people who are not
programmers; a message like "urja.toml: site.place.lat: must be a number from -90 to 90,
got 'north'" is the difference between a fixed typo and a support call.
"""
from __future__ import annotations

import contextlib
import os
import stat
import tomllib
from pathlib import Path
from typing import Any, Iterable, Iterator

# Every hand-written or shipped file the agent reads is far below this (a tariff with every
# restriction is a few KiB). The bound is what keeps ``/dev/zero`` or a log file named by
# mistake from being read until memory runs out.
MAX_FILE_BYTES = 1 << 20


class ConfigError(Exception):
    """A configuration or profile file is unreadable or invalid.

    ``file`` and ``key`` (dotted path) say where, ``allowed`` says what would have been accepted.
    """

    code = "config-invalid"

    def __init__(self, file: str | Path, key: str, problem: str, *, allowed: str | None = None):
        self.file = str(file)
        self.key = key
        self.problem = problem
        self.allowed = allowed
        where = f"{self.file}: {key}" if key else self.file
        text = f"{where}: {problem}"
        if allowed:
            text += f" (allowed: {allowed})"
        super().__init__(text)


def _kind(mode: int) -> str:
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISFIFO(mode):
        return "a pipe"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def read_bounded(path: str | Path, *, max_bytes: int = MAX_FILE_BYTES) -> bytes:
    """The bytes of a regular file of at most ``max_bytes``: the one way the agent reads a file.

    The type is checked on the open descriptor (no window between check and read) and the
    read itself is bounded, because files under ``/proc`` report a size of 0 whatever they hold.
    """
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise ConfigError(path, "", "file not found") from None
    except PermissionError:
        raise ConfigError(path, "", "file not readable (permission denied)") from None
    except OSError as exc:
        raise ConfigError(path, "", f"file not readable: {exc.strerror or exc}") from None
    try:
        mode = os.fstat(fd).st_mode
    except OSError:
        os.close(fd)
        raise
    if not stat.S_ISREG(mode):
        os.close(fd)
        raise ConfigError(path, "", f"{_kind(mode)}, not a file to read")
    with os.fdopen(fd, "rb") as fh:
        try:
            data = fh.read(max_bytes + 1)
        except OSError as exc:
            raise ConfigError(path, "", f"file not readable: {exc.strerror or exc}") from None
    if len(data) > max_bytes:
        raise ConfigError(path, "", f"larger than {max_bytes} bytes; not a file this agent reads")
    return data


def read_text(path: str | Path, *, max_bytes: int = MAX_FILE_BYTES) -> str:
    """``read_bounded`` decoded as UTF-8, with the offset of the first bad byte in the error."""
    data = read_bounded(path, max_bytes=max_bytes)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(path, "", f"not UTF-8 text (byte 0x{data[exc.start]:02x} at offset {exc.start})") from None


def load_toml(path: str | Path) -> dict:
    """Parse a TOML file, turning I/O and syntax errors into a ConfigError naming the file."""
    text = read_text(path)
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, "", f"not valid TOML: {exc}") from None


def check_writable_path(path: str | Path) -> None:
    """A file the agent will create or write (journal, store, register): its place must be a folder.

    A path that exists must be a regular file, and its folder must exist or be creatable
    outside ``/proc``, ``/sys`` and ``/dev``; what it holds (an SQLite database?) is its
    owner's check.
    """
    path = Path(path)
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        mode = None
    except OSError as exc:
        raise ConfigError(path, "", f"cannot be used: {exc.strerror or exc}") from None
    if mode is not None and not stat.S_ISREG(mode):
        raise ConfigError(path, "", f"{_kind(mode)}, not a file the agent can keep data in")
    resolved = path.resolve()
    if resolved.parts[1:2] and resolved.parts[1] in ("proc", "sys", "dev"):
        raise ConfigError(path, "", f"under /{resolved.parts[1]}, which holds no data files")
    parent = resolved.parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise ConfigError(path, "", f"{parent} is not a directory")
    if not os.access(parent, os.W_OK | os.X_OK):
        raise ConfigError(path, "", f"{parent} is not writable")


@contextlib.contextmanager
def pointed_by(file: str | Path, key: str, *, also: tuple = (), keep: tuple = ()) -> Iterator[None]:
    """Errors about a file that a key names are reported as that key's, with the file's own text.

    "urja.toml: tariff.file: /srv/t: a directory, not a file to read" tells the owner which
    line to fix; the file's name alone does not when several keys could point at it.
    """
    try:
        yield
    except keep:  # errors that are not the key's fault (``also`` subclasses that mean something else)
        raise
    except ConfigError as exc:
        if exc.file == str(file) and exc.key:
            raise
        raise ConfigError(file, key, str(exc)) from None
    except OSError as exc:
        text = exc.strerror or str(exc)
        raise ConfigError(file, key, f"{exc.filename}: {text}" if exc.filename else text) from None
    except (UnicodeError, *also) as exc:
        raise ConfigError(file, key, str(exc)) from None


_MISSING = object()


class Section:
    """A view of one TOML table that remembers its file and dotted key for error messages.

    Every getter marks the key as used, so ``finish()`` can reject unknown keys: a misspelt
    key silently ignored is how a relay ends up wired to the wrong line.
    """

    def __init__(self, data: dict, file: str | Path, prefix: str = ""):
        if not isinstance(data, dict):
            raise ConfigError(file, prefix, f"must be a table, got {type(data).__name__}")
        self.data = data
        self.file = str(file)
        self.prefix = prefix
        self._used: set[str] = set()

    def key(self, name: str) -> str:
        return f"{self.prefix}.{name}" if self.prefix else name

    def error(self, name: str, problem: str, allowed: str | None = None) -> ConfigError:
        return ConfigError(self.file, self.key(name), problem, allowed=allowed)

    def has(self, name: str) -> bool:
        return name in self.data

    def _get(self, name: str, default: Any) -> Any:
        self._used.add(name)
        if name in self.data:
            return self.data[name]
        if default is _MISSING:
            raise self.error(name, "missing required key")
        return default

    def section(self, name: str, *, required: bool = False) -> "Section":
        self._used.add(name)
        if name not in self.data:
            if required:
                raise self.error(name, "missing required table")
            return Section({}, self.file, self.key(name))
        return Section(self.data[name], self.file, self.key(name))

    def sections(self, name: str) -> list["Section"]:
        """An array of tables (``[[name]]``)."""
        self._used.add(name)
        value = self.data.get(name, [])
        if not isinstance(value, list):
            raise self.error(name, "must be an array of tables ([[...]])")
        return [Section(v, self.file, f"{self.key(name)}[{i}]") for i, v in enumerate(value)]

    def str(self, name: str, default: Any = _MISSING, *, choices: Iterable[str] | None = None) -> str:
        value = self._get(name, default)
        if value is default and default is not _MISSING:
            return value
        if not isinstance(value, str):
            raise self.error(name, f"must be a string, got {value!r}")
        if choices is not None:
            choices = list(choices)
            if value not in choices:
                raise self.error(name, f"unknown value {value!r}", ", ".join(choices))
        return value

    def bool(self, name: str, default: Any = _MISSING) -> bool:
        value = self._get(name, default)
        if not isinstance(value, bool):
            raise self.error(name, f"must be true or false, got {value!r}")
        return value

    def int(self, name: str, default: Any = _MISSING, *, min: int | None = None, max: int | None = None) -> int:
        value = self._get(name, default)
        if value is default and default is not _MISSING and value is None:
            return value
        if isinstance(value, bool) or not isinstance(value, int):
            raise self.error(name, f"must be a whole number, got {value!r}", _range(min, max))
        if (min is not None and value < min) or (max is not None and value > max):
            raise self.error(name, f"out of range: {value}", _range(min, max))
        return value

    def float(self, name: str, default: Any = _MISSING, *, min: float | None = None, max: float | None = None) -> float:
        value = self._get(name, default)
        if value is default and default is not _MISSING and value is None:
            return value
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise self.error(name, f"must be a number, got {value!r}", _range(min, max))
        value = float(value)
        if value != value or (min is not None and value < min) or (max is not None and value > max):
            raise self.error(name, f"out of range: {value}", _range(min, max))
        return value

    def list(self, name: str, default: Any = _MISSING) -> list:
        value = self._get(name, default)
        if not isinstance(value, list):
            raise self.error(name, f"must be an array, got {value!r}")
        return value

    def known(self, *names: str) -> None:
        """Keys of this table that another reader owns: not typos (``finish`` accepts them)."""
        self._used.update(names)

    def finish(self) -> None:
        """Reject keys nobody asked for (typos)."""
        unknown = sorted(set(self.data) - self._used)
        if unknown:
            raise self.error(unknown[0], "unknown key", ", ".join(sorted(self._used)) or "none")


def _range(lo, hi) -> str | None:
    if lo is None and hi is None:
        return None
    if lo is None:
        return f"at most {hi}"
    if hi is None:
        return f"at least {lo}"
    return f"{lo} to {hi}"
