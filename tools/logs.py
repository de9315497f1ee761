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


def setup_logging(level: str = "INFO", stream=None) -> None:
    handler = logging.StreamHandler(stream or sys.stdout)
    handler.setFormatter(_LineFormatter())
    root = logging.getLogger("urja")
    root.handlers[:] = [handler]
    root.setLevel(level.upper())
    root.propagate = False
    # pymodbus logs every retry at ERROR; the driver classifies and reports faults itself.
    logging.getLogger("pymodbus").setLevel(logging.CRITICAL)
