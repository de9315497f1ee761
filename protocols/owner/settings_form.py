"""Site settings from the page, written back into the site's own configuration file.

The file is edited with tomlkit (the owner's comments and layout stay) and the result is checked
by the agent's own loader (``agent.config.load_config``) before it replaces the file: a value
the agent would refuse at start is refused here with the same message, and the file is never
left half-written. The running agent keeps its settings until it restarts; the page says so.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import tomlkit

from agent.config import AUTH_MODES, load_config
from drivers.configfile import ConfigError

# form field -> (table path, key)
FIELDS = {
    "name": (("site",), "name"),
    "opening_hours": (("site",), "opening_hours"),
    "address": (("site", "place"), "address"),
    "city": (("site", "place"), "city"),
    "upi_vpa": (("payment",), "upi_vpa"),
    "max_current_a": (("charging",), "max_current_a"),
    "auth": (("charging",), "auth"),
    "allow_tokens": (("charging",), "allow_tokens"),
}
_BY_KEY = {".".join(path + (key,)): name for name, (path, key) in FIELDS.items()}
_BY_KEY["network.enabled"] = NETWORK = "network_enabled"  # a checkbox, shown where [network] is


@dataclass
class SettingsForm:
    values: dict
    errors: dict


def _table(doc, path: tuple, create: bool):
    table = doc
    for name in path:
        if name not in table:
            if not create:
                return None
            table[name] = tomlkit.table()
        table = table[name]
    return table


def read(path: Path) -> SettingsForm:
    doc = tomlkit.parse(path.read_text(encoding="utf-8"))
    values = {}
    for name, (where, key) in FIELDS.items():
        table = _table(doc, where, create=False)
        value = None if table is None else table.get(key)
        if isinstance(value, list):
            values[name] = "\n".join(str(v) for v in value)
        else:
            values[name] = "" if value is None else str(value)
    values.setdefault("auth", "network")
    _network_values(doc, values)
    return SettingsForm(values=values, errors={})


def _network_values(doc, values: dict) -> None:
    network = doc.get("network")
    values["network_table"] = "yes" if network is not None else ""
    values[NETWORK] = "on" if network is not None and bool(network.get("enabled", True)) else ""


def _set_network(doc, text: str) -> None:
    """On or off: ``[network] enabled``, only where the site has a network table to switch."""
    network = doc.get("network")
    if network is None:
        return
    wanted = text == "on"
    if bool(network.get("enabled", True)) != wanted:
        network["enabled"] = wanted


def _typed(name: str, text: str):
    if name == "allow_tokens":
        return [t.strip() for t in text.replace(",", "\n").splitlines() if t.strip()]
    if name == "max_current_a":
        try:
            number = float(text)
        except ValueError:
            return text  # the loader names the key and what it wants
        return int(number) if number == int(number) else number
    return text


def save(path: Path, post) -> SettingsForm:
    """Check the posted settings as the agent would and write them; errors by form field."""
    values = {name: str(post.get(name, "")).strip() for name in FIELDS}
    doc = tomlkit.parse(path.read_text(encoding="utf-8"))
    values[NETWORK] = str(post.get(NETWORK, "")).strip()
    values["network_table"] = "yes" if doc.get("network") is not None else ""
    if values["auth"] not in AUTH_MODES:
        return SettingsForm(values=values, errors={"auth": f"charging.auth: allowed {', '.join(AUTH_MODES)}"})
    if post.get("network_shown"):  # the form showed the switch: an unticked box means off
        _set_network(doc, values[NETWORK])
    for name, (where, key) in FIELDS.items():
        text = values[name]
        table = _table(doc, where, create=bool(text))
        if table is None:
            continue
        typed = _typed(name, text)
        current = table.get(key)
        if (list(current) if isinstance(current, list) else current) == typed:
            continue  # unchanged: kept as the owner wrote it
        if text == "" and name not in ("name",):
            if key in table:
                del table[key]
        else:
            table[key] = typed
    trial = path.with_name(path.name + ".checking")
    trial.write_text(tomlkit.dumps(doc), encoding="utf-8")
    try:
        load_config(trial)
    except ConfigError as exc:
        trial.unlink(missing_ok=True)
        message = str(exc).replace(str(trial), str(path))
        return SettingsForm(values=values, errors={_BY_KEY.get(exc.key, "name"): message})
    except BaseException:
        trial.unlink(missing_ok=True)
        raise
    with trial.open("rb") as fh:
        os.fsync(fh.fileno())
    os.replace(trial, path)
    return SettingsForm(values=values, errors={})
