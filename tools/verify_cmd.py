"""``urja verify FILE``: check a receipt, offer, certificate, revocation list, OCMF document or
signed message offline, and say in one line why it is (or is not) trustworthy.

What is trusted comes from the command line or the ``[identity]`` table of ``urja.toml``:
the charger's own key directory (``key_dir``), the agency public key (``agency_key``),
charger certificates (``certificates``) and a signed revocation list (``revocations``).
Relative paths are taken from the directory of ``urja.toml``.
"""
from __future__ import annotations

import sys
import time
from pathlib import Path

from protocols.errors import ProtocolError


def register(subparsers) -> None:
    p = subparsers.add_parser("verify", help="verify a signed receipt, offer, certificate, OCMF or message offline")
    p.add_argument("file", help="file to check")
    p.add_argument("--agency-key", help="agency public key (agency.pub or agency.json)")
    p.add_argument("--cert", action="append", default=[], help="charger certificate to trust (repeatable)")
    p.add_argument("--revocations", help="agency revocation list (revocations.json)")
    p.add_argument("--key-dir", help="trust this local keyring's public keys")
    p.add_argument("--config", help="read key_dir, agency_key, certificates, revocations from [identity] of urja.toml")
    p.add_argument("--at", help="check as of this ISO 8601 time instead of now (old messages)")
    p.add_argument("--max-bytes", type=int, default=64 * 1024, help="largest document accepted (default 65536)")
    p.set_defaults(func=handle)


def _signing_config(path: str) -> dict:
    from drivers.configfile import Section, load_toml

    data = load_toml(path)
    root = Section(data, path)
    sec = root.section("identity")
    base = Path(path).parent
    out = {
        "agency_key": sec.str("agency_key", None),
        "key_dir": sec.str("key_dir", None),
        "revocations": sec.str("revocations", None),
        "certificates": sec.list("certificates", []),
    }
    sec.finish()
    for name, value in out.items():
        if name == "certificates":
            if not all(isinstance(c, str) for c in value):
                raise sec.error("certificates", "must be an array of file names")
            out[name] = [str(base / c) for c in value]
        elif value is not None:
            out[name] = str(base / value)
    return out


class _Refused(Exception):
    pass


def handle(args, *, clock=time.time) -> int:
    try:
        summary = _check(args, clock)
    except (ProtocolError, _Refused) as exc:
        print(f"urja verify: {args.file}: INVALID: {exc}", file=sys.stderr)
        return 1
    print(f"{args.file}: VALID: {summary}")
    return 0


def _check(args, clock) -> str:
    from protocols.signing._codec import parse_time
    from protocols.signing.agency import read_agency_public_key
    from protocols.signing.detached import load_json

    cfg = _signing_config(args.config) if args.config else {}
    agency_key_path = args.agency_key or cfg.get("agency_key")
    revocations_path = args.revocations or cfg.get("revocations")
    key_dir = args.key_dir or cfg.get("key_dir")
    cert_paths = list(args.cert) + list(cfg.get("certificates") or [])
    now_s = parse_time(args.at, field="--at") if args.at else clock()

    def read(path: str, limit: int) -> bytes:
        try:
            with open(path, "rb") as fh:
                data = fh.read(limit + 1)
        except OSError as exc:
            raise _Refused(f"{path}: {exc.strerror or exc}") from None
        if len(data) > limit:
            raise _Refused(f"{path}: larger than {limit} bytes")
        return data

    agency_key = read_agency_public_key(agency_key_path) if agency_key_path else None
    revocations = load_json(read(revocations_path, 16 * 1024 * 1024), max_bytes=16 * 1024 * 1024) if revocations_path else None
    certs = [load_json(read(p, args.max_bytes), max_bytes=args.max_bytes) for p in cert_paths]
    data = read(args.file, args.max_bytes + 8 * 1024)

    if data.startswith(b"OCMF|"):
        return _check_ocmf(data, certs, key_dir, agency_key, revocations, now_s)
    first_line = data.split(b"\n", 1)[0].lower()
    if first_line.startswith(b"authorization:") or first_line.startswith(b"x-gateway-authorization:"):
        return _check_message(data, certs, key_dir, agency_key, revocations, now_s, args.max_bytes)
    doc = load_json(data, max_bytes=args.max_bytes)
    if not isinstance(doc, dict):
        raise _Refused("not a signed JSON object")
    return _check_document(doc, certs, key_dir, agency_key, revocations, now_s)


def _need_agency(agency_key, what: str) -> bytes:
    if agency_key is None:
        raise _Refused(f"checking {what} needs the agency public key (--agency-key or [identity] agency_key)")
    return agency_key


