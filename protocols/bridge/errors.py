"""The bridge's one error base."""
from __future__ import annotations

from protocols.errors import ProtocolError


class BridgeError(ProtocolError):
    code = "bridge-error"
