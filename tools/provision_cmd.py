"""``urja provision``: a folder per controller with keys, certificate request, config, setup code and label."""
from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser("provision", help="factory provisioning: keys, agency certificate request, metering key, "
                                                "owner's setup code, config from a template and a QR label, per unit")
    p.add_argument("--out", required=True, metavar="DIR", help="one folder per unit is written here (DIR/SITE_ID)")
    p.add_argument("--batch", metavar="CSV", help="the maker's batch file: a header row, one row per unit "
                                                  "(site_id, name, lat, lon required)")
    p.add_argument("--site-id", help="a single unit: its network id")
    p.add_argument("--name", help="a single unit: the charger's name")
    p.add_argument("--lat", help="a single unit: latitude")
    p.add_argument("--lon", help="a single unit: longitude")
    p.add_argument("--city", default="", help="the city, unless the batch file says (the agency certifies it)")
    p.add_argument("--template", metavar="FILE", help="configuration template ($name placeholders; default: the "
                                                       "shipped urja.toml.in)")
    p.add_argument("--board", default="sim", help="board profile name or path, unless the batch file says (default sim)")
    p.add_argument("--tariff", default="flat", help="shipped tariff name or a .toml file, unless the batch file says")
    p.add_argument("--auth", default="network", choices=["network", "free_vend", "allow_list"])
    agency = p.add_mutually_exclusive_group(required=True)
    agency.add_argument("--agency-key", metavar="FILE", help="the network agency's public key (agency.pub); the "
                                                               "units' certificate requests go to the agency")
    agency.add_argument("--agency-dir", metavar="DIR", help="a pilot network's own agency: certify each unit now")
    p.set_defaults(func=handler)


def handler(args: argparse.Namespace) -> int:
    from drivers.configfile import ConfigError
    from tools.unit_provision import check_unit, provision_unit, read_batch, template_text

    flags = {"board": args.board, "tariff": args.tariff, "auth": args.auth, "city": args.city}
    if args.batch:  # a row's own columns win; the flags fill what it leaves empty
        units = read_batch(Path(args.batch), flags)
    else:
        single = {"site_id": args.site_id, "name": args.name, "lat": args.lat, "lon": args.lon}
        units = [check_unit(single, "flags", "command line", flags)]
    template, template_name = template_text(Path(args.template) if args.template else None)
    agency_key = Path(args.agency_key) if args.agency_key else None
    if agency_key is not None and not agency_key.is_file():
        raise ConfigError(str(agency_key), "", "no such agency key file")
    for unit in units:
        done = provision_unit(unit, Path(args.out), template=template, template_name=template_name,
                              agency_dir=Path(args.agency_dir) if args.agency_dir else None, agency_key=agency_key)
        if done.setup_code is None:
            print(f"{done.site_id}: already provisioned in {done.folder}, left as it is")
        else:
            print(f"{done.site_id}: {done.folder} (for /etc/urja); label {done.label.with_suffix('')}.txt|.svg|.png")
    return 0

