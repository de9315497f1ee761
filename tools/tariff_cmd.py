"""``urja tariff``: check a tariff file, show it in words with example costs, re-price a CDR."""
from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

from drivers.configfile import ConfigError

# Example charges shown by ``show``: (label, local date-time, energy_wh, power_w, idle_s).
_EXAMPLES = (
    ("10 kWh evening charge at 7.4 kW", (2026, 1, 5, 18, 30), 10000, 7400, 0),
    ("10 kWh night charge at 7.4 kW", (2026, 1, 5, 23, 0), 10000, 7400, 0),
    ("3 kWh light-EV charge at 3.3 kW", (2026, 1, 5, 10, 0), 3000, 3300, 0),
    ("10 kWh at 7.4 kW, then 30 min idle", (2026, 1, 5, 14, 0), 10000, 7400, 1800),
)


def register(subparsers) -> None:
    parser = subparsers.add_parser("tariff", help="check, show and apply tariffs")
    sub = parser.add_subparsers(dest="tariff_command", metavar="ACTION")
    sub.required = True
    check = sub.add_parser("check", help="validate a tariff file (.toml or OCPI .json)")
    check.add_argument("file")
    check.set_defaults(func=_check)
    show = sub.add_parser("show", help="the tariff in words with example costs")
    show.add_argument("file")
    show.add_argument("--tz", default="Asia/Kolkata", help="site time zone (default Asia/Kolkata)")
    show.set_defaults(func=_show)
    price = sub.add_parser("price", help="recompute an OCPI CDR's costs from a Tariff")
    price.add_argument("tariff")
    price.add_argument("cdr")
    price.add_argument("--tz", default="UTC", help="site time zone (default UTC)")
    price.add_argument("--reservation", choices=("auto", "expired", "used"), default="auto",
                       help="how the CDR's reservation ended: auto (default) takes a CDR with "
                            "only RESERVATION_TIME as expired; 'used' also covers a cancelled one")
    price.set_defaults(func=_price)


def _load(path: str):
    from agent.core.tariff import Tariff
    from agent.tariff_file import load_tariff_file

    data = load_tariff_file(path)
    return data, Tariff(data)


def _check(args) -> int:
    data, tariff = _load(args.file)
    dims = sorted({d for _, by_dim in tariff.elements for d in by_dim})
    print(f"{args.file}: valid tariff {data.get('id', '')!r}, {tariff.currency}, "
          f"{len(tariff.elements)} element(s), prices {', '.join(dims)}")
    return 0


def _money(value_u: int, currency: str) -> str:
    from agent.core.tariff import format_fixed

    text = format_fixed(value_u, 4).rstrip("0")
    if text.endswith("."):
        text += "00"
    elif len(text.split(".")[1]) < 2:
        text += "0"
    return f"{currency} {text}"


