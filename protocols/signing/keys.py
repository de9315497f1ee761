"""The charger's own keys: where they live on disk, which one signs, which ones verify.

Without an operator's back-end in the middle, the charger's signing key *is* its identity, so
the key directory is treated like a safe: private files are created with mode 0600 in one step
(never widened and narrowed later), and loading refuses a directory whose private files others
could read. Key material never appears in a ``repr`` or a log line.

Layout of a key directory::

    keyring.json                 public description: subscriber id, profile, key ids, windows
    subscription-request.json    the newest key as a registry record, for the nodal agency
    <key_id>.signing.pem         Ed25519 private key (PKCS#8), Beckn message signatures
    <key_id>.encryption.pem      X25519 private key (PKCS#8), registry challenge encryption
    <key_id>.metering.pem        ECDSA secp256r1 private key (PKCS#8), OCMF meter readings

Public key encodings follow what Beckn registries publish: ``signing_public_key`` is the raw
32-byte Ed25519 key in base64, ``encr_public_key`` the DER SubjectPublicKeyInfo of the X25519
key in base64. ``metering_public_key`` is the DER SubjectPublicKeyInfo in hex, the spelling
OCMF transparency software expects.

Rotation adds a key and shortens the older keys' windows: signing always uses the newest key
whose window covers "now", verification accepts any key whose window covers the signature.
"""
from __future__ import annotations

import errno
import json
import os
import stat
import uuid
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Callable, Iterable, Protocol

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, x25519

from drivers.configfile import ConfigError, read_bounded
from protocols.signing._codec import b64decode, b64encode, format_time, parse_time
from protocols.signing.errors import KeyringError, SignatureError

KEYRING_FILE = "keyring.json"
REQUEST_FILE = "subscription-request.json"
KEYRING_FORMAT = "urja-keyring/1"
DEFAULT_DOMAIN = "dent:ev-charging:0.1.0"
_KINDS = ("signing", "encryption", "metering")


# --------------------------------------------------------------------------- public side


@dataclass(frozen=True)
class PublicKeyRecord:
    """What a verifier needs to know about someone else's signing key."""

    subscriber_id: str
    key_id: str
    signing_public_key: bytes
    valid_from_s: int
    valid_until_s: int

    def covers(self, t_s: float) -> bool:
        return self.valid_from_s <= t_s < self.valid_until_s


class KeyLookup(Protocol):
    """Finds a subscriber's signing key; ``None`` when it is unknown.

    Asynchronous because the general case is a registry on the network; a static table or an
    agency certificate answers at once. Implementations may raise ``SignatureError`` (for
    example ``registry-unavailable``) but never any other exception.
    """

    async def lookup(self, subscriber_id: str, key_id: str) -> PublicKeyRecord | None: ...


class StaticKeyLookup:
    """A fixed table of keys: tests, a node's pinned peers, or the charger's own keyring."""

    def __init__(self, records: Iterable[PublicKeyRecord] = ()):
        self._records = {(r.subscriber_id, r.key_id): r for r in records}

    def add(self, record: PublicKeyRecord) -> None:
        self._records[(record.subscriber_id, record.key_id)] = record

    async def lookup(self, subscriber_id: str, key_id: str) -> PublicKeyRecord | None:
        return self._records.get((subscriber_id, key_id))


class FirstFoundLookup:
    """Asks each lookup in turn and takes the first key found: a node's agency certificates
    first (no round trip), the network's registry only for a key no certificate vouched for."""

    def __init__(self, *lookups: KeyLookup):
        self.lookups = lookups

    async def lookup(self, subscriber_id: str, key_id: str) -> PublicKeyRecord | None:
        for one in self.lookups:
            record = await one.lookup(subscriber_id, key_id)
            if record is not None:
                return record
        return None


def ed25519_public_from_bytes(raw: bytes) -> ed25519.Ed25519PublicKey:
    try:
        return ed25519.Ed25519PublicKey.from_public_bytes(raw)
    except ValueError:
        raise SignatureError("bad-key", "not a 32-byte Ed25519 public key") from None


def ed25519_verify(public_key: bytes | ed25519.Ed25519PublicKey, signature: bytes, data: bytes) -> bool:
    key = ed25519_public_from_bytes(public_key) if isinstance(public_key, bytes) else public_key
    try:
        key.verify(signature, data)
    except InvalidSignature:
        return False
    return True


# --------------------------------------------------------------------------- private side


class Ed25519Signer:
    """Signs with one Ed25519 key and knows the ids a verifier will look it up by."""

    algorithm = "ed25519"

    def __init__(self, *, subscriber_id: str, key_id: str, private_key: ed25519.Ed25519PrivateKey):
        self.subscriber_id = subscriber_id
        self.key_id = key_id
        self._private_key = private_key
        self.public_key_bytes = private_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )

    def sign(self, data: bytes) -> bytes:
        return self._private_key.sign(data)

    def __repr__(self) -> str:
        return f"Ed25519Signer(subscriber_id={self.subscriber_id!r}, key_id={self.key_id!r})"


