"""Provisioning controllers at the factory: one folder per unit, from flags or a maker's batch file.

Each unit gets what ``/etc/urja`` holds on the board: its keyring (signing, encryption and the
metering key that signs OCMF readings; private files 0600), the certificate request for the
network's agency (``keys/certificate-request.json``; with ``--agency-dir`` a pilot network's
own agency signs it at once), the agency's public key, the tariff, the configuration rendered
from the maker's template (``tools/data/urja.toml.in`` by default; ``$name`` placeholders, each
one required), the owner's one-time setup code (only its scrypt hash is kept, in the
``[owner_page] access_file``, by ``agent.owner_access``), and a label: text, and a QR code as SVG
and PNG carrying the charger's id and the setup code. The unit's folder is exactly what goes to
the board's ``/etc/urja``; the labels are kept apart (``OUT/labels/SITE_ID.txt|.svg|.png``), so
the setup code in clear never travels to the board.

A batch file is CSV with a header row; ``site_id``, ``name``, ``lat`` and ``lon`` are required,
the other columns (``city``, ``address``, ``board``, ``tariff``, ``upi_vpa``, ``operator``,
``phone``, ``email``, ``timezone``, ``auth``) fall back to the flags. Every row is checked
before any unit is written, and an error names the file, the row and the column. A unit whose
folder already holds a configuration is left as it is (a batch can be run again after a
failure without new keys or a new code for the units already done).
"""
from __future__ import annotations

import csv
import json
import shutil
import string
import time
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

from drivers.configfile import ConfigError
from tools.provision import ensure_agency, ensure_keyring, shipped_tariff

REQUIRED = ("site_id", "name", "lat", "lon")
DEFAULTS = {"city": "", "address": "", "board": "sim", "tariff": "flat", "upi_vpa": "", "operator": "",
            "phone": "", "email": "", "timezone": "Asia/Kolkata", "auth": "network",
            "journal": "/var/lib/urja/journal.sqlite"}
COLUMNS = REQUIRED + tuple(DEFAULTS)
ACCESS_FILE = "owner-access.json"


@dataclass(frozen=True)
class Unit:
    values: dict[str, str]
    where: str  # "FILE row N" or "flags", for errors

    @property
    def site_id(self) -> str:
        return self.values["site_id"]


@dataclass(frozen=True)
class Provisioned:
    site_id: str
    folder: Path
    setup_code: str | None  # None when the unit was already provisioned
    label: Path


def template_text(path: Path | None) -> tuple[str, str]:
    if path is None:
        return (resources.files("tools") / "data" / "urja.toml.in").read_text(), "urja.toml.in"
    try:
        return Path(path).read_text(), str(path)
    except OSError as exc:
        raise ConfigError(str(path), "", f"cannot read the template: {exc.strerror}") from None


def check_unit(values: dict[str, str], where: str, file: str, defaults: dict[str, str] | None = None) -> Unit:
    """One unit's values, each checked; the error names the row and column."""
    for key in REQUIRED:
        if not str(values.get(key) or "").strip():
            raise ConfigError(file, key, f"{where}: missing")
    merged = {**DEFAULTS, **(defaults or {}), **{k: str(v).strip() for k, v in values.items() if v is not None and str(v).strip()}}
    unknown = sorted(set(values) - set(COLUMNS))
    if unknown:
        raise ConfigError(file, unknown[0], f"{where}: unknown column", allowed=", ".join(COLUMNS))
    if not merged["city"]:
        raise ConfigError(file, "city", f"{where}: missing (the agency certifies the charger's city); a column or --city")
    for key, value in merged.items():
        if any(c in value for c in '"\\\n\r'):
            raise ConfigError(file, key, f"{where}: quotes, backslashes and line breaks are not allowed, got {value!r}")
    if any(c.isspace() for c in merged["site_id"]) or len(merged["site_id"]) > 128:
        raise ConfigError(file, "site_id", f"{where}: 1-128 characters without spaces, got {merged['site_id']!r}")
    for key, low, high in (("lat", -90, 90), ("lon", -180, 180)):
        try:
            number = float(merged[key])
        except ValueError:
            raise ConfigError(file, key, f"{where}: not a number {merged[key]!r}") from None
        if not low <= number <= high:
            raise ConfigError(file, key, f"{where}: {number} out of range", allowed=f"{low} to {high}")
    return Unit(merged, where)


