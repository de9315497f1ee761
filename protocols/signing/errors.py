"""Errors of the signing layer.

Every refusal carries a machine ``reason`` so a binding can map it onto a Beckn NACK (HTTP 401
with ``WWW-Authenticate``) or a log line, and a human message that names what was wrong.
"""
from __future__ import annotations

from protocols.errors import ProtocolError


class SignatureError(ProtocolError):
    """A signature, key, certificate or signed document was refused.

    ``reason`` is a short kebab-case code (``signature-invalid``, ``key-unknown``,
    ``header-malformed`` ...); ``http_status`` is what an HTTP binding should answer.
    """

    code = "signature-invalid"
    http_status = 401

    def __init__(self, reason: str, message: str, **details):
        super().__init__(f"{reason}: {message}", code=self.code, **details)
        self.reason = reason


class KeyringError(ProtocolError):
    """The local key directory is missing, damaged or unsafe (readable by others)."""

    code = "keyring-invalid"

    def __init__(self, path, problem: str):
        super().__init__(f"{path}: {problem}")
        self.path = str(path)
        self.problem = problem
