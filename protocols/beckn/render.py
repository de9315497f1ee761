"""What leaves the charger: signed replies and callbacks.

Why every message is signed here and afresh: a reply, a callback or an unsolicited message
carries its own BECKN-006 signature window (created/expires from now), and a message queued
while its receiver was away is signed again when it is finally sent.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from protocols.beckn import messages as m
from protocols.signing.beckn import AUTHORIZATION, sign_body
from protocols.signing.detached import sign_object
from protocols.signing.keys import signer_at


@dataclass
class Outgoing:
    """A signed message to deliver: ``body`` is sent byte for byte with ``headers``."""

    action: str
    body: bytes
    headers: dict
    receiver_id: str | None
    receiver_uri: str | None
    ttl_s: int | None = None  # the body's context.ttl, so a binding need not parse the body for it


@dataclass
class Reply:
    """The synchronous answer (``ack``) and the callbacks to send after it."""

    ack: dict
    callbacks: list = field(default_factory=list)
    http_status: int = 200
    headers: dict = field(default_factory=dict)

    @property
    def acked(self) -> bool:
        return self.ack.get("message", {}).get("ack", {}).get("status") == "ACK"


class SignedRepliesMixin:
    """Signing for the ``Bpp``: ``_signer`` is an ``Ed25519Signer`` or a ``Keyring``."""

    def _current_signer(self):
        return signer_at(self._signer)(self.clock())

    def _outgoing(self, doc: dict, receiver_id: str | None, receiver_uri: str | None, *,
                  message_json: bytes | None = None) -> Outgoing:
        """Sign ``doc`` afresh (created/expires from now). ``message_json``, when given, is
        ``m.encode(doc["message"])`` already made: compact JSON nests, so the body is the same
        bytes ``m.encode(doc)`` would give, without encoding the unchanged catalog again."""
        if message_json is None:
            body = m.encode(doc)
        else:
            body = b'{"context":' + m.encode(doc["context"]) + b',"message":' + message_json + b"}"
        ttl = doc["context"].get("ttl")
        return Outgoing(doc["context"]["action"], body, self.sign_headers(body), receiver_id, receiver_uri,
                        m.parse_duration(ttl, "context.ttl") if ttl is not None else None)

    def sign_headers(self, body: bytes) -> dict:
        """Fresh signed headers for ``body`` (a message queued while its receiver was away is
        signed again when it is finally sent, so its signature window is still open)."""
        created_s = int(self.clock())
        auth = sign_body(body, self._current_signer(), created_s=created_s,
                         expires_s=created_s + self.signature_ttl_s)
        return {AUTHORIZATION: auth, "Content-Type": "application/json"}

    def _sign_doc(self, doc: dict, signer=None) -> dict:
        return sign_object(doc, signer or self._current_signer())

    def _own_certificate_tag(self) -> dict | None:
        """The charger's certificate as a tag: canonical JSON computed once per certificate."""
        cert = self.certificate
        if cert is None:
            return None
        held = self._certificate_tag
        if held is None or held[0] is not cert:
            held = self._certificate_tag = (cert, m.signed_tag(m.TAG_CERTIFICATE, cert))
        return held[1]

    def _reply(self, req: m.Request, action: str, message: dict, *, message_id: str | None = None,
               message_json: bytes | None = None) -> Outgoing:
        ctx = m.reply_context(req.context.raw, action=action, timestamp_s=self.clock(), bpp_id=self.bpp_id,
                              bpp_uri=self.bpp_uri, message_id=message_id)
        return self._outgoing(m.callback(ctx, message), req.context.bap_id, req.context.bap_uri,
                              message_json=message_json)

    def _ack(self, *callbacks: Outgoing) -> Reply:
        return Reply(m.ack(), list(callbacks))
