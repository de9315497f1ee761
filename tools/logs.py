"""Log set-up for the ``urja`` command: one event a line on stdout.

The line carries level and component (``INFO meter: ...``) so both journald (which adds its
own timestamps) and ``grep`` on a serial console work. Timestamps are UTC with milliseconds.
"""
from __future__ import annotations

import logging
import sys
import time


class _LineFormatter(logging.Formatter):
    converter = time.gmtime

    def format(self, record: logging.LogRecord) -> str:
        component = record.name.removeprefix("urja.") or "urja"
        stamp = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
        text = record.getMessage().replace("\n", " | ")
        line = f"{stamp}.{int(record.msecs):03d}Z {record.levelname} {component}: {text}"
        if record.exc_info:
            line += " | " + self.formatException(record.exc_info).replace("\n", " | ")
        return line


class _StdoutHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stdout`` is at the moment of the event.

    A handler that captured the stream object at set-up keeps writing to it after it was
    closed or replaced (a test's captured stdout, a daemon's redirected one), and loses lines.
    """

    def __init__(self):
        super().__init__(sys.stdout)

    @property
    def stream(self):
        return sys.stdout

    @stream.setter
    def stream(self, value):
        pass


def setup_logging(level: str = "INFO", stream=None) -> None:
    handler = logging.StreamHandler(stream) if stream is not None else _StdoutHandler()
    handler.setFormatter(_LineFormatter())
    root = logging.getLogger("urja")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
    # pymodbus logs every retry at ERROR; the driver classifies and reports faults itself.
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
