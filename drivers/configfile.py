"""Typed reads from parsed TOML with errors that name the file, the key and what is allowed.

Both board profiles and the site configuration are hand-written by people who are not
programmers; a message like "urja.toml: site.place.lat: must be a number from -90 to 90,
got 'north'" is the difference between a fixed typo and a support call.
"""
from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any, Iterable


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


def load_toml(path: str | Path) -> dict:
    """Parse a TOML file, turning I/O and syntax errors into a ConfigError naming the file."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            return tomllib.load(fh)
    except FileNotFoundError:
        raise ConfigError(path, "", "file not found") from None
    except PermissionError:
        raise ConfigError(path, "", "file not readable (permission denied)") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(path, "", f"not valid TOML: {exc}") from None


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
