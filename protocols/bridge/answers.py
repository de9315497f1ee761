"""The bridge's synchronous answers: the one place it signs as itself towards a buyer.

A Beckn 2.0 ``Ack`` carries a CounterSignature by *the receiver of the HTTP request*
(``beckn.yaml``, CounterSignature: "Signer: the response receiver"): over the bridge that is
the bridge, which is the server the buyer's request reached. It proves the bridge took these
exact bytes (``(request-digest)``) for this ``messageId`` and forwarded them, no more; what the
charger decides arrives in its own ``on_*``, signed by the charger. The signing string::

    (created): {unix}
    (expires): {unix}
    digest: BLAKE-512={BLAKE2b-512 of the Ack without "signature", RFC 8785 canonical JSON}
    (request-digest): BLAKE-512={BLAKE2b-512 of the exact request body}
    (message-id): {context.messageId of the request}

A Beckn 1.1 request gets the 1.1 ``{"message": {"ack": ...}}`` answer, which is unsigned.
"""
from __future__ import annotations

import hashlib

from protocols.beckn.errors import CODE_TEXT
from protocols.signing._codec import b64encode
from protocols.signing.beckn import ALGORITHM, body_digest
from protocols.signing.detached import canonical_bytes

COUNTER_SIGNED_HEADERS = "(created) (expires) digest (request-digest) (message-id)"
COUNTER_SIGNATURE_TTL_S = 300
MAX_ERROR_TEXT = 500


def counter_signing_string(created_s: int, expires_s: int, ack: dict, request_body: bytes, message_id: str) -> str:
    unsigned = {k: v for k, v in ack.items() if k != "signature"}
    digest = b64encode(hashlib.blake2b(canonical_bytes(unsigned), digest_size=64).digest())
    return (f"(created): {created_s}\n(expires): {expires_s}\ndigest: BLAKE-512={digest}\n"
            f"(request-digest): BLAKE-512={body_digest(bytes(request_body))}\n"
            f"(message-id): {message_id.replace(chr(10), '')}")


def v2_answer(*, status: str, request_body: bytes, message_id: str, signer, now_s: float,
              error: tuple[str, str] | None = None) -> dict:
    """``Ack`` (or NACK, or AckNoCallback with ``error``) counter-signed by the bridge."""
    ack: dict = {"status": status}
    if error is not None:
        ack["error"] = {"errorCode": error[0], "errorMessage": error[1][:MAX_ERROR_TEXT]}
    created = int(now_s)
    expires = created + COUNTER_SIGNATURE_TTL_S
    text = counter_signing_string(created, expires, ack, request_body, message_id)
    signature = b64encode(signer.sign(text.encode("utf-8")))
    ack["signature"] = (f'Signature keyId="{signer.subscriber_id}|{signer.key_id}|{ALGORITHM}",'
                        f'algorithm="{ALGORITHM}",created="{created}",expires="{expires}",'
                        f'headers="{COUNTER_SIGNED_HEADERS}",signature="{signature}"')
    return ack


def v1_answer(*, error: tuple[str, str] | None = None, path: str | None = None) -> dict:
    if error is None:
        return {"message": {"ack": {"status": "ACK"}}}
    err = {"code": error[0], "message": error[1][:MAX_ERROR_TEXT]}
    if path:
        err["paths"] = path
    return {"message": {"ack": {"status": "NACK"}}, "error": err}


def code_text(code: str) -> str:
    return CODE_TEXT.get(code, "Error")
