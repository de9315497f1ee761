"""The tariff editor: the owner's TOML file as a form, and a form back into the same file.

The file is edited with tomlkit, which keeps what the owner wrote around the values (comments,
order, blank lines): a save changes only the keys the form changed. What the form sends is
checked by the same reader ``urja tariff check`` uses (``agent.tariff_file.tariff_from_toml``),
and its message is shown next to the field it names. A value that is not even a number is
written as text, so that reader's message (not a second, different one) is what the owner sees.
"""
from __future__ import annotations

import os
import re
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import tomlkit

from agent.core.tariff import DAYS, Tariff
from agent.tariff_file import load_tariff_file, tariff_from_toml
from drivers.configfile import ConfigError

HEADER_KEYS = ("id", "gst_percent", "min_price")
PRICE_KEYS = ("energy_per_kwh", "time_per_hour", "parking_per_hour", "flat")
TIME_KEYS = ("start_time", "end_time")
ROW_KEYS = PRICE_KEYS + TIME_KEYS
NUMBER_KEYS = set(PRICE_KEYS) | {"gst_percent", "min_price"}
_NUMBER = re.compile(r"^\d{1,7}(\.\d{1,4})?$")
_ERROR_KEY = re.compile(r"^tariff(?:\.element\[(\d+)\])?(?:\.(\w+))?")


class TariffFileError(Exception):
    """The tariff file cannot be edited here (JSON, unreadable); the message says why."""


@dataclass
class Row:
    """One ``[[tariff.element]]`` as the form shows it; ``index`` is its place in the file."""

    index: int | None
    values: dict = field(default_factory=dict)
    days: list = field(default_factory=list)
    others: list = field(default_factory=list)  # keys the form does not edit, kept as written


@dataclass
class TariffForm:
    header: dict
    rows: list
    errors: dict = field(default_factory=dict)  # form field -> message

    def field_error(self, name: str) -> str | None:
        return self.errors.get(name)


def _text(value) -> str:
    if value is None:
        return ""
    if isinstance(value, (tomlkit.items.Float, tomlkit.items.Integer)):
        return value.as_string().strip()  # as the owner spelt it: 21.50, not 21.5
    if isinstance(value, float) and value == int(value):
        return f"{value:.2f}"
    return str(value)


def read_document(path: Path) -> tomlkit.TOMLDocument:
    if path.suffix.lower() != ".toml":
        raise TariffFileError(f"{path}: only a TOML tariff file can be edited on the page")
    try:
        return tomlkit.parse(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomlkit.exceptions.TOMLKitError) as exc:
        raise TariffFileError(f"{path}: not readable ({exc})") from None


def form_from_document(doc) -> TariffForm:
    table = doc.get("tariff", {})
    header = {key: _text(table.get(key)) for key in HEADER_KEYS}
    rows = []
    for i, element in enumerate(table.get("element", [])):
        rows.append(Row(index=i, values={key: _text(element.get(key)) for key in ROW_KEYS},
                        days=[str(d) for d in element.get("days", [])],
                        others=[k for k in element if k not in ROW_KEYS and k != "days"]))
    return TariffForm(header=header, rows=rows)


def form_from_post(post, existing: int) -> TariffForm:
    """The form as sent: ``existing`` rows of the file plus one blank row for a new element."""
    header = {key: str(post.get(key, "")).strip() for key in HEADER_KEYS}
    rows = []
    for i in range(existing + 1):
        if post.get(f"e{i}.remove"):
            continue
        values = {key: str(post.get(f"e{i}.{key}", "")).strip() for key in ROW_KEYS}
        if i == existing and not any(values[k] for k in PRICE_KEYS):
            continue  # the blank row left blank
        days = [d for d in post.getall(f"e{i}.days", []) if d in DAYS] if hasattr(post, "getall") else []
        rows.append(Row(index=i if i < existing else None, values=values, days=days))
    return TariffForm(header=header, rows=rows)


def _value(key: str, text: str):
    if key in NUMBER_KEYS and _NUMBER.match(text):
        # written as typed ("21.50" stays 21.50), the way the owner writes prices in the file
        return tomlkit.items.Float(float(text), tomlkit.items.Trivia(), text) if "." in text else int(text)
    return text  # as written: the tariff reader names what is wrong with it


