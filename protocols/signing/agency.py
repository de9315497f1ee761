"""Certificates from the network's nodal agency, verifiable offline.

A certificate is the charger's registry subscription record (subscriber id, key id, public
keys, type, domain, place, validity, status) with a detached Ed25519 signature by the agency
over its canonical JSON (see ``detached.py``). A node holding only the agency's public key can
then trust a charger it has never seen, with no registry round trip: charger -> agency.
Apps and gateways (type BAP) get the same kind of certificate for their signing key, so a
charger can in turn tell a certified buyer from an anonymous one.

The agency also signs a revocation list (``revocations.json``) with a sequence number that
only grows, so a node can refuse an older list replayed at it.

Certificates additionally carry ``metering_public_key`` (the charger's OCMF key), which puts
the signed meter readings under the same chain of trust as the messages.
"""
from __future__ import annotations

import json
import re
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519

from protocols.signing._codec import b64decode, b64encode, format_time, parse_time
from protocols.signing.detached import load_json, sign_object, verify_object
from protocols.signing.errors import KeyringError, SignatureError
from protocols.signing.keys import (
    Ed25519Signer,
    PublicKeyRecord,
    _load_format_doc,
    _load_private,
    _write_private,
    _write_public,
    read_file,
)
from protocols.signing.ocmf import load_metering_public_key

AGENCY_FILE = "agency.json"
AGENCY_KEY_FILE = "agency.signing.pem"
AGENCY_PUB_FILE = "agency.pub"
REVOCATIONS_FILE = "revocations.json"
REVOCATIONS_KIND = "urja.revocations"
AGENCY_FORMAT = "urja-agency/1"
GPS_RE = re.compile(
    r"^[-+]?([1-8]?\d(\.\d+)?|90(\.0+)?),\s*[-+]?(180(\.0+)?|((1[0-7]\d)|([1-9]?\d))(\.\d+)?)$"
)
_CERT_STRINGS = (
    "subscriber_id", "unique_key_id", "signing_public_key", "encr_public_key", "type",
    "domain", "city", "country", "gps", "valid_from", "valid_until", "status",
)


# --------------------------------------------------------------------------- the agency side


class Agency:
    """The nodal agency's signing identity."""

    def __init__(self, *, agency_id: str, key_id: str, private_key: ed25519.Ed25519PrivateKey, agency_dir: Path):
        self.agency_id = agency_id
        self.key_id = key_id
        self.agency_dir = Path(agency_dir)
        self.signer = Ed25519Signer(subscriber_id=agency_id, key_id=key_id, private_key=private_key)

    @property
    def public_key(self) -> bytes:
        return self.signer.public_key_bytes

    def __repr__(self) -> str:
        return f"Agency(agency_id={self.agency_id!r}, key_id={self.key_id!r})"


def init_agency(
    agency_dir: str | Path, *, agency_id: str = "agency", new_key_id: Callable[[], str] = lambda: str(uuid.uuid4())
) -> Agency:
    agency_dir = Path(agency_dir)
    if not agency_id or "|" in agency_id or '"' in agency_id:
        raise KeyringError(agency_dir, f"unusable agency id {agency_id!r}")
    agency_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    if (agency_dir / AGENCY_FILE).exists():
        raise KeyringError(agency_dir / AGENCY_FILE, "already exists; refusing to replace the agency key")
    key = ed25519.Ed25519PrivateKey.generate()
    _write_private(
        agency_dir / AGENCY_KEY_FILE,
        key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()),
    )
    agency = Agency(agency_id=agency_id, key_id=new_key_id(), private_key=key, agency_dir=agency_dir)
    doc = {"format": AGENCY_FORMAT, "agency_id": agency_id, "key_id": agency.key_id,
           "public_key": b64encode(agency.public_key)}
    _write_public(agency_dir / AGENCY_FILE, json.dumps(doc, indent=2) + "\n")
    _write_public(agency_dir / AGENCY_PUB_FILE, b64encode(agency.public_key) + "\n")
    return agency


def load_agency(agency_dir: str | Path) -> Agency:
    agency_dir = Path(agency_dir)
    path = agency_dir / AGENCY_FILE
    doc = _load_format_doc(path, AGENCY_FORMAT, create_hint="create it with `urja agency init`")
    key = _load_private(agency_dir / AGENCY_KEY_FILE, "signing")
    agency = Agency(agency_id=str(doc.get("agency_id")), key_id=str(doc.get("key_id")), private_key=key,
                    agency_dir=agency_dir)
    if b64encode(agency.public_key) != doc.get("public_key"):
        raise KeyringError(path, "public_key does not match the agency's private key file")
    return agency


