"""The protocols package's single error base."""


class ProtocolError(Exception):
    """Base of every protocol error; ``code`` maps onto Beckn NACK codes or OCPI status codes."""

    code = "protocol-error"

    def __init__(self, message: str, *, code: str | None = None, **details):
        super().__init__(message)
        if code is not None:
            self.code = code
        self.details = details