def _set(table, key: str, text: str, *, after: bool = False) -> None:
    if key in table and _text(table[key]) == text:
        return  # unchanged: kept as the owner spelt it
    if text == "":
        if key in table:
            del table[key]
    elif key in table or not after:
        table[key] = _value(key, text)
    else:
        # Beside the keys it belongs with, not after the comment that heads the next table.
        body = table.value.body
        last = max((i for i, (k, item) in enumerate(body)
                    if k is not None and not isinstance(item, (tomlkit.items.Table, tomlkit.items.AoT))),
                   default=len(body) - 1)
        _insert(table, last + 1, key, _value(key, text))


def _set_days(element, days: list) -> None:
    body = element.value.body
    last = max((i for i, (k, _) in enumerate(body) if k is not None), default=len(body) - 1)
    _insert(element, last + 1, "days", tomlkit.array(str(list(days)).replace("'", '"')))


def _insert(table, index: int, key: str, value) -> None:
    if index >= len(table.value.body):
        table[key] = value
    else:
        table.value._insert_at(index, key, value)


def _trailing(table) -> list:
    """The comments and blank lines that end a table (in TOML they head the next one)."""
    body = table.value.body
    out = []
    while body and body[-1][0] is None and isinstance(body[-1][1], (tomlkit.items.Comment,
                                                                    tomlkit.items.Whitespace)):
        out.insert(0, body.pop())
    return out


def _drop_heading(before, removed) -> None:
    """A removed element's heading comment goes with it; the next element's heading stays."""
    _trailing(before)
    heading = _trailing(removed)
    before.value.body.extend(heading or [(None, tomlkit.items.Whitespace("\n"))])


def apply_form(doc, form: TariffForm) -> list:
    """Write the form into the document in place; returns each file element's form row.

    Elements kept are changed in place and removed ones deleted, so the owner's comments
    stay with the keys they were written beside.
    """
    table = doc.setdefault("tariff", tomlkit.table())
    for key in HEADER_KEYS:
        _set(table, key, form.header.get(key, ""), after=True)
    if "element" not in table:
        table["element"] = tomlkit.aot()
    elements = table["element"]
    kept = {row.index: row for row in form.rows if row.index is not None}
    for i in range(len(elements) - 1, -1, -1):
        if i not in kept:
            if i > 0:
                _drop_heading(elements[i - 1], elements[i])
            del elements[i]
    placed = []
    for row in form.rows:
        if row.index is None:
            elements.append(tomlkit.table())
            element = elements[len(elements) - 1]
        else:
            element = elements[len(placed)]
        for key in ROW_KEYS:
            _set(element, key, row.values.get(key, ""), after=True)
        if row.days:
            if list(element.get("days", [])) != row.days:
                if "days" in element:
                    del element["days"]
                _set_days(element, row.days)
        elif "days" in element:
            del element["days"]
        placed.append(form.rows.index(row))
    return placed


def check(doc, path: Path) -> dict:
    """The OCPI tariff the document makes, or ``ConfigError`` naming the key."""
    return tariff_from_toml(doc.unwrap(), path)


def error_field(exc: ConfigError, placed: list) -> str:
    """The form field a reader's error names (``tariff.element[1].flat`` -> ``e1.flat``)."""
    found = _ERROR_KEY.match(exc.key or "")
    if not found:
        return "id"
    element, key = found.group(1), found.group(2)
    if element is None:
        return key if key in HEADER_KEYS else "id"
    row = placed[int(element)] if int(element) < len(placed) else int(element)
    return f"e{row}.{key}" if key in ROW_KEYS or key == "days" else f"e{row}"


def save(path: Path, doc) -> dict:
    """Write the document beside and rename over the file; the tariff as now in force."""
    tmp = path.with_name(path.name + ".saving")
    tmp.write_text(tomlkit.dumps(doc), encoding="utf-8")
    with tmp.open("rb") as fh:
        os.fsync(fh.fileno())
    os.replace(tmp, path)
    return load_tariff_file(path)


def preview_paise(tariff: dict, *, energy_wh: int, hour: int, minute: int, weekday: int, power_w: int,
                  timezone: str, now_s: float) -> tuple[int, str]:
    """What ``energy_wh`` costs when charging starts at the next such weekday and time (paise, text)."""
    from agent.core.offers import quote_energy
    from agent.tariff_file import zone_offset

    zone = ZoneInfo(timezone)
    today = datetime.fromtimestamp(now_s, zone).replace(hour=hour, minute=minute, second=0, microsecond=0)
    start = today + timedelta(days=(weekday - today.weekday()) % 7)
    cost = quote_energy(Tariff(tariff), energy_wh, int(start.timestamp()), max(1, power_w), zone_offset(timezone))
    return cost.total_paise, cost.paid_text()