def read_agency_public_key(path: str | Path) -> bytes:
    """An agency key file: either ``agency.pub`` (base64 line) or ``agency.json``."""
    path = Path(path)
    try:
        text = read_file(path).decode("utf-8").strip()
    except (OSError, UnicodeDecodeError) as exc:
        raise SignatureError("agency-key-unreadable", f"{path}: {getattr(exc, 'strerror', None) or exc}") from None
    if text.startswith("{"):
        doc = load_json(text)
        text = doc.get("public_key") if isinstance(doc, dict) else None
    try:
        return b64decode(text, field=f"{path}: agency public key", length=32)
    except SignatureError as exc:
        raise SignatureError("agency-key-unreadable", str(exc)) from None


def _require_str(record: dict, name: str) -> str:
    value = record.get(name)
    if not isinstance(value, str) or not value:
        raise SignatureError("certificate-malformed", f"field {name!r} must be a non-empty string")
    return value


def _check_record_fields(record: dict) -> None:
    for name in _CERT_STRINGS:
        if name in ("city", "gps") and not record.get(name):
            raise SignatureError(
                "certificate-malformed",
                f"field {name!r} is empty; set it with `urja keygen --{name}` or `urja agency certify --{name}`",
            )
        if name not in ("valid_from", "valid_until", "status"):
            _require_str(record, name)
    if any(c in record["subscriber_id"] + record["unique_key_id"] for c in '|" '):
        raise SignatureError("certificate-malformed", "subscriber_id and unique_key_id must not contain '|', quotes or spaces")
    b64decode(record["signing_public_key"], field="signing_public_key", length=32)
    b64decode(record["encr_public_key"], field="encr_public_key")
    if not GPS_RE.match(record["gps"]):
        raise SignatureError("certificate-malformed", f"gps {record['gps']!r} must be 'lat,lon' in degrees")
    if "metering_public_key" in record:
        load_metering_public_key(record["metering_public_key"], reason="certificate-malformed")


CERTIFIED_TYPES = ("BPP", "BAP")


def certify(request: Any, agency: Agency, *, valid_days: int, now_s: float, kind: str = "BPP") -> dict:
    """Sign a subscription request; the certificate never outlives the key window.

    ``kind`` is what the agency certifies the key as, and the request must say the same:
    ``BPP`` for a charger (place and keys checked in full; its metering key is kept so signed
    meter data chains to the agency), ``BAP`` for an app or gateway (identity and signing key
    checked; no metering key, since a buyer has no meter to vouch for).
    """
    if not isinstance(request, dict):
        raise SignatureError("certificate-malformed", "request must be a JSON object")
    if kind not in CERTIFIED_TYPES:
        raise SignatureError("wrong-type", f"cannot certify as {kind!r} (allowed: {', '.join(CERTIFIED_TYPES)})")
    if valid_days < 1:
        raise SignatureError("certificate-malformed", f"valid days must be at least 1, got {valid_days}")
    if request.get("type") != kind:
        raise SignatureError("wrong-type", f"request type {request.get('type')!r}, certifying as {kind!r}; "
                                           f"the request must be for a {kind}")
    if kind == "BPP":
        _check_record_fields(request)
        allowed = set(_CERT_STRINGS) | {"metering_public_key"}
    else:
        _check_buyer_fields(request)
        for name in _CERT_STRINGS:
            if name in request and not isinstance(request[name], str):
                raise SignatureError("certificate-malformed", f"field {name!r} must be a string")
        if request.get("gps") and not GPS_RE.match(request["gps"]):
            raise SignatureError("certificate-malformed", f"gps {request['gps']!r} must be 'lat,lon' in degrees")
        allowed = set(_CERT_STRINGS)
    start_s = int(now_s)
    until_s = start_s + valid_days * 86400
    if "valid_from" in request:
        start_s = max(start_s, parse_time(request["valid_from"], field="valid_from"))
    if "valid_until" in request:
        until_s = min(until_s, parse_time(request["valid_until"], field="valid_until"))
    if until_s <= start_s:
        raise SignatureError("expired", "the key's validity window has already ended")
    record = {k: request[k] for k in request if k in allowed and request[k] not in (None, "")}
    record.update(valid_from=format_time(start_s), valid_until=format_time(until_s), status="SUBSCRIBED")
    return sign_object(record, agency.signer)


