"""Provision a site in a folder: keys, an agency certificate, a tariff and ``urja.toml``.

Used by ``urja demo`` (everything local, nothing to configure) and by tests, so both run the
same files a site owner would have: real keys on disk with the right modes, a certificate the
agency signed, a TOML configuration the ordinary loader validates.
"""
from __future__ import annotations

import json
import shutil
import time
from pathlib import Path

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"


def ensure_agency(agency_dir: Path):
    from protocols.signing.agency import init_agency, load_agency

    if (agency_dir / "agency.json").exists():
        return load_agency(agency_dir)
    return init_agency(agency_dir, agency_id="demo-agency")


def provision_site(folder: str | Path, *, site_id: str, name: str, lat: float, lon: float,
                   city: str = "Bengaluru", address: str = "", tariff: str = "flat",
                   auth: str = "free_vend", default_limit_wh: int = 0, board: str = "sim",
                   agency_dir: str | Path | None = None, extra_toml: str = "",
                   now_s: float | None = None, upi_vpa: str = "siteowner@okaxis") -> Path:
    """Create (or reuse) everything a charger needs in ``folder``; returns the config path."""
    from protocols.signing.agency import certify
    from protocols.signing.keys import Profile, create_keyring, load_keyring

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    now_s = time.time() if now_s is None else now_s
    agency_dir = Path(agency_dir) if agency_dir else folder / "agency"
    agency = ensure_agency(agency_dir)
    key_dir = folder / "keys"
    if (key_dir / "keyring.json").exists():
        keyring = load_keyring(key_dir)
    else:
        keyring = create_keyring(key_dir, subscriber_id=site_id, valid_days=365, now_s=now_s,
                                 profile=Profile(city=city, country="IND", gps=f"{lat:.6f},{lon:.6f}"))
    cert_path = key_dir / "certificate.json"
    if not cert_path.exists():
        cert = certify(keyring.subscription_request(), agency, valid_days=365, now_s=now_s)
        cert_path.write_text(json.dumps(cert, indent=2) + "\n")
    tariff_src = Path(tariff) if tariff.endswith((".toml", ".json")) else EXAMPLES / "tariffs" / f"{tariff}.toml"
    tariff_dst = folder / f"tariff{tariff_src.suffix}"
    shutil.copyfile(tariff_src, tariff_dst)
    config = folder / "urja.toml"
    config.write_text(f"""# Written by urja's provisioning for a local simulated site.
[site]
id = "{site_id}"
name = "{name}"
operator = "Site owner"
phone = "+91-80-0000-0000"
email = "owner@example.in"

[site.place]
lat = {lat}
lon = {lon}
address = "{address}"
city = "{city}"
country = "IND"
timezone = "Asia/Kolkata"

[board]
profile = "{board}"

[charging]
auth = "{auth}"
allow_tokens = ["DEMO-RFID-0001"]
default_limit_wh = {default_limit_wh}

[tariff]
file = "{tariff_dst.name}"

[journal]
path = "journal.sqlite"

[identity]
key_dir = "keys"
agency_key = "{(agency_dir / 'agency.pub').resolve()}"

[payment]
upi_vpa = "{upi_vpa}"
{extra_toml}""")
    return config
