"""The owner's password and one-time setup code: a JSON file of scrypt hashes, mode 0600.

Minimal: ``create_setup_code``, ``set_password`` and ``verify`` with the agreed signatures, so
provisioning and its tests run; the owner's page brings the full module.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
from pathlib import Path

_N, _R, _P = 2 ** 14, 8, 1
_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I: read off a label


def _hash(secret: str, salt: bytes) -> str:
    digest = hashlib.scrypt(secret.encode(), salt=salt, n=_N, r=_R, p=_P, dklen=32)
    return f"scrypt${_N}${_R}${_P}${base64.b64encode(salt).decode()}${base64.b64encode(digest).decode()}"


def _check(secret: str, stored: str) -> bool:
    try:
        _, n, r, p, salt, digest = stored.split("$")
        got = hashlib.scrypt(secret.encode(), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p), dklen=32)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, base64.b64decode(digest))


def _load(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def _save(path: Path, data: dict) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as fh:
        json.dump(data, fh, indent=2)
    os.replace(tmp, path)


def create_setup_code(path, *, rng=None) -> str:
    """A new one-time setup code for the owner (its hash stored); returns the code."""
    rng = rng or secrets.SystemRandom()
    code = "".join(rng.choice(_ALPHABET) for _ in range(10))
    path = Path(path)
    data = _load(path)
    data["setup_code"] = _hash(code, os.urandom(16))
    _save(path, data)
    return code


def set_password(path, *, role, password) -> None:
    path = Path(path)
    data = _load(path)
    data.setdefault("passwords", {})[role] = _hash(password, os.urandom(16))
    data.pop("setup_code", None)
    _save(path, data)


def verify(path, *, role, password_or_code) -> bool:
    data = _load(Path(path))
    stored = data.get("passwords", {}).get(role)
    if stored is not None:
        return _check(password_or_code, stored)
    code = data.get("setup_code")
    return code is not None and _check(password_or_code, code)
