"""``urja agency``: the nodal agency's side: its key, certificates, revocations.

Run by the network's agency (or, in a pilot, by the site owner acting as one), not on the
charger; it lives here so a whole network can be stood up with one tool.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from protocols.errors import ProtocolError


def register(subparsers) -> None:
    p = subparsers.add_parser("agency", help="nodal agency: init key, certify chargers and apps, revoke")
    sub = p.add_subparsers(dest="agency_command", metavar="ACTION")
    sub.required = True
    init = sub.add_parser("init", help="create the agency's signing key")
    init.add_argument("--dir", required=True, help="agency directory (created 0700)")
    init.add_argument("--agency-id", default="agency", help="identifier of the agency (default 'agency')")
    init.set_defaults(func=handle_init)
    cert = sub.add_parser("certify", help="sign a charger's (or an app's) subscription-request.json")
    cert.add_argument("request", help="subscription-request.json written by `urja keygen`")
    cert.add_argument("--dir", required=True, help="agency directory")
    cert.add_argument("--valid-days", type=int, default=365, help="certificate validity in days (default 365)")
    cert.add_argument("-o", "--output", help="write the certificate here (default: stdout)")
    cert.add_argument("--city", help="set or correct the charger's city code in the record")
    cert.add_argument("--gps", help="set or correct the charger's 'lat,lon' in the record")
    cert.add_argument("--type", choices=("BPP", "BAP"), default="BPP", dest="kind",
                      help="certify the key as a charger (BPP, default) or as an app or gateway (BAP); "
                           "sets the record's type")
    cert.set_defaults(func=handle_certify)
    rev = sub.add_parser("revoke", help="add a subscriber id or key id to the signed revocation list")
    rev.add_argument("id", help="subscriber id or unique key id to revoke")
    rev.add_argument("--dir", required=True, help="agency directory")
    rev.set_defaults(func=handle_revoke)


def _fail(exc: Exception) -> int:
    print(f"urja agency: {exc}", file=sys.stderr)
    return 1


def handle_init(args, *, clock=time.time) -> int:
    from protocols.signing.agency import AGENCY_PUB_FILE, init_agency

    try:
        agency = init_agency(args.dir, agency_id=args.agency_id)
    except ProtocolError as exc:
        return _fail(exc)
    print(f"agency {agency.agency_id} key {agency.key_id}")
    print(f"public key (give this to every node): {Path(args.dir) / AGENCY_PUB_FILE}")
    return 0


def handle_certify(args, *, clock=time.time) -> int:
    from protocols.signing.agency import certify, load_agency
    from protocols.signing.detached import load_json

    request = None
    try:
        try:
            raw = Path(args.request).read_bytes()
        except OSError as exc:
            print(f"urja agency: {args.request}: {exc.strerror or exc}", file=sys.stderr)
            return 1
        agency = load_agency(args.dir)
        request = load_json(raw)
        kind = getattr(args, "kind", "BPP")
        if isinstance(request, dict):
            request.update({k: v for k, v in (("city", args.city), ("gps", args.gps)) if v is not None})
            if kind == "BAP" or "type" not in request:
                request["type"] = kind  # `urja keygen` writes BPP; the agency decides what it certifies
            if kind == "BAP":
                request.pop("metering_public_key", None)  # `urja keygen` makes one; an app has no meter
        cert = certify(request, agency, valid_days=args.valid_days, now_s=clock(), kind=kind)
    except ProtocolError as exc:
        hint = ""
        if getattr(exc, "reason", None) == "wrong-type" and isinstance(request, dict) \
                and request.get("type") in ("BAP", "BPP"):
            hint = f" (to certify it as a {request['type']}, add --type {request['type']})"
        return _fail(f"{args.request}: {exc}{hint}")
    text = json.dumps(cert, indent=2) + "\n"
    if args.output:
        Path(args.output).write_text(text, encoding="utf-8")
        print(f"certified {cert['subscriber_id']} ({cert['type']}) key {cert['unique_key_id']} "
              f"until {cert['valid_until']}: {args.output}")
    else:
        sys.stdout.write(text)
    return 0


def handle_revoke(args, *, clock=time.time) -> int:
    from protocols.signing.agency import REVOCATIONS_FILE, load_agency, revoke

    try:
        agency = load_agency(args.dir)
        doc, changed = revoke(agency, args.id, now_s=clock())
    except ProtocolError as exc:
        return _fail(exc)
    state = "revoked" if changed else "already revoked"
    print(f"{state}: {args.id} (list sequence {doc['sequence']}, {Path(args.dir) / REVOCATIONS_FILE})")
    return 0
