"""The agent package's single error base.

Errors carry a machine ``code`` so that protocol bindings can map them onto their own
error vocabularies (Beckn NACK codes, OCPI status codes) without parsing messages.
Kept free of CPython-only modules so the portable core can import it under MicroPython.
"""


class AgentError(Exception):
    code = "agent-error"

    def __init__(self, message, code=None, **details):
        super().__init__(message)
        if code is not None:
            self.code = code
        self.details = details