def signer_at(signer) -> Callable[[float], "Ed25519Signer"]:
    """The signer to use at a moment: a ``Keyring`` gives its newest valid key (rotation), a
    fixed ``Ed25519Signer`` is itself at every moment. Callers accept either."""
    if hasattr(signer, "signer") and not hasattr(signer, "sign"):
        return signer.signer
    return lambda now_s: signer


@dataclass(frozen=True)
class KeyEntry:
    """One generation of the charger's keys with its validity window."""

    key_id: str
    valid_from_s: int
    valid_until_s: int
    signing_key: ed25519.Ed25519PrivateKey = field(repr=False, compare=False)
    encryption_key: x25519.X25519PrivateKey = field(repr=False, compare=False)
    metering_key: ec.EllipticCurvePrivateKey = field(repr=False, compare=False)

    def covers(self, t_s: float) -> bool:
        return self.valid_from_s <= t_s < self.valid_until_s

    @property
    def signing_public_key(self) -> bytes:
        return self.signing_key.public_key().public_bytes(
            serialization.Encoding.Raw, serialization.PublicFormat.Raw
        )

    @property
    def encr_public_key_b64(self) -> str:
        der = self.encryption_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return b64encode(der)

    @property
    def metering_public_key_hex(self) -> str:
        der = self.metering_key.public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
        )
        return der.hex()


@dataclass(frozen=True)
class Profile:
    """Where and what the charger is, as the registry will list it."""

    type: str = "BPP"
    domain: str = DEFAULT_DOMAIN
    city: str = ""
    country: str = "IND"
    gps: str = ""


class Keyring:
    """All key generations of one charger, newest last."""

    def __init__(self, *, subscriber_id: str, entries: list[KeyEntry], profile: Profile, key_dir: Path):
        self.subscriber_id = subscriber_id
        self.entries = sorted(entries, key=lambda e: (e.valid_from_s, e.key_id))
        self.profile = profile
        self.key_dir = Path(key_dir)

    def __repr__(self) -> str:
        ids = ", ".join(e.key_id for e in self.entries)
        return f"Keyring(subscriber_id={self.subscriber_id!r}, keys=[{ids}])"

    def current(self, now_s: float) -> KeyEntry:
        """The newest key valid at ``now_s``; refusing rather than signing with an expired key."""
        for entry in reversed(self.entries):
            if entry.covers(now_s):
                return entry
        raise KeyringError(self.key_dir, f"no key is valid at {format_time(now_s)}; run `urja keygen --rotate`")

    def signer(self, now_s: float) -> Ed25519Signer:
        entry = self.current(now_s)
        return Ed25519Signer(subscriber_id=self.subscriber_id, key_id=entry.key_id, private_key=entry.signing_key)

    def public_records(self) -> list[PublicKeyRecord]:
        return [
            PublicKeyRecord(self.subscriber_id, e.key_id, e.signing_public_key, e.valid_from_s, e.valid_until_s)
            for e in self.entries
        ]

    def lookup(self) -> StaticKeyLookup:
        return StaticKeyLookup(self.public_records())

    def subscription_request(self, entry: KeyEntry | None = None) -> dict:
        """The registry record a nodal agency certifies (``urja agency certify``)."""
        entry = entry or self.entries[-1]
        return {
            "subscriber_id": self.subscriber_id,
            "unique_key_id": entry.key_id,
            "signing_public_key": b64encode(entry.signing_public_key),
            "encr_public_key": entry.encr_public_key_b64,
            "metering_public_key": entry.metering_public_key_hex,
            "type": self.profile.type,
            "domain": self.profile.domain,
            "city": self.profile.city,
            "country": self.profile.country,
            "gps": self.profile.gps,
            "valid_from": format_time(entry.valid_from_s),
            "valid_until": format_time(entry.valid_until_s),
        }


# --------------------------------------------------------------------------- files


def _write_private(path: Path, data: bytes) -> None:
    """Create a private file with mode 0600 from the first byte; never overwrite one."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_NOFOLLOW", 0)
    try:
        fd = os.open(path, flags, 0o600)
    except FileExistsError:
        raise KeyringError(path, "already exists; refusing to overwrite a private key") from None
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
        fh.flush()
        os.fsync(fh.fileno())


def _write_public(path: Path, text: str) -> None:
    """Replace a public file atomically so a crash never leaves half a keyring."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        fh.write(text)
        fh.flush()
        os.fsync(fh.fileno())
    os.replace(tmp, path)


