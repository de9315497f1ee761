"""A latch that survives a full disk: a fixed-size file written in place, its space taken at boot.

When the file system under the journal fills, SQLite cannot write the fault file either (a new
row, a WAL frame: both need new blocks), and a latched ``command_failed`` lived in memory only
until the next restart. This slot is created at its full size when the fault store opens, while
there is room, and every later write overwrites those same bytes (``pwrite`` at offset 0, then
``fsync``), so recording a latch needs no new space. It holds one fault: the one SQLite could
not record. A local reset marks it cleared, never empties it, so the running agent can tell
"cleared" from "never there".
"""
from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass

log = logging.getLogger("urja.journal")

SLOT_BYTES = 4096


@dataclass(frozen=True)
class SlotFault:
    code: str
    detail: str
    latched_s: float
    cleared_s: float | None = None
    cleared_by: str | None = None


class LatchSlot:
    """``open(path)`` takes the space; ``write``/``read``/``clear`` the one fault it can hold."""

    def __init__(self, fd: int, path: str):
        self._fd = fd
        self.path = path

    @classmethod
    def open(cls, path: str) -> "LatchSlot | None":
        """The slot at ``path``, created at full size if missing; None when even that fails."""
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o644)
        except OSError as exc:
            log.error("latch slot %s cannot be opened: %s", path, exc.strerror or exc)
            return None
        try:
            if os.fstat(fd).st_size < SLOT_BYTES:
                os.posix_fallocate(fd, 0, SLOT_BYTES) if hasattr(os, "posix_fallocate") else None
                os.pwrite(fd, b" " * SLOT_BYTES, 0)
                os.fsync(fd)
        except OSError as exc:
            os.close(fd)
            log.error("latch slot %s: no room to reserve %d bytes: %s", path, SLOT_BYTES, exc.strerror or exc)
            return None
        return cls(fd, path)

    def read(self) -> SlotFault | None:
        try:
            raw = os.pread(self._fd, SLOT_BYTES, 0).strip(b" \x00\n")
            if not raw:
                return None
            doc = json.loads(raw)
            return SlotFault(code=str(doc["code"]), detail=str(doc["detail"]), latched_s=float(doc["latched_s"]),
                             cleared_s=doc.get("cleared_s"), cleared_by=doc.get("cleared_by"))
        except (OSError, ValueError, KeyError, TypeError) as exc:
            # An unreadable slot is a latch we cannot vouch for: keep the charger out of order.
            return SlotFault(code="latch_slot_unreadable", detail=f"{self.path}: {exc}", latched_s=0.0)

    def write(self, fault: SlotFault) -> None:
        """Overwrite the slot in place; durable on return (``OSError`` if even that fails)."""
        doc = {"code": fault.code, "detail": fault.detail[:1024], "latched_s": fault.latched_s,
               "cleared_s": fault.cleared_s, "cleared_by": fault.cleared_by}
        data = json.dumps(doc).encode()[:SLOT_BYTES - 1]
        os.pwrite(self._fd, data + b" " * (SLOT_BYTES - len(data)), 0)
        os.fsync(self._fd)

    def close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1


# Below this much free space where the journal lives, the agent does not start: a session it
# began could not be recorded or billed. A session's rows are a few KiB; this is room for days.
MIN_FREE_BYTES = 1 << 20


def free_bytes(folder) -> int:
    """Bytes an unprivileged writer may still use on the file system holding ``folder``."""
    st = os.statvfs(folder)
    return st.f_bavail * st.f_frsize