def read_revocation_file(path: str | Path, agency_public_key: bytes | None) -> dict:
    """A revocation list a charger or node was given (``[identity] revocations``), checked.

    Refused, naming the file, when it cannot be read, is not the agency's, or there is no
    agency key to check it with: an unchecked list could un-revoke nobody, but a forged one
    could revoke anybody.
    """
    path = Path(path)
    if agency_public_key is None:
        raise SignatureError("revocation-unverifiable", f"{path}: no agency key is configured to check it")
    return _revocation_file(path, agency_public_key)


def load_revocations(agency_dir: Path) -> dict | None:
    """The agency's revocation list as stored (None before the first revocation).

    A list that cannot be read or parsed is an error naming the file, never "no list": reading
    it as empty would make the next ``revoke`` start a new list and un-revoke everyone.
    """
    return _revocation_file(Path(agency_dir) / REVOCATIONS_FILE, missing_ok=True)


def _revocation_file(path: Path, agency_public_key: bytes | None = None, *, missing_ok: bool = False) -> dict | None:
    """Read (and with a key, check) a revocation list; every refusal names the file. A missing
    file is None where ``missing_ok`` (an agency that has revoked nobody yet)."""
    try:
        raw = read_file(path, max_bytes=16 * 1024 * 1024)
    except FileNotFoundError:
        if missing_ok:
            return None
        raise SignatureError("revocation-unreadable", f"{path}: no such file") from None
    except OSError as exc:
        raise SignatureError("revocation-unreadable", f"{path}: {exc.strerror or exc}") from None
    try:
        doc = load_json(raw, max_bytes=16 * 1024 * 1024)
        if agency_public_key is not None:
            verify_revocations(doc, agency_public_key)
    except SignatureError as exc:
        detail = str(exc).removeprefix(f"{exc.reason}: ")
        raise SignatureError(exc.reason, f"{path}: {detail}") from None
    return doc


def revoke(agency: Agency, revoked_id: str, *, now_s: float) -> tuple[dict, bool]:
    """Append ``revoked_id`` (a subscriber id or key id) to the signed revocation list.

    Returns the list and whether it changed; revoking twice leaves it as it was.
    """
    if not revoked_id or not isinstance(revoked_id, str):
        raise SignatureError("revocation-malformed", "id to revoke must be a non-empty string")
    current = load_revocations(agency.agency_dir)
    if current is None:
        entries, sequence = [], 0
    else:
        verify_revocations(current, agency.public_key)
        entries, sequence = list(current["revoked"]), current["sequence"]
    if any(e["id"] == revoked_id for e in entries):
        return current, False
    entries.append({"id": revoked_id, "revoked_at": format_time(now_s)})
    doc = sign_object(
        {"kind": REVOCATIONS_KIND, "agency_id": agency.agency_id, "sequence": sequence + 1,
         "issued_at": format_time(now_s), "revoked": entries},
        agency.signer,
    )
    _write_public(agency.agency_dir / REVOCATIONS_FILE, json.dumps(doc, indent=2) + "\n")
    return doc, True


# --------------------------------------------------------------------------- the verifying side


def verify_revocations(doc: Any, agency_public_key: bytes) -> frozenset[str]:
    """Check the agency's signature on a revocation list; returns the revoked ids."""
    verify_object(doc, agency_public_key)
    if doc.get("kind") != REVOCATIONS_KIND:
        raise SignatureError("revocation-malformed", f"kind must be {REVOCATIONS_KIND!r}")
    seq = doc.get("sequence")
    if isinstance(seq, bool) or not isinstance(seq, int) or seq < 1:
        raise SignatureError("revocation-malformed", "sequence must be a positive integer")
    parse_time(doc.get("issued_at"), field="issued_at")
    revoked = doc.get("revoked")
    if not isinstance(revoked, list) or not all(isinstance(e, dict) and isinstance(e.get("id"), str) for e in revoked):
        raise SignatureError("revocation-malformed", "revoked must be a list of {id, revoked_at}")
    return frozenset(e["id"] for e in revoked)


