"""The site configuration: one TOML file the site owner edits (default ``/etc/urja/urja.toml``).

It says who the site is (identity, contact), where it is (GPS, address, time zone), which
board profile drives the hardware, and how charging is authorised and priced. Validation
happens once at start, with errors naming the file, the key and what is allowed, so a typo
stops the agent before the relay can move rather than half-way through a session.
CPython edge only: the portable core receives plain numbers (UTC offset, limits), never this.
"""
from __future__ import annotations

import zoneinfo
from pathlib import Path

from agent import bindings
from agent.core.errors import AgentError
from agent.opening_hours import EXAMPLE as OPENING_EXAMPLE
from agent.opening_hours import OpeningHoursError
from agent.opening_hours import parse as parse_opening_hours
from drivers.configfile import ConfigError, Section, load_toml

DEFAULT_CONFIG_PATH = Path("/etc/urja/urja.toml")

AUTH_MODES = ("free_vend", "allow_list", "network")


class Place:
    __slots__ = ("lat", "lon", "address", "city", "state", "postal_code", "country", "timezone")

    def __init__(self, *, lat, lon, address, city, state, postal_code, country, timezone):
        self.lat = lat
        self.lon = lon
        self.address = address
        self.city = city
        self.state = state
        self.postal_code = postal_code
        self.country = country
        self.timezone = timezone


class SiteConfig:
    """The validated site configuration; attributes mirror the TOML tables."""

    def __init__(self, **values):
        self.__dict__.update(values)

    def __repr__(self) -> str:
        return f"SiteConfig(site_id={self.site_id!r}, board={self.board_profile!r}, file={self.path!r})"


def _resolve(base: Path, value: str | None) -> Path | None:
    if value is None:
        return None
    p = Path(value)
    return p if p.is_absolute() else (base / p)


SOCKET_KEYS = ("plug_current_a", "plug_hold_ms", "finish_current_a", "finish_hold_ms")
SAFETY_KEYS = ("overcurrent_margin_pct", "overcurrent_extra_a", "overcurrent_hold_ms", "weld_settle_ms",
               "weld_current_a", "ev_reaction_ms")


def _check_socket(values: dict) -> None:
    from agent.core.session import SessionSettings

    SessionSettings(mode="socket", **values)


def _check_safety(values: dict) -> None:
    from agent.core.safety import SafetySettings

    SafetySettings(**values)


def _bounded_table(root, table: str, keys: tuple, check) -> dict:
    """An optional table of core settings, checked by the core's own bounds."""
    if not root.has(table):
        return {}
    sec = root.section(table)
    values = {}
    for key in keys:
        if sec.has(key):
            sec.float(key, None)  # a number, or an error naming the key
            values[key] = sec.data[key]
    sec.finish()
    try:
        check(values)
    except AgentError as exc:
        key = getattr(exc, "details", {}).get("key") or next(iter(values), "")
        allowed = getattr(exc, "details", {}).get("allowed")
        raise sec.error(key, str(exc), f"{allowed[0]} to {allowed[1]}" if allowed else None) from None
    return values