def _pem(key) -> bytes:
    return key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )


def _key_file(key_dir: Path, key_id: str, kind: str) -> Path:
    return key_dir / f"{key_id}.{kind}.pem"


def _new_entry(key_id: str, valid_from_s: int, valid_until_s: int) -> KeyEntry:
    return KeyEntry(
        key_id=key_id,
        valid_from_s=valid_from_s,
        valid_until_s=valid_until_s,
        signing_key=ed25519.Ed25519PrivateKey.generate(),
        encryption_key=x25519.X25519PrivateKey.generate(),
        metering_key=ec.generate_private_key(ec.SECP256R1()),
    )


def _save_private(key_dir: Path, entry: KeyEntry) -> None:
    _write_private(_key_file(key_dir, entry.key_id, "signing"), _pem(entry.signing_key))
    _write_private(_key_file(key_dir, entry.key_id, "encryption"), _pem(entry.encryption_key))
    _write_private(_key_file(key_dir, entry.key_id, "metering"), _pem(entry.metering_key))


def _save_public(keyring: Keyring) -> None:
    doc = {
        "format": KEYRING_FORMAT,
        "subscriber_id": keyring.subscriber_id,
        "profile": {
            "type": keyring.profile.type,
            "domain": keyring.profile.domain,
            "city": keyring.profile.city,
            "country": keyring.profile.country,
            "gps": keyring.profile.gps,
        },
        "keys": [
            {
                "key_id": e.key_id,
                "valid_from": format_time(e.valid_from_s),
                "valid_until": format_time(e.valid_until_s),
                "signing_public_key": b64encode(e.signing_public_key),
                "encr_public_key": e.encr_public_key_b64,
                "metering_public_key": e.metering_public_key_hex,
            }
            for e in keyring.entries
        ],
    }
    _write_public(keyring.key_dir / KEYRING_FILE, json.dumps(doc, indent=2) + "\n")
    _write_public(
        keyring.key_dir / REQUEST_FILE, json.dumps(keyring.subscription_request(), indent=2) + "\n"
    )


def _check_key_id(key_id: str) -> str:
    if not key_id or any(c in key_id for c in '|/\\"\n\r ') or key_id.startswith("."):
        raise KeyringError("key id", f"unusable key id {key_id!r} (no '|', '/', quotes or spaces)")
    return key_id


def create_keyring(
    key_dir: str | Path,
    *,
    subscriber_id: str,
    valid_days: int,
    now_s: float,
    profile: Profile = Profile(),
    new_key_id: Callable[[], str] = lambda: str(uuid.uuid4()),
) -> Keyring:
    """Create the first key generation in an empty (or new) directory."""
    key_dir = Path(key_dir)
    if not subscriber_id or any(c in subscriber_id for c in '|"\n\r '):
        raise KeyringError(key_dir, f"unusable subscriber id {subscriber_id!r} (no '|', quotes or spaces)")
    if valid_days < 1:
        raise KeyringError(key_dir, f"valid days must be at least 1, got {valid_days}")
    key_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    if (key_dir / KEYRING_FILE).exists():
        raise KeyringError(key_dir / KEYRING_FILE, "already exists; use --rotate to add a key")
    start_s = int(now_s)
    entry = _new_entry(_check_key_id(new_key_id()), start_s, start_s + valid_days * 86400)
    keyring = Keyring(subscriber_id=subscriber_id, entries=[entry], profile=profile, key_dir=key_dir)
    _save_private(key_dir, entry)
    _save_public(keyring)
    return keyring


def rotate_keyring(
    key_dir: str | Path,
    *,
    valid_days: int,
    old_valid_until_s: float,
    now_s: float,
    new_key_id: Callable[[], str] = lambda: str(uuid.uuid4()),
) -> Keyring:
    """Add a key valid from now; older keys stay valid until ``old_valid_until_s`` at the latest.

    The overlap lets peers that still hold the old certificate keep verifying until the new
    one has reached them.
    """
    keyring = load_keyring(key_dir)
    if valid_days < 1:
        raise KeyringError(key_dir, f"valid days must be at least 1, got {valid_days}")
    start_s = int(now_s)
    cut_s = int(old_valid_until_s)
    new_id = _check_key_id(new_key_id())
    if any(e.key_id == new_id for e in keyring.entries):
        raise KeyringError(key_dir, f"key id {new_id} already in the keyring")
    old = [
        replace(e, valid_until_s=max(e.valid_from_s, min(e.valid_until_s, cut_s))) for e in keyring.entries
    ]
    entry = _new_entry(new_id, start_s, start_s + valid_days * 86400)
    _save_private(keyring.key_dir, entry)
    rotated = Keyring(
        subscriber_id=keyring.subscriber_id, entries=old + [entry], profile=keyring.profile, key_dir=keyring.key_dir
    )
    _save_public(rotated)
    return rotated


