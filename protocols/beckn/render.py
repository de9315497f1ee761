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
    """The synchronous answer (``ack``) and the callbacks to send after it.

    ``refusal``: for a NACK, the signed ``on_<action>`` with the ``error``, for a binding that
    has no synchronous answer (MQTT). It is made only when the request's signature verified and
    its signer is the ``bap_id`` it names; otherwise it is None and nothing may be sent anywhere
    (a forged request must not make the charger sign into a third participant's inbox). A
    search that merely did not match has none either: a charger that does not match is silent.
    """

    ack: dict
    callbacks: list = field(default_factory=list)
    http_status: int = 200
    headers: dict = field(default_factory=dict)
    refusal: Outgoing | None = None

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
        if not self.profile.identity:
            doc, message_json = self.profile.outbound(doc), None
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

    def _location(self) -> dict:
        """The charger's own place in a context: the catalog's, and any callback's whose
        request named none."""
        return {"country": {"code": self.site.place.country or m.DEFAULT_COUNTRY},
                "city": {"code": self.city_code}}

    def _callback_context(self, request_context: dict, action: str, *, message_id: str | None = None) -> dict:
        """Every callback's context, the documented one: the request's (its ``bap_uri`` and
        transaction), this charger's ids, and a ``location``."""
        return m.reply_context(request_context, action=action, timestamp_s=self.clock(), bpp_id=self.bpp_id,
                               bpp_uri=self.bpp_uri, message_id=message_id, location=self._location())

    def _reply(self, req: m.Request, action: str, message: dict, *, message_id: str | None = None,
               message_json: bytes | None = None) -> Outgoing:
        ctx = self._callback_context(req.context.raw, action, message_id=message_id)
        return self._outgoing(m.callback(ctx, message), req.context.bap_id, req.context.bap_uri,
                              message_json=message_json)

    def _refusal(self, request_context: dict, action: str, error: dict) -> Outgoing:
        """The signed ``on_<action>`` with ``error`` to the sender (``Reply.refusal``)."""
        ctx = self._callback_context(request_context, "on_" + action)
        bap_uri = request_context.get("bap_uri")
        return self._outgoing({"context": ctx, "error": error}, request_context["bap_id"],
                              bap_uri if isinstance(bap_uri, str) else None)

    def _ack(self, *callbacks: Outgoing) -> Reply:
        return Reply(m.ack(), list(callbacks))