@dataclass(frozen=True)
class Certificate:
    """A verified certificate: the key a charger signs with, and what the agency said about it."""

    key: PublicKeyRecord
    metering_public_key_hex: str | None
    agency_key_id: tuple[str, str]
    record: dict


def _check_buyer_fields(record: dict) -> None:
    """Apps and gateways have no place or metering key: only the identity and its key."""
    for name in ("subscriber_id", "unique_key_id", "signing_public_key", "type"):
        _require_str(record, name)
    if any(c in record["subscriber_id"] + record["unique_key_id"] for c in '|" '):
        raise SignatureError("certificate-malformed", "subscriber_id and unique_key_id must not contain '|', quotes or spaces")
    b64decode(record["signing_public_key"], field="signing_public_key", length=32)


def verify_certificate(
    cert: Any, agency_public_key: bytes, revocations: Any = None, *, now_s: float,
    types: tuple[str, ...] = ("BPP",),
) -> Certificate:
    """Verify subscriber -> agency offline; refuses revoked, expired, not yet valid, forged, or a
    type outside ``types`` (chargers are BPP; a charger checking a buyer passes ("BAP", "BPP"))."""
    if not isinstance(cert, dict):
        raise SignatureError("certificate-malformed", "certificate must be a JSON object")
    agency_key_id = verify_object(cert, agency_public_key)
    if cert.get("type") not in types:
        raise SignatureError("wrong-type", f"certificate is for a {cert.get('type')!r}, expected one of: {', '.join(types)}")
    try:
        if cert["type"] == "BPP":
            _check_record_fields(cert)
        else:
            _check_buyer_fields(cert)
    except SignatureError as exc:
        raise SignatureError("certificate-malformed", str(exc)) from None
    if cert.get("status") != "SUBSCRIBED":
        raise SignatureError("certificate-status", f"status {cert.get('status')!r}, expected 'SUBSCRIBED'")
    valid_from_s = parse_time(cert.get("valid_from"), field="valid_from")
    valid_until_s = parse_time(cert.get("valid_until"), field="valid_until")
    if now_s < valid_from_s:
        raise SignatureError("not-yet-valid", f"certificate valid from {cert['valid_from']}")
    if now_s >= valid_until_s:
        raise SignatureError("expired", f"certificate expired at {cert['valid_until']}")
    if revocations is not None:
        revoked = verify_revocations(revocations, agency_public_key)
        hit = {cert["subscriber_id"], cert["unique_key_id"]} & revoked
        if hit:
            raise SignatureError("revoked", f"{sorted(hit)[0]!r} is on the agency's revocation list")
    key = PublicKeyRecord(
        cert["subscriber_id"], cert["unique_key_id"],
        b64decode(cert["signing_public_key"], field="signing_public_key", length=32),
        valid_from_s, valid_until_s,
    )
    return Certificate(key, cert.get("metering_public_key"), agency_key_id, {k: v for k, v in cert.items() if k != "signature"})


class CertificateLookup:
    """A ``KeyLookup`` backed by agency certificates, checked when added.

    Revocation lists are accepted only with a higher sequence than the one held, so an old
    list cannot be replayed to un-revoke a key.
    """

    def __init__(self, *, agency_public_key: bytes, clock: Callable[[], float]):
        self.agency_public_key = agency_public_key
        self.clock = clock
        self._certs: dict[tuple[str, str], Certificate] = {}
        self._revoked: frozenset[str] = frozenset()
        self._sequence = 0

    def add(self, cert: Any) -> Certificate:
        checked = verify_certificate(cert, self.agency_public_key, now_s=self.clock())
        if {checked.key.subscriber_id, checked.key.key_id} & self._revoked:
            raise SignatureError("revoked", f"{checked.key.subscriber_id!r} is on the agency's revocation list")
        self._certs[(checked.key.subscriber_id, checked.key.key_id)] = checked
        return checked

    def set_revocations(self, doc: Any) -> None:
        revoked = verify_revocations(doc, self.agency_public_key)
        if doc["sequence"] <= self._sequence:
            raise SignatureError(
                "revocation-stale", f"sequence {doc['sequence']} is not newer than {self._sequence}"
            )
        self._revoked, self._sequence = revoked, doc["sequence"]

    async def lookup(self, subscriber_id: str, key_id: str) -> PublicKeyRecord | None:
        if {subscriber_id, key_id} & self._revoked:
            return None
        cert = self._certs.get((subscriber_id, key_id))
        return cert.key if cert is not None else None
