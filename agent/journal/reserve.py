"""Room kept for the journal's last words: a file of reserved blocks, given back when the disk fills.

When the file system under the journal fills in the middle of a session, the checkpoint that
fails is not the worst of it: the session's end and its receipt cannot be written either, so
the session would stay open until the next boot (the buyer untold, the money waiting). The
journal keeps ``NAME.reserve`` beside it, allocated when it opens while there is room. The
first write that fails for want of space deletes it and is tried again once, on the blocks
it gave back; whoever listens (the runtime) is told, stops the session at once so its end and
receipt are written in that room, and stops selling until the disk has room and a technician
resets the charger. At the next start the reserve is allocated again.
"""
from __future__ import annotations

import logging
import os

log = logging.getLogger("urja.journal")

# A session's end, its receipt (a few KiB), their WAL frames and the fault latch's row: 256 KiB
# is room for that many times over, and a quarter of what the agent needs free to start.
RESERVE_BYTES = 256 * 1024


def disk_full(exc: BaseException) -> bool:
    """Whether a failed write failed for want of space (SQLite's SQLITE_FULL, or ENOSPC)."""
    while exc is not None:
        if "disk is full" in str(exc) or getattr(exc, "errno", None) == 28:
            return True
        exc = exc.__cause__
    return False


class SpaceReserve:
    """``open(path)`` takes the room; ``release()`` gives it back, once."""

    def __init__(self, path: str, size_bytes: int):
        self.path = path
        self.size_bytes = size_bytes
        self.released = False

    @classmethod
    def open(cls, path: str, size_bytes: int = RESERVE_BYTES) -> "SpaceReserve | None":
        """The reserve at ``path``, allocated at full size; None (and a log line) when there is no room."""
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT | getattr(os, "O_CLOEXEC", 0), 0o600)
        except OSError as exc:
            log.error("journal reserve %s cannot be created: %s", path, exc.strerror or exc)
            return None
        try:
            if os.fstat(fd).st_size < size_bytes:
                # Written, not only sized: a sparse file would hold no blocks to give back.
                chunk = b"\0" * 65536
                for offset in range(0, size_bytes, len(chunk)):
                    os.pwrite(fd, chunk[:size_bytes - offset], offset)
                os.fsync(fd)
        except OSError as exc:
            log.error("journal reserve %s: no room to keep %d bytes: %s", path, size_bytes, exc.strerror or exc)
            os.close(fd)
            _remove(path)
            return None
        os.close(fd)
        return cls(path, size_bytes)

    def release(self) -> bool:
        """Give the reserved blocks back to the file system; True the first time."""
        if self.released:
            return False
        self.released = True
        _remove(self.path)
        return True


def _remove(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.error("journal reserve %s cannot be removed: %s", path, exc.strerror or exc)
