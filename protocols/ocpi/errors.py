"""OCPI errors: each carries the OCPI status code and the HTTP status it travels with.

Handlers raise these and one middleware turns them into the response envelope, so a refusal can
never forget its status code or leak a stack trace to a roaming partner.
"""
from __future__ import annotations

from protocols.errors import ProtocolError

# OCPI 2.2.1 status codes (status_codes.asciidoc).
SUCCESS = 1000
CLIENT_ERROR = 2000
INVALID_PARAMETERS = 2001
NOT_ENOUGH_INFORMATION = 2002
UNKNOWN_LOCATION = 2003
UNKNOWN_TOKEN = 2004
SERVER_ERROR = 3000
UNABLE_TO_USE_CLIENT_API = 3001
UNSUPPORTED_VERSION = 3002
NO_MATCHING_ENDPOINTS = 3003


class OcpiError(ProtocolError):
    """A request we refuse or a partner we cannot use; ``status_code`` is the OCPI code."""

    code = "ocpi-error"

    def __init__(self, status_code: int, message: str, *, http_status: int = 400, **details):
        super().__init__(message, code=f"ocpi-{status_code}", **details)
        self.status_code = status_code
        self.http_status = http_status
        self.message = message


class Unauthorized(OcpiError):
    def __init__(self, message: str):
        super().__init__(CLIENT_ERROR, message, http_status=401)


class MethodNotAllowed(OcpiError):
    def __init__(self, message: str):
        super().__init__(CLIENT_ERROR, message, http_status=405)


class PartnerError(OcpiError):
    """The other party's API failed us (unreachable, wrong answer, missing version/endpoint)."""

    def __init__(self, status_code: int, message: str, **details):
        super().__init__(status_code, message, http_status=400, **details)
