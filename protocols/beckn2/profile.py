"""Beckn 2.0 LTS as a profile of the shared provider logic (``protocols.beckn.profile``).

In: the request's signature has been checked over the exact bytes received; its 2.0 body is
read into the 1.1 document the provider logic knows (``codec.request_v1``), carrying the
request's BLAKE2b-512 digest and message id in the context so every callback that answers it
states ``requestDigest``. Out: every callback and unsolicited message is turned into 2.0
(``codec.callback_v2``) before it is signed. The synchronous answer is a 2.0 Ack with the
charger's counter-signature (``ack``), errors in the 2.0 model naming 2.0 paths.
"""
from __future__ import annotations

import base64
import binascii

from protocols.beckn.profile import Beckn11Profile
from protocols.beckn.tags import signed_tag
from protocols.beckn.vocabulary import TAG_CERTIFICATE
from protocols.beckn2 import vocabulary as v
from protocols.beckn2.ack import counter_sign, onix_ack_signature
from protocols.beckn2.cds_wire import message_id_of
from protocols.beckn2.codec import DIGEST_FOR, DIGEST_KEY, V2_KEYS, callback_v2, error_v2, request_v1
from protocols.signing.beckn import CERTIFICATE_HEADER, body_digest
from protocols.signing.detached import load_json
from protocols.signing.errors import SignatureError


def _header(headers: dict, name: str) -> str | None:
    for k, val in (headers or {}).items():
        if isinstance(k, str) and k.lower() == name.lower() and isinstance(val, str):
            return val
    return None


def _certificate_from_header(headers: dict) -> dict | None:
    """The buyer's agency certificate sent beside a discover (whose body has no place for it)."""
    text = _header(headers, CERTIFICATE_HEADER)
    if text is None or len(text) > 24 * 1024:
        return None
    try:
        doc = load_json(base64.b64decode(text, validate=True), max_bytes=16 * 1024)
    except (binascii.Error, ValueError, SignatureError):
        return None
    return doc if isinstance(doc, dict) else None


class Beckn2Profile(Beckn11Profile):
    name = v.PROFILE_V2
    actions = v.REQUEST_ACTIONS
    catalog_action = "on_discover"
    identity = False

    def __init__(self, *, network_id: str | None = v.DEFAULT_NETWORK_ID, bpp_id: str | None = None,
                 bpp_uri: str | None = None, ack_ttl_s: int = 60):
        self.network_id = network_id
        self.bpp_id = bpp_id
        self.bpp_uri = bpp_uri
        self.ack_ttl_s = ack_ttl_s

    def inbound(self, action: str, doc: dict, body: bytes, headers: dict):
        v1_action, v1_doc, paths = request_v1(action, doc, network_id=self.network_id, bpp_id=self.bpp_id)
        ctx = v1_doc["context"]
        ctx[DIGEST_KEY] = "BLAKE-512=" + body_digest(body)
        ctx[DIGEST_FOR] = ctx.get("message_id")
        if action == "discover":
            cert = _certificate_from_header(headers)
            if cert is not None:
                v1_doc["message"]["intent"]["tags"] = [signed_tag(TAG_CERTIFICATE, cert)]
        return v1_action, v1_doc, paths

    def handler_action(self, action: str) -> str:
        return v.V2_TO_V1.get(action, action)

    def loose(self, doc: dict) -> dict:
        """The context of a 2.0 message that was refused unread, with 1.1 keys, unchecked: enough
        to address the signed refusal once its signature shows who sent it."""
        ctx = doc.get("context") if isinstance(doc, dict) else None
        if not isinstance(ctx, dict):
            return {}
        out = {V2_KEYS[k]: val for k, val in ctx.items() if k in V2_KEYS and isinstance(val, str)}
        for k in ("domain", "timestamp"):
            if isinstance(ctx.get(k), str):
                out[k] = ctx[k]
        return {"context": out}

    def outbound(self, doc: dict) -> dict:
        return callback_v2(doc, network_id=self.network_id, bpp_id=self.bpp_id, bpp_uri=self.bpp_uri)

    def wire_ack(self, bpp, reply, body: bytes) -> dict:
        """The 2.0 Ack for a 1.1 ACK/NACK: status, error (2.0 model), counter-signature. A
        discover that does not match (the one NACK 1.1 answers with 200) is an
        ``AckNoCallback``: received, no callback follows, the error says why."""
        ack = reply.ack
        no_callback = not reply.acked and reply.http_status == 200
        out: dict = {"status": "ACK" if reply.acked or no_callback else "NACK"}
        if isinstance(ack.get("error"), dict):
            out["error"] = error_v2(ack["error"])
        mid = request_message_id(body) if len(body) <= bpp.max_body_bytes else ""
        return counter_sign(out, request_body=body, message_id=mid, signer=bpp._current_signer(),
                            created_s=int(bpp.clock()), ttl_s=self.ack_ttl_s)

    def wire_status(self, reply) -> int:
        """2.0 answers a request that will get no callback (a discover this charger does not
        match) with 409 and an ``AckNoCallback``; everything else as 1.1 does."""
        if not reply.acked and reply.http_status == 200:
            return 409
        return reply.http_status

    def wire_headers(self, bpp, ack_bytes: bytes, request_headers: dict) -> dict:
        sig = onix_ack_signature(ack_bytes, request_authorization=_header(request_headers, "Authorization"),
                                 signer=bpp._current_signer(), created_s=int(bpp.clock()), ttl_s=self.ack_ttl_s)
        return {"Signature": sig} if sig is not None else {}


def request_message_id(body: bytes) -> str:
    """The request's ``context.messageId`` when it can be named in a counter-signature, else
    empty (``cds_wire.message_id_of``, what the catalog service and publisher name too)."""
    return message_id_of(bytes(body))


def profile_for(policy, *, bpp_id: str, bpp_uri: str):
    """The wire profile a site's ``[network]`` policy names: None for Beckn 1.1 (the ``Bpp``'s
    default), else the 2.0 profile on the policy's network."""
    if getattr(policy, "profile", v.PROFILE_V1) != v.PROFILE_V2:
        return None
    return Beckn2Profile(network_id=policy.network_id, bpp_id=bpp_id, bpp_uri=bpp_uri)
