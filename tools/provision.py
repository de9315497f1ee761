"""Provision a site in a folder: keys, an agency certificate, a tariff and ``urja.toml``.

Used by ``urja demo`` (everything local, nothing to configure) and by tests, so both run the
same files a site owner would have: real keys on disk with the right modes, a certificate the
agency signed, a TOML configuration the ordinary loader validates. ``provision_app`` does the
same for an app (a buyer node): its key, the agency's BAP certificate and the ``[network]`` /
``[node]`` file that ``urja discover`` and ``urja charge`` read.
"""
from __future__ import annotations

import json
import shutil
import time
from importlib import resources
from pathlib import Path


def shipped_tariff(name: str) -> Path:
    """A tariff that ships inside the package (``agent/data/tariffs/``).

    Read from the installed package rather than from ``examples/`` beside a checkout, so a
    site can be provisioned from a plain wheel install; ``examples/tariffs/`` holds the same
    files as documentation, and a test keeps the two identical.
    """
    return Path(str(resources.files("agent") / "data" / "tariffs" / f"{name}.toml"))


def ensure_agency(agency_dir: Path):
    from protocols.signing.agency import init_agency, load_agency

    if (agency_dir / "agency.json").exists():
        return load_agency(agency_dir)
    return init_agency(agency_dir, agency_id="demo-agency")


def ensure_keyring(key_dir: Path, *, site_id: str, city: str, lat: float, lon: float, now_s: float,
                   valid_days: int = 365):
    """The charger's keyring (signing, encryption and metering keys), created once and then reused."""
    from protocols.signing.keys import Profile, create_keyring, load_keyring

    if (key_dir / "keyring.json").exists():
        return load_keyring(key_dir)
    return create_keyring(key_dir, subscriber_id=site_id, valid_days=valid_days, now_s=now_s,
                          profile=Profile(city=city, country="IND", gps=f"{lat:.6f},{lon:.6f}"))


def provision_site(folder: str | Path, *, site_id: str, name: str, lat: float, lon: float,
                   city: str = "Bengaluru", address: str = "", tariff: str = "flat",
                   auth: str = "free_vend", default_limit_wh: int = 0, board: str = "sim",
                   agency_dir: str | Path | None = None, extra_toml: str = "",
                   now_s: float | None = None, upi_vpa: str = "siteowner@okaxis",
                   broker_url: str | None = None, profile: str = "beckn-2.0") -> Path:
    """Create (or reuse) everything a charger needs in ``folder``; returns the config path.

    With ``broker_url`` the configuration gets a ``[network]`` table, so the runtime joins the
    MQTT network on that broker when it starts, speaking ``profile`` (Beckn 2.0 for a new site).
    """
    from protocols.signing.agency import certify

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    now_s = time.time() if now_s is None else now_s
    agency_dir = Path(agency_dir) if agency_dir else folder / "agency"
    agency = ensure_agency(agency_dir)
    key_dir = folder / "keys"
    keyring = ensure_keyring(key_dir, site_id=site_id, city=city, lat=lat, lon=lon, now_s=now_s)
    cert_path = key_dir / "certificate.json"
    if not cert_path.exists():
        cert = certify(keyring.subscription_request(), agency, valid_days=365, now_s=now_s)
        cert_path.write_text(json.dumps(cert, indent=2) + "\n")
    tariff_src = Path(tariff) if tariff.endswith((".toml", ".json")) else shipped_tariff(tariff)
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
{_network_table(broker_url, profile=profile)}{extra_toml}""")
    return config


def _network_table(broker_url: str | None, agency_pub: Path | None = None, *, profile: str = "beckn-2.0") -> str:
    if broker_url is None:
        return ""
    text = f'\n[network]\nbrokers = ["{broker_url}"]\nprofile = "{profile}"\n'
    if agency_pub is not None:
        text += f'agency_public_key = "{Path(agency_pub).resolve()}"\n'
    return text


class AppFiles:
    """Where ``provision_app`` put an app's files."""

    def __init__(self, *, subscriber_id: str, config: Path, key_dir: Path, certificate: Path):
        self.subscriber_id = subscriber_id
        self.config = config
        self.key_dir = key_dir
        self.certificate = certificate

    def __repr__(self) -> str:
        return f"AppFiles({self.subscriber_id!r}, {str(self.config)!r})"


def provision_app(folder: str | Path, *, subscriber_id: str, agency_dir: str | Path, broker_url: str,
                  now_s: float | None = None, valid_days: int = 30, profile: str = "beckn-2.0") -> AppFiles:
    """Create (or reuse) an app's keyring, its BAP certificate from the agency, and ``app.toml``.

    The app's certificate is what lets a charger answer it: chargers sell only to buyers whose
    key the network's agency vouches for.
    """
    from protocols.signing.agency import AGENCY_PUB_FILE, certify
    from protocols.signing.keys import Profile, create_keyring, load_keyring

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    now_s = time.time() if now_s is None else now_s
    agency = ensure_agency(Path(agency_dir))
    key_dir = folder / "keys"
    if (key_dir / "keyring.json").exists():
        keyring = load_keyring(key_dir)
    else:
        keyring = create_keyring(key_dir, subscriber_id=subscriber_id, valid_days=valid_days, now_s=now_s,
                                 profile=Profile(type="BAP"))
    cert_path = folder / "certificate.json"
    if not cert_path.exists():
        request = dict(keyring.subscription_request(), type="BAP")
        request.pop("metering_public_key", None)
        cert = certify(request, agency, valid_days=valid_days, now_s=now_s, kind="BAP")
        cert_path.write_text(json.dumps(cert, indent=2) + "\n")
    config = folder / "app.toml"
    config.write_text(f"""# Written by urja's provisioning: an app on the local demo network.
{_network_table(broker_url, Path(agency_dir) / AGENCY_PUB_FILE, profile=profile).lstrip()}
[node]
subscriber_id = "{keyring.subscriber_id}"
key_dir = "keys"
certificate = "certificate.json"
""")
    return AppFiles(subscriber_id=keyring.subscriber_id, config=config, key_dir=key_dir, certificate=cert_path)