def _describe(tariff) -> list[str]:
    from agent.core.tariff import DAYS, format_fixed

    unit = {"ENERGY": "per kWh", "TIME": "per hour charging", "PARKING_TIME": "per hour idle",
            "FLAT": "per session"}
    step_unit = {"ENERGY": "Wh", "TIME": "s", "PARKING_TIME": "s"}
    lines = []
    reserved = {"TIME": "per hour reserved", "FLAT": "per reservation"}
    for i, (restrictions, by_dim) in enumerate(tariff.elements, 1):
        parts = []
        units = reserved if restrictions is not None and restrictions.reservation else unit
        for dim in ("FLAT", "ENERGY", "TIME", "PARKING_TIME"):
            comp = by_dim.get(dim)
            if comp is None:
                continue
            text = f"{_money(comp.price_u, tariff.currency)} {units[dim]}"
            if dim != "FLAT" and comp.step_size > 1:
                text += f" (billed per {comp.step_size} {step_unit[dim]})"
            if comp.vat_e4 is not None:
                text += f" + {format_fixed(comp.vat_e4, 4).rstrip('0').rstrip('.')} % tax"
            parts.append(text)
        when = []
        r = restrictions
        if r is not None:
            if r.start_sod is not None or r.end_sod is not None:
                start = r.start_sod or 0
                end = r.end_sod or 0
                when.append(f"from {start // 3600:02d}:{start % 3600 // 60:02d} "
                            f"to {end // 3600:02d}:{end % 3600 // 60:02d}")
            if r.days is not None:
                when.append("on " + ", ".join(d.title() for k, d in enumerate(DAYS)
                                              if r.days >> k & 1))
            for name, label, scale, unit_name in (
                    ("min_wh", "from", 1000, "kWh"), ("max_wh", "below", 1000, "kWh"),
                    ("min_current_ma", "at or above", 1000, "A"),
                    ("max_current_ma", "below", 1000, "A"),
                    ("min_power_w", "at or above", 1000, "kW"),
                    ("max_power_w", "below", 1000, "kW"),
                    ("min_duration_s", "after", 60, "min"), ("max_duration_s", "for the first", 60,
                                                              "min")):
                value = getattr(r, name)
                if value is not None:
                    when.append(f"{label} {value / scale:g} {unit_name}")
            if r.start_day is not None or r.end_day is not None:
                when.append("within a date range")
            if r.reservation == "RESERVATION":
                when.append("for a reservation")
            elif r.reservation is not None:
                when.append("for a reservation that expires unused")
        lines.append(f"  {i}. {'; '.join(parts)}" + (f" -- {', '.join(when)}" if when else
                                                      " -- at any time"))
    return lines


def _show(args) -> int:
    from zoneinfo import ZoneInfo

    from agent.core.offers import quote_energy
    from agent.tariff_file import zone_offset

    data, tariff = _load(args.file)
    offset = zone_offset(args.tz)
    print(f"Tariff {data.get('id', '')!r} in {tariff.currency} (times are local, {args.tz})")
    if tariff.min_excl_u is not None:
        print(f"  minimum per session: {_money(tariff.min_excl_u, tariff.currency)} before tax")
    if tariff.max_excl_u is not None:
        print(f"  maximum per session: {_money(tariff.max_excl_u, tariff.currency)} before tax")
    print("For each kind of charge the first line that applies is used:")
    for line in _describe(tariff):
        print(line)
    print("Examples (Monday 5 January 2026):")
    zone = ZoneInfo(args.tz)
    for label, (y, mo, d, h, mi), energy_wh, power_w, idle_s in _EXAMPLES:
        start_s = int(datetime(y, mo, d, h, mi, tzinfo=zone).timestamp())
        cost = quote_energy(tariff, energy_wh, start_s, power_w, offset, park_s=idle_s)
        print(f"  {label} from {h:02d}:{mi:02d}: {tariff.currency} {cost.paid_text()} "
              f"({_money(cost.total_excl_u, tariff.currency)} + tax "
              f"{_money(cost.total_vat_u, tariff.currency)})")
    return 0


def _price(args) -> int:
    from agent.core.tariff import TariffError, price_periods
    from agent.tariff_file import periods_from_cdr, zone_offset

    _, tariff = _load(args.tariff)
    path = Path(args.cdr)
    try:
        cdr = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(path, "", "file not found") from None
    except (OSError, ValueError) as exc:
        raise ConfigError(path, "", f"not a readable JSON file: {exc}") from None
    if isinstance(cdr, dict) and "data" in cdr and "charging_periods" not in cdr:
        cdr = cdr["data"]
    periods = periods_from_cdr(cdr, path)
    expired = {"auto": None, "expired": True, "used": False}[args.reservation]
    try:
        cost = price_periods(tariff, periods, zone_offset(args.tz), reservation_expired=expired)
    except TariffError as exc:
        raise ConfigError(path, exc.field, exc.problem, allowed=exc.allowed) from None
    out = cost.to_ocpi()
    out["currency"] = tariff.currency
    if cost.reservation_expired is not None:
        # Not an OCPI field: says which reservation elements priced the reservation.
        out["reservation_expired"] = cost.reservation_expired
    print(json.dumps(out, indent=2, sort_keys=True))
    return 0