def read_batch(path: Path, defaults: dict[str, str] | None = None) -> list[Unit]:
    try:
        with open(path, newline="") as fh:
            rows = list(csv.DictReader(fh))
    except (OSError, csv.Error, UnicodeDecodeError) as exc:
        raise ConfigError(str(path), "", f"cannot read the batch file: {exc}") from None
    if not rows:
        raise ConfigError(str(path), "", "no units (a header row and one row per unit)")
    units = [check_unit(row, f"row {n}", str(path), defaults) for n, row in enumerate(rows, start=2)]
    seen: dict[str, str] = {}
    for unit in units:
        if unit.site_id in seen:
            raise ConfigError(str(path), "site_id", f"{unit.where}: {unit.site_id} already in {seen[unit.site_id]}")
        seen[unit.site_id] = unit.where
    return units


def render(template: str, template_name: str, values: dict[str, str]) -> str:
    try:
        return string.Template(template).substitute(values)
    except KeyError as exc:
        raise ConfigError(template_name, str(exc.args[0]), "placeholder with no value",
                          allowed=", ".join(sorted(values))) from None
    except ValueError as exc:
        raise ConfigError(template_name, "", f"bad placeholder: {exc}") from None


def provision_unit(unit: Unit, out_dir: Path, *, template: str, template_name: str, agency_dir: Path | None,
                   agency_key: Path | None, now_s: float | None = None, rng=None) -> Provisioned:
    """Write one unit's folder (``out_dir/SITE_ID``); see the module docstring."""
    from agent.config import load_config
    from agent.owner_access import create_setup_code
    from protocols.signing.agency import AGENCY_PUB_FILE, certify

    folder = out_dir / unit.site_id
    label = out_dir / "labels" / f"{unit.site_id}.txt"
    if (folder / "urja.toml").exists():
        return Provisioned(unit.site_id, folder, None, label)
    now_s = time.time() if now_s is None else now_s
    values = dict(unit.values)
    folder.mkdir(parents=True, exist_ok=True)
    keyring = ensure_keyring(folder / "keys", site_id=unit.site_id, city=values["city"], lat=float(values["lat"]),
                             lon=float(values["lon"]), now_s=now_s)
    request = keyring.subscription_request()
    (folder / "keys" / "certificate-request.json").write_text(json.dumps(request, indent=2) + "\n")
    if agency_dir is not None:
        agency = ensure_agency(agency_dir)
        cert = certify(request, agency, valid_days=365, now_s=now_s)
        (folder / "keys" / "certificate.json").write_text(json.dumps(cert, indent=2) + "\n")
        agency_key = agency_dir / AGENCY_PUB_FILE
    shutil.copyfile(agency_key, folder / "agency.pub")
    tariff = Path(values["tariff"]) if values["tariff"].endswith(".toml") else shipped_tariff(values["tariff"])
    shutil.copyfile(tariff, folder / "tariff.toml")
    values.update(tariff_file="tariff.toml", agency_key="agency.pub")
    config = folder / "urja.toml"
    config.write_text(render(template, template_name, values))
    try:
        load_config(config)
    except ConfigError:
        config.unlink()  # a unit without a valid configuration is not provisioned: the next run retries it
        raise
    code = create_setup_code(folder / access_file(config), rng=rng)
    write_label(out_dir / "labels", unit.site_id, values["name"], code)
    return Provisioned(unit.site_id, folder, code, label)


def access_file(config: Path) -> str:
    """``[owner_page] access_file`` of the rendered configuration, relative to it (default beside it)."""
    import tomllib

    with open(config, "rb") as fh:
        page = tomllib.load(fh).get("owner_page")
    if page is None:
        return ACCESS_FILE
    from protocols.owner.binding import OwnerPageSettings  # where the page itself looks without the key

    return str(page.get("access_file", OwnerPageSettings.access_file))


def setup_payload(site_id: str, code: str) -> str:
    return f"URJA-SETUP:{site_id}:{code}"


def write_label(folder: Path, site_id: str, name: str, code: str) -> None:
    """SITE_ID.txt for the printer's text lines, SITE_ID.svg and SITE_ID.png with the QR code."""
    import segno

    folder.mkdir(parents=True, exist_ok=True)
    grouped = "-".join(code[i:i + 5] for i in range(0, len(code), 5))
    (folder / f"{site_id}.txt").write_text(f"Urja charger\n{name}\nID: {site_id}\nSetup code: {grouped}\n"
                                      f"Scan or type the setup code on the owner's page to set a password.\n")
    qr = segno.make(setup_payload(site_id, code), error="m")
    qr.save(str(folder / f"{site_id}.svg"), scale=4, border=2)
    qr.save(str(folder / f"{site_id}.png"), scale=4, border=2)
