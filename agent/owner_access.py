"""Who may open the site owner's page: the owner's and the technician's secrets, as scrypt hashes.

One small JSON file (mode 0600, named by ``[owner_page] access_file``) holds, per role, either a
password hash or a one-time setup code's hash (the code printed by provisioning or on the
label, good for the first visit only, until the owner sets a password). Nothing here imports a
web library, so provisioning can write the file without the page's dependencies.

Why scrypt: it is in Python's standard library (``hashlib.scrypt``) and costs memory as well as
time, so a stolen file is slow to guess on a GPU; a board can still check one login in well
under a second. Each hash carries its own salt and parameters, so raising the cost later needs
no migration.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import random as _random
import secrets
from pathlib import Path

from agent.core.errors import AgentError

ROLES = ("owner", "technician")
# scrypt cost: 2**14 x 8 x 128 bytes = 16 MiB, about 50 ms on a Cortex-A53.
SCRYPT_N = 2 ** 14
SCRYPT_R = 8
SCRYPT_P = 1
MIN_PASSWORD_CHARS = 8
SETUP_CODE_ALPHABET = "ABCDEFGHJKMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I/L: read off a label
SETUP_CODE_CHARS = 12


class AccessError(AgentError):
    """The access file is unreadable, or a role or password is refused; the message says which."""

    code = "owner-access"


def _hash(secret: str, salt: bytes, *, n: int = SCRYPT_N, r: int = SCRYPT_R, p: int = SCRYPT_P) -> bytes:
    return hashlib.scrypt(secret.encode("utf-8"), salt=salt, n=n, r=r, p=p, maxmem=64 * 1024 * 1024, dklen=32)


def _record(secret: str, salt: bytes) -> dict:
    return {"scrypt": {"n": SCRYPT_N, "r": SCRYPT_R, "p": SCRYPT_P,
                       "salt": base64.b64encode(salt).decode("ascii"),
                       "hash": base64.b64encode(_hash(secret, salt)).decode("ascii")}}


def _matches(record: dict | None, secret: str) -> bool:
    if not isinstance(record, dict) or not isinstance(record.get("scrypt"), dict):
        return False
    params = record["scrypt"]
    try:
        salt = base64.b64decode(params["salt"], validate=True)
        want = base64.b64decode(params["hash"], validate=True)
        got = _hash(secret, salt, n=int(params["n"]), r=int(params["r"]), p=int(params["p"]))
    except (KeyError, ValueError, TypeError):
        return False
    return hmac.compare_digest(got, want)


def _load(path: Path) -> dict:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        return {"version": 1, "roles": {}}
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise AccessError(f"{path}: not a readable access file ({exc})") from None
    if not isinstance(data, dict) or not isinstance(data.get("roles"), dict):
        raise AccessError(f"{path}: roles: missing (not an access file)")
    return data


def _save(path: Path, data: dict) -> None:
    """Write beside and rename, created 0600: a crash leaves the old file, never half of one."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as fh:
        json.dump(data, fh, indent=2, sort_keys=True)
        fh.write("\n")
        fh.flush()
        os.fsync(fh.fileno())
    os.chmod(tmp, 0o600)
    os.replace(tmp, path)


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise AccessError(f"role: unknown {role!r} (allowed: {', '.join(ROLES)})")


def create_setup_code(path: str | Path, *, rng: _random.Random | None = None) -> str:
    """A new one-time setup code for the owner's first visit; only its hash is stored.

    Returns the code for the caller to print or put on the label; prints nothing itself. A
    password the owner already set stays valid. ``rng`` makes the code reproducible in tests.
    """
    path = Path(path)
    choose = rng.choice if rng is not None else secrets.choice
    code = "".join(choose(SETUP_CODE_ALPHABET) for _ in range(SETUP_CODE_CHARS))
    salt = bytes(rng.getrandbits(8) for _ in range(16)) if rng is not None else secrets.token_bytes(16)
    data = _load(path)
    entry = data["roles"].setdefault("owner", {})
    entry["setup_code"] = _record(code, salt)
    _save(path, data)
    return code


def set_password(path: str | Path, *, role: str, password: str) -> None:
    """Store ``role``'s password (its scrypt hash); setting the owner's uses up the setup code."""
    _check_role(role)
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_CHARS:
        raise AccessError(f"password: must be at least {MIN_PASSWORD_CHARS} characters")
    path = Path(path)
    data = _load(path)
    data["roles"][role] = {"password": _record(password, secrets.token_bytes(16))}
    _save(path, data)


def verify(path: str | Path, *, role: str, password_or_code: str) -> bool:
    """True when the secret is ``role``'s password or (owner) its unused setup code."""
    if role not in ROLES or not isinstance(password_or_code, str) or not password_or_code:
        return False
    entry = _load(Path(path))["roles"].get(role) or {}
    return _matches(entry.get("password"), password_or_code) or \
        _matches(entry.get("setup_code"), _as_code(password_or_code))


def is_setup_code(path: str | Path, *, role: str, secret: str) -> bool:
    """True when ``secret`` is the role's one-time setup code (the page then asks for a password)."""
    entry = _load(Path(path))["roles"].get(role) or {}
    return _matches(entry.get("setup_code"), _as_code(secret))


def _as_code(typed: str) -> str:
    """A setup code as typed from the label: in groups of five with dashes or spaces, any case."""
    return "".join(typed.split()).replace("-", "").upper()


def has_secret(path: str | Path, *, role: str) -> bool:
    """Whether ``role`` can log in at all (a password or a setup code is stored)."""
    entry = _load(Path(path))["roles"].get(role) or {}
    return bool(entry.get("password") or entry.get("setup_code"))
