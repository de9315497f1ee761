"""Beckn 2.0 counter-signatures: the receiver's signed receipt inside the synchronous Ack.

``beckn.yaml`` (CounterSignature) gives the signing string::

    (created): {created}
    (expires): {expires}
    digest: BLAKE-512={digest of the Ack body}
    (request-digest): BLAKE-512={digest of the inbound request body}
    (message-id): {context.messageId of the request}

and puts the value, in the ``Signature`` wire format, in ``Ack.signature``. An Ack cannot
digest a body that contains its own signature, so the "Ack body" digested here is the Ack
object without its ``signature`` member, in its RFC 8785 canonical form: sender and receiver
arrive at the same bytes whatever spacing or key order the JSON on the wire used. The request
digest is over the exact request bytes, as the request's own signature is.

The checks a verifier applies (window, key lookup, key validity) are the request signature's:
``Verifier.verify_parsed``.
"""
from __future__ import annotations

from typing import Any

import rfc8785

from protocols.signing._codec import b64encode
from protocols.signing.beckn import (
    ALGORITHM,
    VerifiedSignature,
    Verifier,
    body_digest,
    parse_signature_header,
)
from protocols.signing.errors import SignatureError
from protocols.signing.keys import Ed25519Signer

COUNTER_SIGNED_HEADERS = "(created) (expires) digest (request-digest) (message-id)"


def ack_digest(ack: dict) -> str:
    """BLAKE2b-512 of the Ack without ``signature``, canonical JSON (RFC 8785), base64."""
    if not isinstance(ack, dict):
        raise SignatureError("ack-malformed", "an Ack must be a JSON object")
    try:
        canonical = rfc8785.dumps({k: v for k, v in ack.items() if k != "signature"})
    except (rfc8785.CanonicalizationError, TypeError, ValueError) as exc:
        raise SignatureError("ack-malformed", f"Ack cannot be canonicalised: {exc}") from None
    return body_digest(canonical)


def counter_signing_string(created_s: int, expires_s: int, ack_digest_b64: str, request_digest_b64: str,
                           message_id: str) -> str:
    if "\n" in message_id:
        raise SignatureError("message-id-invalid", "a message id cannot contain a line break")
    return (f"(created): {created_s}\n(expires): {expires_s}\ndigest: BLAKE-512={ack_digest_b64}\n"
            f"(request-digest): BLAKE-512={request_digest_b64}\n(message-id): {message_id}")


def counter_sign(ack: dict, *, request_body: bytes, message_id: str, signer: Ed25519Signer,
                 created_s: int, expires_s: int) -> dict:
    """``ack`` with its ``signature``: the receiver's proof that it took ``request_body``."""
    created_s, expires_s = int(created_s), int(expires_s)
    if expires_s <= created_s:
        raise SignatureError("bad-window", f"expires ({expires_s}) must be after created ({created_s})")
    unsigned = {k: v for k, v in ack.items() if k != "signature"}
    text = counter_signing_string(created_s, expires_s, ack_digest(unsigned), body_digest(bytes(request_body)),
                                  message_id)
    signature = b64encode(signer.sign(text.encode("utf-8")))
    unsigned["signature"] = (
        f'Signature keyId="{signer.subscriber_id}|{signer.key_id}|{ALGORITHM}",algorithm="{ALGORITHM}",'
        f'created="{created_s}",expires="{expires_s}",headers="{COUNTER_SIGNED_HEADERS}",signature="{signature}"'
    )
    return unsigned


async def verify_counter_signature(ack: Any, *, request_body: bytes, message_id: str,
                                   verifier: Verifier) -> VerifiedSignature:
    """Check an Ack's counter-signature against the request it answers; ``SignatureError``
    names what was wrong (no signature, another request, another message, a bad key ...)."""
    if not isinstance(ack, dict):
        raise SignatureError("ack-malformed", "an Ack must be a JSON object")
    params = parse_signature_header(ack.get("signature"), headers=COUNTER_SIGNED_HEADERS)
    digest = ack_digest(ack)
    text = counter_signing_string(params.created_s, params.expires_s, digest, body_digest(bytes(request_body)),
                                  message_id)
    return await verifier.verify_parsed(params, text.encode("utf-8"), digest=digest)
