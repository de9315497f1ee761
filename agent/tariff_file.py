"""The site owner's tariff file (TOML) and its conversion to and from OCPI 2.2.1 Tariff objects.

The owner writes prices the way they appear on a shop board: rupees per kWh before GST, one GST
rate for the whole tariff, times of day as "18:00". The charger itself works on the OCPI Tariff
dict, which is what it publishes to eMSPs, so this module is only a translation at the CPython
edge (it also resolves time zones, which the portable engine never does).

Format::

    [tariff]
    id = "evening-peak"          # required, at most 36 characters
    currency = "INR"             # ISO 4217, default INR
    gst_percent = 18             # VAT on every component, default 18 (India's GST on charging)
    country_code = "IN"          # default IN
    party_id = "URJ"             # default URJ
    last_updated = "2026-03-01T00:00:00Z"  # default: the file's modification time
    min_price = 30               # optional, excl. GST
    max_price = 2000             # optional, excl. GST

    [[tariff.element]]           # first matching element wins, per dimension (OCPI rule)
    energy_per_kwh = 18.0        # prices excl. GST; any of the four, at least one
    time_per_hour = 0
    parking_per_hour = 60
    flat = 10
    step_size_wh = 1             # energy billed in blocks of this many Wh (default 1)
    time_step_s = 60             # charging time billed per this many seconds (default 1)
    parking_step_s = 300         # parking time billed per this many seconds (default 1)
    start_time = "18:00"         # restrictions, all optional, all must hold
    end_time = "22:00"
    days = ["MONDAY", "FRIDAY"]
    start_date = "2026-01-01"    # valid from (inclusive), end_date until (exclusive)
    min_kwh = 0; max_kwh = 10; min_current_a; max_current_a; min_power_kw; max_power_kw
    min_duration_s; max_duration_s

Prices are exact: a number is read through the decimal text it was written with (``18.5``,
``18.50`` and ``"18.50"`` are the same), at most 4 decimals, more is an error naming the key.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

from agent.core.tariff import DAYS, Tariff, TariffError, format_fixed, parse_fixed
from agent.core.tariff_model import MAX_PRICE_UNITS
from drivers.configfile import ConfigError, Section, load_toml, read_text

_DIM_KEYS = (
    ("energy_per_kwh", "ENERGY", "step_size_wh"),
    ("time_per_hour", "TIME", "time_step_s"),
    ("parking_per_hour", "PARKING_TIME", "parking_step_s"),
    ("flat", "FLAT", None),
)
_DEFAULT_LAST_UPDATED = "2026-01-01T00:00:00Z"
DEFAULT_GST_PERCENT = 18  # GST on EV charging services in India


def _fixed(sec: Section, name: str, places: int, what: str, *, minimum: float = 0):
    """Exact value of a money-like key (number or decimal string), or None when absent."""
    if not sec.has(name):
        sec.float(name, None)  # marks the key as known
        return None
    value = sec.data[name]
    text = sec.str(name) if isinstance(value, str) else sec.float(name, min=minimum)
    try:
        return parse_fixed(text, places, sec.key(name))
    except TariffError as exc:
        raise sec.error(name, exc.problem, exc.allowed or what) from None


def _number_out(value_scaled: int, places: int):
    """A JSON number that reads back to exactly ``value_scaled`` / 10**places."""
    if value_scaled % 10 ** places == 0:
        return value_scaled // 10 ** places
    return float(format_fixed(value_scaled, places))


def tariff_from_toml(data: dict, file: str | Path = "<tariff>", *,  # noqa: C901
                     default_last_updated: str = _DEFAULT_LAST_UPDATED) -> dict:
    """OCPI Tariff dict from a parsed tariff TOML document; errors name file and key.

    ``gst_percent`` defaults to India's 18 % for EV charging. ``last_updated`` is the file's
    own when it has one; ``load_tariff_file`` passes the file's modification time as the
    default, so an edited price looks changed to partners that pull with ``date_from``."""
    root = Section(data, file)
    sec = root.section("tariff", required=True)
    root.finish()
    tariff_id = sec.str("id")
    if not tariff_id or len(tariff_id) > 36:
        raise sec.error("id", f"must be 1 to 36 characters, got {tariff_id!r}")
    currency = sec.str("currency", "INR")
    if len(currency) != 3 or not currency.isalpha() or not currency.isupper():
        raise sec.error("currency", f"not an ISO 4217 code: {currency!r}", "e.g. INR, EUR, USD")
    gst_e4 = _fixed(sec, "gst_percent", 4, "0 to 100 with at most 4 decimals")
    if gst_e4 is None:
        gst_e4 = DEFAULT_GST_PERCENT * 10000
    if gst_e4 > 100 * 10000:
        raise sec.error("gst_percent", f"out of range: {format_fixed(gst_e4, 4)}", "0 to 100")
    country = sec.str("country_code", "IN")
    if len(country) != 2:
        raise sec.error("country_code", f"must be 2 letters, got {country!r}", "ISO 3166 alpha-2")
    party = sec.str("party_id", "URJ")
    if len(party) != 3:
        raise sec.error("party_id", f"must be 3 characters, got {party!r}")
    last_updated = sec.str("last_updated", default_last_updated)
    out: dict = {"country_code": country, "party_id": party, "id": tariff_id,
                 "currency": currency}
    vat = _number_out(gst_e4, 4)
    for bound in ("min_price", "max_price"):
        excl = _fixed(sec, bound, 4, "a price with at most 4 decimals")
        if excl is not None and excl > MAX_PRICE_UNITS * 10000:
            raise sec.error(bound, f"too large: {sec.data[bound]!r}", f"0 to {MAX_PRICE_UNITS}")
        if excl is not None:
            incl = excl + (excl * gst_e4 * 2 + 1000000) // 2000000
            out[bound] = {"excl_vat": _number_out(excl, 4), "incl_vat": _number_out(incl, 4)}
    elements = []
    sections = sec.sections("element")
    if not sections:
        raise sec.error("element", "at least one [[tariff.element]] is required")
    for el in sections:
        components = []
        for price_key, dimension, step_key in _DIM_KEYS:
            price = _fixed(el, price_key, 4, "a price with at most 4 decimals, e.g. 18.50")
            if price is not None and price > MAX_PRICE_UNITS * 10000:
                raise el.error(price_key, f"too large: {el.data[price_key]!r}", f"0 to {MAX_PRICE_UNITS}")
            step = el.int(step_key, 1, min=1) if step_key else 1
            if price is None:
                continue
            components.append({"type": dimension, "price": _number_out(price, 4), "vat": vat,
                               "step_size": step})
        if not components:
            raise ConfigError(el.file, el.prefix, "element prices nothing",
                              allowed=", ".join(k for k, _, _ in _DIM_KEYS))
        restrictions = _restrictions(el)
        el.finish()
        element: dict = {"price_components": components}
        if restrictions:
            element["restrictions"] = restrictions
        elements.append(element)
    out["elements"] = elements
    out["last_updated"] = last_updated
    sec.finish()
    try:
        Tariff(out)
    except TariffError as exc:  # a rule only the engine knows (dates, times)
        raise ConfigError(file, sec.key(exc.field), exc.problem, allowed=exc.allowed) from None
    return out


def _restrictions(el: Section) -> dict:
    out: dict = {}
    for key in ("start_time", "end_time"):
        value = el.str(key, None)
        if value is not None:
            ok = len(value) == 5 and value[2] == ":" and (value[:2] + value[3:]).isdigit() \
                and int(value[:2]) < 24 and int(value[3:]) < 60
            if not ok:
                raise el.error(key, f"not a time of day: {value!r}", "HH:MM from 00:00 to 23:59")
            out[key] = value
    for key in ("start_date", "end_date"):
        value = el.str(key, None)
        if value is not None:
            try:
                Tariff({"elements": [{"price_components": [{"type": "FLAT", "price": 0}],
                                      "restrictions": {key: value}}]})
            except TariffError as exc:
                raise el.error(key, exc.problem, "a date YYYY-MM-DD") from None
            out[key] = value
    days = el.list("days") if el.has("days") else None
    if days is not None:
        for day in days:
            if day not in DAYS:
                raise el.error("days", f"unknown day {day!r}", ", ".join(DAYS))
        out["day_of_week"] = list(days)
    for toml_key, ocpi_key, places in (("min_kwh", "min_kwh", 3), ("max_kwh", "max_kwh", 3),
                                       ("min_current_a", "min_current", 3),
                                       ("max_current_a", "max_current", 3),
                                       ("min_power_kw", "min_power", 3),
                                       ("max_power_kw", "max_power", 3)):
        value = _fixed(el, toml_key, places, f"a number with at most {places} decimals")
        if value is not None:
            out[ocpi_key] = _number_out(value, places)
    for key in ("min_duration_s", "max_duration_s"):
        value = el.int(key, None, min=0)
        if value is not None:
            out[key[:-2]] = value
    return out


def tariff_to_toml(tariff: dict) -> str:
    """TOML text for an OCPI Tariff dict, for owners who start from an eMSP-facing tariff.

    Only tariffs with one VAT rate and no reservation elements can be written this way.
    """
    parsed = Tariff(tariff)
    rates = set()
    for restrictions, by_dim in parsed.elements:
        if restrictions is not None and restrictions.reservation is not None:
            raise TariffError("elements", "reservation elements have no TOML form")
        for comp in by_dim.values():
            rates.add(comp.vat_e4 or 0)
    if len(rates) > 1:
        raise TariffError("elements", "several VAT rates cannot be written as one gst_percent")
    gst = rates.pop() if rates else 0
    lines = ["[tariff]", f"id = {json.dumps(tariff.get('id', 'tariff'))}",
             f"currency = {json.dumps(parsed.currency)}", f"gst_percent = {format_fixed(gst, 4)}"]
    for key in ("country_code", "party_id", "last_updated"):
        if key in tariff:
            lines.append(f"{key} = {json.dumps(tariff[key])}")
    for key, value in (("min_price", parsed.min_excl_u), ("max_price", parsed.max_excl_u)):
        if value is not None:
            lines.append(f"{key} = {json.dumps(format_fixed(value, 4))}")
    names = {dim: (price_key, step_key) for price_key, dim, step_key in _DIM_KEYS}
    for element, (_, by_dim) in zip(tariff["elements"], parsed.elements, strict=True):
        lines += ["", "[[tariff.element]]"]
        for dim in ("ENERGY", "TIME", "PARKING_TIME", "FLAT"):
            comp = by_dim.get(dim)
            if comp is None:
                continue
            price_key, step_key = names[dim]
            lines.append(f"{price_key} = {json.dumps(format_fixed(comp.price_u, 4))}")
            if step_key and comp.step_size != 1:
                lines.append(f"{step_key} = {comp.step_size}")
        for key, value in (element.get("restrictions") or {}).items():
            toml_key = {"day_of_week": "days", "min_current": "min_current_a",
                        "max_current": "max_current_a", "min_power": "min_power_kw",
                        "max_power": "max_power_kw", "min_duration": "min_duration_s",
                        "max_duration": "max_duration_s"}.get(key, key)
            lines.append(f"{toml_key} = {json.dumps(value)}")
    return "\n".join(lines) + "\n"


def load_tariff_file(path: str | Path) -> dict:
    """OCPI Tariff dict from a ``.toml`` owner's file or an OCPI ``.json`` Tariff, validated."""
    path = Path(path)
    if path.suffix.lower() == ".toml":
        data = load_toml(path)  # names a missing or unreadable file itself
        modified_s = int(path.stat().st_mtime)
        return tariff_from_toml(data, path, default_last_updated=time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                                             time.gmtime(modified_s)))
    try:
        data = json.loads(read_text(path))
    except json.JSONDecodeError as exc:
        raise ConfigError(path, "", f"not valid JSON: {exc}") from None
    if isinstance(data, dict) and "data" in data and "elements" not in data:
        data = data["data"]  # an OCPI response envelope
    try:
        Tariff(data)
    except TariffError as exc:
        raise ConfigError(path, exc.field, exc.problem, allowed=exc.allowed) from None
    return data


