"""The protocol profile a ``Bpp`` speaks on the wire; Beckn 1.1 is the identity.

Why a seam here: the provider logic (admission, contract and order handlers, bookings,
receipts) reads and writes Beckn 1.1 documents. A newer protocol version is a profile that
maps its messages to those documents on the way in (after the signature over the exact bytes
received has been checked) and back on the way out (before the reply is signed), so both
versions share every handler, tariff and trust check and neither is a copy of the other.
``protocols.beckn2.profile.Beckn2Profile`` is the 2.0 one.
"""
from __future__ import annotations

from contextvars import ContextVar

from protocols.beckn.vocabulary import REQUEST_ACTIONS

# The paths of the request being handled, so a refusal names the field the sender wrote.
CURRENT_PATHS: ContextVar = ContextVar("beckn_request_paths", default=None)


class Beckn11Profile:
    """Beckn 1.1: messages are what the provider logic reads and writes."""

    name = "beckn-1.1"
    actions = REQUEST_ACTIONS
    catalog_action = "on_search"
    identity = True

    def inbound(self, action: str, doc: dict, body: bytes, headers: dict) -> tuple[str, dict, object]:
        return action, doc, None

    def outbound(self, doc: dict) -> dict:
        return doc

    def handler_action(self, action: str) -> str:
        """The provider logic's name for an endpoint's action."""
        return action

    def loose(self, doc: dict) -> dict:
        """A message the profile could not read, reduced to what addresses a refusal."""
        return doc

    def error_path(self, path: str | None) -> str | None:
        paths = CURRENT_PATHS.get()
        return paths.v2(path) if paths is not None and path else path

    def wire_ack(self, bpp, reply, body: bytes) -> dict:
        return reply.ack

    def wire_status(self, reply) -> int:
        """The HTTP status of a synchronous answer."""
        return reply.http_status

    def wire_headers(self, bpp, ack_bytes: bytes, request_headers: dict) -> dict:
        """Response headers a profile adds to the synchronous answer."""
        return {}


BECKN_11 = Beckn11Profile()
