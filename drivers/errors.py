"""The drivers package's single error base."""


class DriverError(Exception):
    """Base of every error a driver raises; ``code`` is a stable machine-readable name."""

    code = "driver-error"

    def __init__(self, message: str, *, code: str | None = None, **details):
        super().__init__(message)
        if code is not None:
            self.code = code
        self.details = details
