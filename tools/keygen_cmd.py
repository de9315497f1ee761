"""``urja keygen``: create the charger's keys, or rotate them.

Prints key ids, windows and public keys only; private key material is never printed.
"""
from __future__ import annotations

import sys
import time

from protocols.errors import ProtocolError


def register(subparsers) -> None:
    p = subparsers.add_parser("keygen", help="create or rotate the charger's signing, encryption and metering keys")
    p.add_argument("--key-dir", required=True, help="directory for the keyring (created 0700)")
    p.add_argument("--subscriber-id", help="network subscriber id of this charger (required when creating)")
    p.add_argument("--valid-days", type=int, default=365, help="validity of the new key in days (default 365)")
    p.add_argument("--rotate", action="store_true", help="add a new key to an existing keyring")
    p.add_argument("--old-valid-until", help="with --rotate: ISO 8601 time until which older keys stay valid")
    p.add_argument("--domain", default=None, help="network domain for the registry record")
    p.add_argument("--city", default="", help="city code for the registry record, e.g. std:080")
    p.add_argument("--country", default="IND", help="country code (default IND)")
    p.add_argument("--gps", default="", help="'lat,lon' of the charger")
    p.set_defaults(func=handle)


def handle(args, *, clock=time.time) -> int:
    from protocols.signing._codec import b64encode, format_time, parse_time
    from protocols.signing.keys import DEFAULT_DOMAIN, REQUEST_FILE, Profile, create_keyring, rotate_keyring

    now_s = clock()
    try:
        if args.rotate:
            if not args.old_valid_until:
                print("urja keygen: --rotate needs --old-valid-until ISO8601", file=sys.stderr)
                return 2
            until_s = parse_time(args.old_valid_until, field="--old-valid-until")
            keyring = rotate_keyring(args.key_dir, valid_days=args.valid_days, old_valid_until_s=until_s, now_s=now_s)
            if args.subscriber_id and args.subscriber_id != keyring.subscriber_id:
                print(f"urja keygen: warning: keyring belongs to {keyring.subscriber_id!r}", file=sys.stderr)
        else:
            if not args.subscriber_id:
                print("urja keygen: --subscriber-id is required to create a keyring", file=sys.stderr)
                return 2
            if args.old_valid_until:
                print("urja keygen: --old-valid-until only makes sense with --rotate", file=sys.stderr)
                return 2
            profile = Profile(domain=args.domain or DEFAULT_DOMAIN, city=args.city, country=args.country, gps=args.gps)
            keyring = create_keyring(
                args.key_dir, subscriber_id=args.subscriber_id, valid_days=args.valid_days, now_s=now_s, profile=profile
            )
    except ProtocolError as exc:
        print(f"urja keygen: {exc}", file=sys.stderr)
        return 1
    print(f"keyring {keyring.key_dir} for {keyring.subscriber_id}")
    newest = keyring.current(now_s).key_id
    for e in keyring.entries:
        mark = "  (signing)" if e.key_id == newest else ""
        print(f"  key {e.key_id}  valid {format_time(e.valid_from_s)} .. {format_time(e.valid_until_s)}{mark}")
        print(f"    signing_public_key {b64encode(e.signing_public_key)}")
    print(f"subscription request for the agency: {keyring.key_dir / REQUEST_FILE}")
    return 0
