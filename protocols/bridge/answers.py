"""The bridge's synchronous answers: the one place it signs as itself towards a buyer.

A Beckn 2.0 ``Ack`` carries a CounterSignature by *the receiver of the HTTP request*
(``beckn.yaml``, CounterSignature: "Signer: the response receiver"): over the bridge that is
the bridge, which is the server the buyer's request reached. It proves the bridge took these
exact bytes (``(request-digest)``) for this ``messageId`` and forwarded them, no more; what the
charger decides arrives in its own ``on_*``, signed by the charger. The signature is the one
charger makes (``protocols.beckn2.ack``, over ``protocols.signing.countersign``), so a buyer verifies a
bridge's Ack exactly as it verifies a charger's.

A Beckn 1.1 request gets the 1.1 ``{"message": {"ack": ...}}`` answer, which is unsigned.
"""
from __future__ import annotations

from protocols.beckn2.ack import counter_sign

COUNTER_SIGNATURE_TTL_S = 300
MAX_ERROR_TEXT = 500


def v2_answer(*, status: str, request_body: bytes, message_id: str, signer, now_s: float,
              error: tuple[str, str] | None = None) -> dict:
    """``Ack`` (or NACK, or AckNoCallback with ``error``) counter-signed by the bridge."""
    ack: dict = {"status": status}
    if error is not None:
        ack["error"] = {"errorCode": error[0], "errorMessage": error[1][:MAX_ERROR_TEXT]}
    return counter_sign(ack, request_body=request_body, message_id=message_id, signer=signer,
                        created_s=int(now_s), ttl_s=COUNTER_SIGNATURE_TTL_S)


def v1_answer(*, error: tuple[str, str] | None = None, path: str | None = None) -> dict:
    if error is None:
        return {"message": {"ack": {"status": "ACK"}}}
    err = {"code": error[0], "message": error[1][:MAX_ERROR_TEXT]}
    if path:
        err["paths"] = path
    return {"message": {"ack": {"status": "NACK"}}, "error": err}
