"""The 2.0 Ack the provider sends: ``status``, the charger's CounterSignature and, for a NACK,
the error; and the beckn-onix ``Signature`` response header beside it.

The counter-signature is ``protocols.signing.countersign`` (the spec's signing string over the
Ack without its ``signature`` in RFC 8785 form, the exact request bytes and the request's
``messageId``), the one implementation the catalog service, the publisher and the node use
too, so what the charger signs is what they verify. A request too broken to name a message id
is counter-signed with an empty one.

beckn-onix sends its counter-signature in a ``Signature`` response header over a different
string; the two do not verify each other (``docs/network-protocol.md``, "Counter-signature"),
so the charger sends both.
"""
from __future__ import annotations

from typing import Any

from protocols.signing import countersign
from protocols.signing._codec import b64encode
from protocols.signing.beckn import ALGORITHM, body_digest

ACK_HEADERS = countersign.COUNTER_SIGNED_HEADERS


def counter_sign(ack: dict, *, request_body: bytes, message_id: str, signer, created_s: int,
                 ttl_s: int = 60) -> dict:
    """``ack`` with its ``signature``, valid for ``ttl_s`` from ``created_s``."""
    return countersign.counter_sign(ack, request_body=request_body, message_id=message_id, signer=signer,
                                    created_s=int(created_s), expires_s=int(created_s) + ttl_s)


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