def zone_offset(tz_name: str):
    """A function epoch_s -> UTC offset in seconds for an IANA zone (DST-aware), for the engine."""
    from datetime import datetime, timezone
    from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

    try:
        zone = ZoneInfo(tz_name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError("--tz", "", f"unknown time zone {tz_name!r}",
                          allowed="IANA names such as Asia/Kolkata, Europe/Berlin, UTC") from None

    def offset_s(epoch_s: int) -> int:
        moment = datetime.fromtimestamp(epoch_s, tz=timezone.utc).astimezone(zone)
        return int(moment.utcoffset().total_seconds())

    return offset_s


def _epoch_s(text, field: str, file) -> int:
    from datetime import datetime, timezone

    if not isinstance(text, str):
        raise ConfigError(file, field, f"must be an RFC 3339 date-time, got {text!r}")
    try:
        moment = datetime.fromisoformat(text.replace("Z", "+00:00"))
    except ValueError:
        raise ConfigError(file, field, f"not an RFC 3339 date-time: {text!r}") from None
    if moment.tzinfo is None:  # OCPI DateTime is UTC even without a zone designator
        moment = moment.replace(tzinfo=timezone.utc)
    return int(moment.timestamp())


def periods_from_cdr(cdr: dict, file: str | Path = "CDR") -> list:  # noqa: C901
    """Engine periods from an OCPI CDR's (or Session's) ``charging_periods``.

    Energy is rounded to whole Wh and times to whole seconds. A period that states neither TIME
    nor PARKING_TIME nor RESERVATION_TIME takes its length from the timestamps (up to the next
    period, or the CDR's end_date_time) as charging time if it delivered energy, parking time
    otherwise. RESERVATION_TIME becomes the period's ``reservation_s``: reservation periods
    come before the session's, and a CDR holding nothing else is an expired reservation unless
    the caller says otherwise (agent.core.tariff, Reservations).
    """
    from agent.core.tariff import Period

    def fail(field, problem):
        return ConfigError(file, field, problem)

    if not isinstance(cdr, dict):
        raise fail("", "a CDR must be a JSON object")
    raw = cdr.get("charging_periods")
    if not isinstance(raw, list) or not raw:
        raise fail("charging_periods", "must be a non-empty list")
    starts = []
    for i, item in enumerate(raw):
        if not isinstance(item, dict):
            raise fail(f"charging_periods[{i}]", "must be an object")
        starts.append(_epoch_s(item.get("start_date_time"),
                               f"charging_periods[{i}].start_date_time", file))
    end = cdr.get("end_date_time")
    end_s = _epoch_s(end, "end_date_time", file) if end is not None else None
    out = []
    for i, item in enumerate(raw):
        field = f"charging_periods[{i}].dimensions"
        dims = item.get("dimensions")
        if not isinstance(dims, list):
            raise fail(field, "must be a list of CdrDimension objects")
        values: dict = {}
        for j, dim in enumerate(dims):
            if not isinstance(dim, dict) or not isinstance(dim.get("type"), str):
                raise fail(f"{field}[{j}]", "must be an object with type and volume")
            volume = dim.get("volume")
            if isinstance(volume, bool) or not isinstance(volume, (int, float)):
                raise fail(f"{field}[{j}].volume", f"must be a number, got {volume!r}")
            values[dim["type"]] = volume
        energy_wh = round(values.get("ENERGY", 0) * 1000)
        if energy_wh < 0:
            raise fail(field, "negative ENERGY (export) cannot be priced")
        time_s = round(values["TIME"] * 3600) if "TIME" in values else None
        parking_s = round(values["PARKING_TIME"] * 3600) if "PARKING_TIME" in values else None
        reservation_s = round(values["RESERVATION_TIME"] * 3600) \
            if "RESERVATION_TIME" in values else 0
        for name, value in (("TIME", time_s), ("PARKING_TIME", parking_s),
                            ("RESERVATION_TIME", reservation_s)):
            if value is not None and value < 0:
                raise fail(field, f"negative {name} cannot be priced")
        if time_s is None and parking_s is None and "RESERVATION_TIME" not in values:
            nxt = starts[i + 1] if i + 1 < len(starts) else end_s
            if nxt is None:
                raise fail(field, "no TIME or PARKING_TIME and no end time to measure the period")
            length = max(0, nxt - starts[i])
            time_s, parking_s = (length, 0) if energy_wh > 0 else (0, length)

        def scaled(key, factor, values=values):
            value = values.get(key)
            return None if value is None else round(value * factor)

        avg_c = scaled("CURRENT", 1000)
        avg_p = scaled("POWER", 1000)
        min_c = scaled("MIN_CURRENT", 1000)
        max_c = scaled("MAX_CURRENT", 1000)
        min_p = scaled("MIN_POWER", 1000)
        max_p = scaled("MAX_POWER", 1000)
        out.append(Period(starts[i], energy_wh, time_s or 0, parking_s or 0,
                          min_c if min_c is not None else (avg_c if avg_c is not None else max_c),
                          max_c if max_c is not None else (avg_c if avg_c is not None else min_c),
                          min_p if min_p is not None else (avg_p if avg_p is not None else max_p),
                          max_p if max_p is not None else (avg_p if avg_p is not None else min_p),
                          reservation_s))
    return out


def tariff_digest(tariff: dict) -> str:
    """Digest of the tariff's canonical JSON (RFC 8785): binds offers, quotes and receipts to
    the exact prices they used, whatever the JSON spelling on the way."""
    import hashlib

    import rfc8785

    return "sha256:" + hashlib.sha256(rfc8785.dumps(tariff)).hexdigest()