def _load_private(path: Path, kind: str):
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise KeyringError(path, "private key file missing") from None
    if not stat.S_ISREG(st.st_mode):
        raise KeyringError(path, "private key must be a regular file (not a link or directory)")
    if st.st_mode & 0o077:
        raise KeyringError(
            path,
            f"private key file is accessible by group or others (mode {stat.S_IMODE(st.st_mode):04o}); "
            f"it must be 0600: chmod 600 {path}",
        )
    try:
        key = serialization.load_pem_private_key(read_file(path), password=None)
    except OSError as exc:
        raise KeyringError(path, f"cannot be read: {exc.strerror or exc}") from None
    except (ValueError, TypeError):
        raise KeyringError(path, "not an unencrypted PKCS#8 PEM private key") from None
    expected = {
        "signing": ed25519.Ed25519PrivateKey,
        "encryption": x25519.X25519PrivateKey,
        "metering": ec.EllipticCurvePrivateKey,
    }[kind]
    if not isinstance(key, expected):
        raise KeyringError(path, f"holds the wrong kind of key for {kind}")
    if kind == "metering" and not isinstance(key.curve, ec.SECP256R1):
        raise KeyringError(path, "metering key must be on curve secp256r1")
    return key


def read_file(path: Path, *, max_bytes: int = 256 * 1024) -> bytes:
    """A key, certificate or list file's bytes, bounded and only from a regular file.

    Refusals are ``OSError`` (``FileNotFoundError`` when missing) so each caller keeps its own
    wording for an unreadable file.
    """
    try:
        return read_bounded(path, max_bytes=max_bytes)
    except ConfigError as exc:
        if exc.problem == "file not found":
            raise FileNotFoundError(errno.ENOENT, "no such file", str(path)) from None
        raise OSError(errno.EINVAL, exc.problem, str(path)) from None


def _load_format_doc(path: Path, fmt: str, *, create_hint: str) -> dict:
    """The JSON document at ``path`` written in format ``fmt`` (a keyring or an agency).

    Every way the file can be unusable (missing, unreadable, not JSON, another format) is a
    ``KeyringError`` naming the file, so the commands print a reason instead of a traceback.
    """
    try:
        doc = json.loads(read_file(path).decode("utf-8"))
    except FileNotFoundError:
        raise KeyringError(path, f"not found; {create_hint}") from None
    except OSError as exc:
        raise KeyringError(path, f"cannot be read: {exc.strerror or exc}") from None
    except (ValueError, RecursionError) as exc:
        raise KeyringError(path, f"not valid JSON: {exc}") from None
    if not isinstance(doc, dict) or doc.get("format") != fmt:
        raise KeyringError(path, f"format must be {fmt!r}")
    return doc


def load_keyring(key_dir: str | Path) -> Keyring:
    """Load and check a key directory; refuses unsafe modes and mismatched public parts."""
    key_dir = Path(key_dir)
    path = key_dir / KEYRING_FILE
    doc = _load_format_doc(path, KEYRING_FORMAT, create_hint="create keys with `urja keygen`")
    subscriber_id = doc.get("subscriber_id")
    if not isinstance(subscriber_id, str) or not subscriber_id:
        raise KeyringError(path, "subscriber_id missing")
    prof = doc.get("profile") or {}
    if not isinstance(prof, dict) or not all(isinstance(prof.get(k, ""), str) for k in Profile.__annotations__):
        raise KeyringError(path, "profile must be a table of strings")
    profile = Profile(**{k: prof[k] for k in Profile.__annotations__ if k in prof})
    keys = doc.get("keys")
    if not isinstance(keys, list) or not keys:
        raise KeyringError(path, "keys: must list at least one key")
    entries = []
    for i, item in enumerate(keys):
        where = f"{path}: keys[{i}]"
        if not isinstance(item, dict):
            raise KeyringError(where, "must be a table")
        try:
            key_id = _check_key_id(item.get("key_id", ""))
            valid_from_s = parse_time(item.get("valid_from"), field="valid_from")
            valid_until_s = parse_time(item.get("valid_until"), field="valid_until")
            public = b64decode(item.get("signing_public_key"), field="signing_public_key", length=32)
        except SignatureError as exc:
            raise KeyringError(where, str(exc)) from None
        signing, encryption, metering = (_load_private(_key_file(key_dir, key_id, k), k) for k in _KINDS)
        entry = KeyEntry(key_id, valid_from_s, valid_until_s, signing, encryption, metering)
        if entry.signing_public_key != public:
            raise KeyringError(where, "signing_public_key does not match the private key file")
        entries.append(entry)
    return Keyring(subscriber_id=subscriber_id, entries=entries, profile=profile, key_dir=key_dir)
