"""The 2.0 Ack: ``status``, the receiver's CounterSignature and, for a NACK, the error.

What the counter-signature covers (``beckn.yaml`` CounterSignature): a signing string of

    (created): {unix}
    (expires): {unix}
    digest: BLAKE-512={BLAKE2b-512 of the Ack body}
    (request-digest): BLAKE-512={BLAKE2b-512 of the exact inbound request body}
    (message-id): {the request's context.messageId}

signed with the charger's Ed25519 key, in the ``Signature keyId=...`` wire format with
``headers="(created) (expires) digest (request-digest) (message-id)"``. The Ack body cannot
contain its own digest, so "the Ack body" is the Ack without its ``signature`` member, as
RFC 8785 canonical JSON (what a receiver can recompute from the JSON it got whatever its
serialiser). A request too broken to name a message id is counter-signed with an empty one.

This follows the spec, not beckn-onix, which sends the counter-signature in a ``Signature``
response header over a different string; the two do not verify each other
(``docs/network-protocol.md``, "Counter-signature").
"""
from __future__ import annotations

import hashlib
from typing import Any

from protocols.signing._codec import b64decode, b64encode
from protocols.signing.beckn import ALGORITHM, body_digest
from protocols.signing.detached import canonical_bytes
from protocols.signing.errors import SignatureError

ACK_HEADERS = "(created) (expires) digest (request-digest) (message-id)"


def ack_digest(ack: dict) -> str:
    unsigned = {k: val for k, val in ack.items() if k != "signature"}
    return b64encode(hashlib.blake2b(canonical_bytes(unsigned), digest_size=64).digest())


def ack_signing_string(created_s: int, expires_s: int, ack: dict, request_digest_b64: str, message_id: str) -> str:
    return (f"(created): {created_s}\n(expires): {expires_s}\ndigest: BLAKE-512={ack_digest(ack)}\n"
            f"(request-digest): BLAKE-512={request_digest_b64}\n(message-id): {message_id}")


def counter_sign(ack: dict, *, request_body: bytes, message_id: str, signer, created_s: int,
                 ttl_s: int = 60) -> dict:
    """``ack`` with its ``signature``: the receiver's proof that it got and handled the request."""
    created_s = int(created_s)
    expires_s = created_s + ttl_s
    text = ack_signing_string(created_s, expires_s, ack, body_digest(request_body), message_id)
    sig = b64encode(signer.sign(text.encode("utf-8")))
    header = (f'Signature keyId="{signer.subscriber_id}|{signer.key_id}|{ALGORITHM}",algorithm="{ALGORITHM}",'
              f'created="{created_s}",expires="{expires_s}",headers="{ACK_HEADERS}",signature="{sig}"')
    return {**ack, "signature": header}


def parse_counter_signature(value: Any) -> dict:
    """The parameters of a counter-signature (strict: every one present once, headers exact)."""
    if not isinstance(value, str) or not value.startswith("Signature "):
        raise SignatureError("header-malformed", "a counter-signature starts with 'Signature '")
    params = {}
    for part in value[len("Signature "):].split('",'):
        name, sep, val = part.partition('="')
        if not sep or name in params:
            raise SignatureError("header-malformed", f"cannot read {part[:20]!r}")
        params[name.strip()] = val.rstrip('"')
    if params.get("headers") != ACK_HEADERS:
        raise SignatureError("headers-unsupported", f"headers must be {ACK_HEADERS!r}")
    if set(params) != {"keyId", "algorithm", "created", "expires", "headers", "signature"}:
        raise SignatureError("header-malformed", "keyId, algorithm, created, expires, headers, signature")
    return params


def verify_counter_signature(ack: dict, *, request_body: bytes, message_id: str, public_key: bytes,
                             now_s: float | None = None) -> dict:
    """Check an Ack's counter-signature with the receiver's key; returns its parameters."""
    from protocols.signing.keys import ed25519_public_from_bytes, ed25519_verify

    params = parse_counter_signature(ack.get("signature"))
    created_s, expires_s = int(params["created"]), int(params["expires"])
    if now_s is not None and not created_s - 60 <= now_s <= expires_s:
        raise SignatureError("expired", "the counter-signature is outside its window")
    text = ack_signing_string(created_s, expires_s, ack, body_digest(request_body), message_id)
    sig = b64decode(params["signature"], field="signature", length=64)
    if not ed25519_verify(ed25519_public_from_bytes(public_key), sig, text.encode("utf-8")):
        raise SignatureError("bad-signature", "the counter-signature does not verify")
    return params


ONIX_ACK_HEADERS = "(created) (expires) digest request-signature"


def request_signature(authorization: Any) -> str | None:
    """The ``signature="..."`` value of a request's ``Authorization`` header, or None."""
    if not isinstance(authorization, str):
        return None
    for part in authorization.split(","):
        name, sep, val = part.strip().partition('="')
        if sep and name == "signature" and val.endswith('"'):
            return val[:-1]
    return None


def onix_ack_signature(ack_body: bytes, *, request_authorization: Any, signer, created_s: int,
                       ttl_s: int = 60) -> str | None:
    """The ``Signature`` response header beckn-onix's signvalidator checks on a synchronous Ack:
    Ed25519 over ``(created)``, ``(expires)``, the BLAKE2b-512 digest of the exact Ack bytes
    sent and ``request-signature: {the request's signature value}``. Sent beside the body's
    counter-signature so a node behind ONIX can verify the charger too; None when the request
    had no readable signature to bind to."""
    req_sig = request_signature(request_authorization)
    if req_sig is None:
        return None
    created_s = int(created_s)
    expires_s = created_s + ttl_s
    text = (f"(created): {created_s}\n(expires): {expires_s}\ndigest: BLAKE-512={body_digest(ack_body)}\n"
            f"request-signature: {req_sig}")
    sig = b64encode(signer.sign(text.encode("utf-8")))
    return (f'Signature keyId="{signer.subscriber_id}|{signer.key_id}|{ALGORITHM}",algorithm="{ALGORITHM}",'
            f'created="{created_s}",expires="{expires_s}",headers="{ONIX_ACK_HEADERS}",signature="{sig}"')
