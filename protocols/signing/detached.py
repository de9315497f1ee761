"""Detached Ed25519 signatures over RFC 8785 (JCS) canonical JSON.

Offers, receipts, agency certificates and revocation lists travel through apps and gateways
that re-indent, reorder and re-escape JSON. Signing the canonical form instead of the bytes
keeps the signature valid through all of that, while any change of meaning breaks it.

A signed object carries its signature inline::

    {..., "signature": {"alg": "ed25519", "key_id": "<subscriber_id>|<unique_key_id>",
                        "value": "<base64 of 64 bytes>"}}

and the signature covers the canonical form of the object whose ``signature`` member holds
only ``alg`` and ``key_id`` (so the signer's identity is signed too, the value is not).
Integers must lie within ±2**53 and numbers must be finite (JCS has no other spelling for
them); money is carried as integer paise, never as fractions, so no rounding can make two
parties disagree about an amount.
"""
from __future__ import annotations

from typing import Any

import rfc8785

from protocols.signing._codec import b64decode, b64encode, strict_json
from protocols.signing.errors import SignatureError
from protocols.signing.keys import Ed25519Signer, ed25519_public_from_bytes, ed25519_verify

DEFAULT_MAX_JSON_BYTES = 64 * 1024
_SIG_FIELDS = {"alg", "key_id", "value"}


def load_json(data: bytes | str, *, max_bytes: int = DEFAULT_MAX_JSON_BYTES) -> Any:
    """Parse untrusted JSON: bounded size, no duplicate keys, no NaN/Infinity."""
    raw = data.encode("utf-8") if isinstance(data, str) else bytes(data)
    if len(raw) > max_bytes:
        raise SignatureError("json-too-large", f"document is {len(raw)} bytes, limit {max_bytes}")
    return strict_json(raw, reason="json-invalid", what="not valid UTF-8 JSON")


def canonical_bytes(obj: Any) -> bytes:
    """RFC 8785 canonical form; refuses what has no single canonical spelling."""
    try:
        return rfc8785.dumps(obj)
    except (rfc8785.CanonicalizationError, TypeError, ValueError, RecursionError) as exc:
        raise SignatureError("json-noncanonical", f"cannot canonicalise: {exc}") from None


def _unsigned(obj: dict) -> dict:
    return {k: v for k, v in obj.items() if k != "signature"}


def _signed_bytes(body: dict, alg: str, key_id: str) -> bytes:
    """Canonical form of the object with the signature's ``alg`` and ``key_id`` but no value.

    Binding the key id stops a signature being relabelled as someone else's.
    """
    return canonical_bytes({**body, "signature": {"alg": alg, "key_id": key_id}})


def sign_object(obj: dict, signer: Ed25519Signer) -> dict:
    """A copy of ``obj`` with a ``signature`` member over its canonical form."""
    if not isinstance(obj, dict):
        raise SignatureError("json-invalid", "only JSON objects can be signed")
    body = _unsigned(obj)
    key_id = f"{signer.subscriber_id}|{signer.key_id}"
    value = signer.sign(_signed_bytes(body, signer.algorithm, key_id))
    return {**body, "signature": {"alg": signer.algorithm, "key_id": key_id, "value": b64encode(value)}}


def signature_key_id(obj: Any) -> tuple[str, str]:
    """``(subscriber_id, unique_key_id)`` named by a signed object, checking its shape."""
    if not isinstance(obj, dict):
        raise SignatureError("json-invalid", "signed document must be a JSON object")
    sig = obj.get("signature")
    if not isinstance(sig, dict):
        raise SignatureError("signature-missing", "no 'signature' object")
    if set(sig) != _SIG_FIELDS:
        raise SignatureError("signature-malformed", f"signature fields must be exactly {sorted(_SIG_FIELDS)}")
    if sig["alg"] != "ed25519":
        raise SignatureError("algorithm-unsupported", f"alg {sig['alg']!r} (allowed: ed25519)")
    parts = sig["key_id"].split("|") if isinstance(sig["key_id"], str) else []
    if len(parts) != 2 or not all(parts):
        raise SignatureError("signature-malformed", "key_id must be 'subscriber_id|unique_key_id'")
    return parts[0], parts[1]


def verify_object(obj: Any, public_key: bytes, *, expected_key_id: tuple[str, str] | None = None) -> tuple[str, str]:
    """Check a detached signature with a known public key; returns the signer's key id pair."""
    key_id = signature_key_id(obj)
    if expected_key_id is not None and key_id != tuple(expected_key_id):
        raise SignatureError(
            "key-mismatch", f"signed by {'|'.join(key_id)!r}, expected {'|'.join(expected_key_id)!r}"
        )
    value = b64decode(obj["signature"]["value"], field="signature.value", length=64)
    data = _signed_bytes(_unsigned(obj), "ed25519", "|".join(key_id))
    if not ed25519_verify(ed25519_public_from_bytes(public_key), value, data):
        raise SignatureError("signature-invalid", f"signature by {'|'.join(key_id)!r} does not verify")
    return key_id