def load_config(path: str | Path = DEFAULT_CONFIG_PATH) -> SiteConfig:
    """Read and validate a site configuration file; relative paths in it are relative to the file."""
    path = Path(path)
    root = Section(load_toml(path), path)
    base = path.parent

    site = root.section("site", required=True)
    site_id = site.str("id")
    if not site_id or any(c.isspace() for c in site_id) or len(site_id) > 128:
        raise site.error("id", f"must be 1-128 characters without spaces, got {site_id!r}")
    name = site.str("name")
    operator = site.str("operator", "")
    phone = site.str("phone", "")
    email = site.str("email", "")
    hours_text = site.str("opening_hours", "24/7")
    try:
        opening_hours = parse_opening_hours(hours_text)
    except OpeningHoursError as exc:
        raise site.error("opening_hours", str(exc), OPENING_EXAMPLE) from None

    place_s = site.section("place", required=True)
    tz = place_s.str("timezone", "Asia/Kolkata")
    try:
        zoneinfo.ZoneInfo(tz)
    except (zoneinfo.ZoneInfoNotFoundError, ValueError):
        raise place_s.error("timezone", f"unknown time zone {tz!r}", "IANA names such as Asia/Kolkata, UTC") from None
    country = place_s.str("country", "IND")
    if len(country) != 3 or not country.isalpha() or not country.isupper():
        raise place_s.error("country", f"must be an ISO 3166-1 alpha-3 code, got {country!r}", "e.g. IND")
    place = Place(
        lat=place_s.float("lat", min=-90, max=90),
        lon=place_s.float("lon", min=-180, max=180),
        address=place_s.str("address", ""),
        city=place_s.str("city", ""),
        state=place_s.str("state", ""),
        postal_code=place_s.str("postal_code", ""),
        country=country,
        timezone=tz,
    )
    place_s.finish()
    site.finish()

    board = root.section("board")
    board_profile = board.str("profile", "sim")
    board.finish()

    charging = root.section("charging")
    # Free vend gives energy to anyone who plugs in: a site owner must choose it, never get it
    # by leaving the table out. Without a choice the charger sells through the network.
    auth_mode = charging.str("auth", "network", choices=AUTH_MODES)
    allow_tokens = charging.list("allow_tokens", [])
    for i, tok in enumerate(allow_tokens):
        if not isinstance(tok, str) or not tok:
            raise charging.error(f"allow_tokens[{i}]", f"must be a non-empty string, got {tok!r}")
    if auth_mode == "allow_list" and not allow_tokens:
        raise charging.error("allow_tokens", "auth = \"allow_list\" needs at least one token")
    max_current_a = charging.float("max_current_a", None, min=6, max=80)
    default_limit_wh = charging.int("default_limit_wh", 0, min=0, max=500_000)
    meter_poll_ms = charging.int("meter_poll_ms", 1000, min=100, max=10_000)
    # A start (remote, network order, card, free vend) lapses when no car comes within this.
    plug_timeout_s = charging.int("plug_timeout_s", 180, min=10, max=3600)
    meter_timeout_ms = charging.int("meter_timeout_ms", 5000, min=500, max=10_000)  # the gate's own bound
    if meter_timeout_ms <= meter_poll_ms:
        raise charging.error("meter_timeout_ms", f"must exceed meter_poll_ms ({meter_poll_ms})")
    charging.finish()

    tariff = root.section("tariff")
    tariff_file = _resolve(base, tariff.str("file", None))
    tariff.finish()

    journal = root.section("journal")
    journal_path = _resolve(base, journal.str("path", "/var/lib/urja/journal.sqlite"))
    journal.finish()

    identity = root.section("identity")
    key_dir = _resolve(base, identity.str("key_dir", "/etc/urja/keys"))
    agency_key = _resolve(base, identity.str("agency_key", None))
    revocations = _resolve(base, identity.str("revocations", None))
    certificate = _resolve(base, identity.str("certificate", None))
    certificates = [_resolve(base, c) for c in identity.list("certificates", [])]
    identity.finish()

    payment = root.section("payment")
    upi_vpa = payment.str("upi_vpa", "")
    if upi_vpa and ("@" not in upi_vpa or upi_vpa.startswith("@") or upi_vpa.endswith("@")):
        raise payment.error("upi_vpa", f"not a UPI address {upi_vpa!r}", "name@bank, e.g. owner@okaxis")
    payment.finish()

    # Socket-outlet detection (no pilot: plug-in and finish from current draw) and the safety
    # gate's thresholds. The portable core bounds every value; its refusal is reported here
    # with the file and key, before anything starts.
    socket_settings = _bounded_table(root, "socket", SOCKET_KEYS, _check_socket)
    safety_settings = _bounded_table(root, "safety", SAFETY_KEYS, _check_safety)

    # The site's sanctioned load and how its connectors share it (``agent.load``).
    load = None
    if root.has("load"):
        from agent.load.settings import parse_load

        load = parse_load(root.section("load"))

    # The bindings' tables (``agent.bindings``): each parsed by its binding now, so a typo in
    # any of them stops the agent before anything starts. ``extra`` keeps the raw tables for
    # readers of keys shared between bindings.
    extra = {}
    for table in bindings.tables():
        if root.has(table):
            extra[table] = root.section(table).data
    root.finish()
    binding_settings = bindings.parse_tables(extra, path)

    return SiteConfig(
        path=str(path),
        site_id=site_id,
        name=name,
        operator=operator,
        phone=phone,
        email=email,
        opening_hours=opening_hours,
        place=place,
        board_profile=board_profile,
        auth_mode=auth_mode,
        allow_tokens=tuple(allow_tokens),
        max_current_a=max_current_a,
        default_limit_wh=default_limit_wh,
        meter_poll_ms=meter_poll_ms,
        plug_timeout_s=plug_timeout_s,
        meter_timeout_ms=meter_timeout_ms,
        tariff_file=tariff_file,
        journal_path=journal_path,
        key_dir=key_dir,
        agency_key=agency_key,
        revocations=revocations,
        certificate=certificate,
        certificates=certificates,
        upi_vpa=upi_vpa,
        extra=extra,
        bindings=binding_settings,
        socket_settings=socket_settings,
        safety_settings=safety_settings,
        load=load,
    )


def utc_offset_s(timezone: str, epoch_s: float) -> int:
    """The zone's UTC offset at an instant: the portable core takes this number, not the zone."""
    from datetime import datetime
    from datetime import timezone as _tz

    zone = zoneinfo.ZoneInfo(timezone)
    return int(datetime.fromtimestamp(epoch_s, _tz.utc).astimezone(zone).utcoffset().total_seconds())


__all__ = ["ConfigError", "SiteConfig", "Place", "load_config", "utc_offset_s", "DEFAULT_CONFIG_PATH"]