def _trusted_keys(certs, key_dir, agency_key, revocations, now_s):
    """(subscriber_id, key_id) -> (PublicKeyRecord, metering key hex or None)."""
    from protocols.signing.agency import verify_certificate
    from protocols.signing.keys import load_keyring

    keys = {}
    for cert in certs:
        checked = verify_certificate(cert, _need_agency(agency_key, "a certificate"), revocations, now_s=now_s)
        keys[(checked.key.subscriber_id, checked.key.key_id)] = (checked.key, checked.metering_public_key_hex)
    if key_dir:
        keyring = load_keyring(key_dir)
        for entry, record in zip(keyring.entries, keyring.public_records(), strict=True):
            keys[(record.subscriber_id, record.key_id)] = (record, entry.metering_public_key_hex)
    return keys


def _check_message(data, certs, key_dir, agency_key, revocations, now_s, max_bytes) -> str:
    import asyncio

    from protocols.signing.beckn import Verifier, parse_frame
    from protocols.signing.keys import StaticKeyLookup

    frame = parse_frame(data, max_bytes=max_bytes + 8 * 1024)
    keys = _trusted_keys(certs, key_dir, agency_key, revocations, now_s)
    if not keys:
        raise _Refused("no keys to check against (give --cert with --agency-key, or --key-dir)")
    verifier = Verifier(lookup=StaticKeyLookup(r for r, _ in keys.values()), clock=lambda: now_s, max_body_bytes=max_bytes)
    result = asyncio.run(verifier.verify_message(frame.body, frame.authorization, frame.gateway_authorization))
    via = f", forwarded by {result.gateway.subscriber_id}" if result.gateway else ""
    return (f"signed message from {result.sender.subscriber_id} (key {result.sender.key_id}), "
            f"{len(frame.body)} bytes{via}")


def _check_ocmf(data, certs, key_dir, agency_key, revocations, now_s) -> str:
    from protocols.signing.errors import SignatureError
    from protocols.signing.ocmf import verify_ocmf

    keys = _trusted_keys(certs, key_dir, agency_key, revocations, now_s)
    metering = [m for _, m in keys.values() if m]
    if not metering:
        raise _Refused("no metering key to check against (give --cert with --agency-key, or --key-dir)")
    text = data.decode("utf-8", errors="strict").strip()
    last = None
    for hex_key in metering:
        try:
            doc = verify_ocmf(text, hex_key)
        except SignatureError as exc:
            if exc.reason != "signature-invalid":
                raise
            last = exc
            continue
        values = ", ".join(f"{r.tx or '-'} {r.value_wh} Wh" for r in doc.readings)
        return f"OCMF from meter {doc.meter_serial} ({doc.pagination}): {values}"
    raise last


def _check_document(doc, certs, key_dir, agency_key, revocations, now_s) -> str:
    from protocols.signing.agency import REVOCATIONS_KIND, verify_certificate, verify_revocations
    from protocols.signing.detached import signature_key_id, verify_object
    from protocols.signing.receipt import RECEIPT_KIND, verify_receipt

    kind = doc.get("kind")
    if kind == RECEIPT_KIND:
        check = verify_receipt(doc, agency_public_key=_need_agency(agency_key, "a receipt"), revocations=revocations)
        ocmf = "OCMF verified" if check.ocmf_verified else "no OCMF data"
        priced = (f"priced from {len(doc['charging_periods'])} charging period(s) of the same energy"
                  if "charging_periods" in doc else "no charging periods stated")
        return (f"receipt {check.receipt_id} from {check.subscriber_id}: {check.energy_wh} Wh, {priced}, "
                f"total {check.total_paise} paise {check.currency}, refund due {check.refund_due_paise} paise, "
                f"balance due {check.balance_due_paise} paise, "
                f"{ocmf}; certificate chain charger -> agency ok")
    if kind == REVOCATIONS_KIND:
        revoked = verify_revocations(doc, _need_agency(agency_key, "a revocation list"))
        return f"revocation list sequence {doc['sequence']} issued {doc['issued_at']}, {len(revoked)} revoked"
    if "unique_key_id" in doc and "signing_public_key" in doc:
        cert = verify_certificate(doc, _need_agency(agency_key, "a certificate"), revocations, now_s=now_s)
        return (f"certificate for {cert.key.subscriber_id} key {cert.key.key_id}, "
                f"valid until {doc['valid_until']}, signed by agency {cert.agency_key_id[0]}")
    sid, kid = signature_key_id(doc)
    keys = _trusted_keys(certs, key_dir, agency_key, revocations, now_s)
    embedded = doc.get("charger", {}).get("certificate") if isinstance(doc.get("charger"), dict) else None
    if embedded is not None:
        keys.update(_trusted_keys([embedded], None, agency_key, revocations, now_s))
    if (sid, kid) not in keys:
        raise _Refused(f"signed by {sid}|{kid}, which no given certificate or keyring vouches for")
    record, _ = keys[(sid, kid)]
    verify_object(doc, record.signing_public_key, expected_key_id=(sid, kid))
    label = kind or "signed document"
    return f"{label} signed by {sid} (key {kid})"
