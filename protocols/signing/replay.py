"""Replay protection: each message id is remembered for as long as its signature is valid.

A network that retries delivers the same message twice; that must get the same answer twice
(idempotent), not a second charging session. A message id reused with a *different* body is
either a bug or an attack and is refused. Memory is bounded: when the table is full of
still-valid entries the new message is refused (``replay-cache-full``) rather than evicting a
live entry, because forgetting a live id would let its replay through; the sender retries.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from typing import Any, Callable

from protocols.signing.errors import SignatureError


@dataclass
class Admission:
    """Result of ``ReplayGuard.admit``: process a fresh message, or resend ``answer``.

    ``answer`` is ``None`` for a duplicate whose first copy is still being processed.
    """

    fresh: bool
    answer: Any = None


@dataclass
class _Entry:
    digest: str
    until_s: float
    answer: Any = None


class ReplayGuard:
    """Remembers message ids until their signature expires (at most ``max_window_s``)."""

    def __init__(self, *, clock: Callable[[], float], max_entries: int = 10_000, max_window_s: int = 3600):
        if max_entries < 1:
            raise ValueError("max_entries must be at least 1")
        self.clock = clock
        self.max_entries = max_entries
        self.max_window_s = max_window_s
        self._entries: OrderedDict[str, _Entry] = OrderedDict()

    def __len__(self) -> int:
        return len(self._entries)

    def _purge(self, now_s: float) -> None:
        expired = [mid for mid, e in self._entries.items() if e.until_s <= now_s]
        for mid in expired:
            del self._entries[mid]

    def admit(self, message_id: str, digest: str, *, until_s: float) -> Admission:
        """Register a verified message; raise ``SignatureError`` for a conflicting replay."""
        if not isinstance(message_id, str) or not message_id or len(message_id) > 256:
            raise SignatureError("message-id-invalid", "message_id must be a non-empty string of at most 256 characters")
        now_s = self.clock()
        entry = self._entries.get(message_id)
        if entry is not None and entry.until_s > now_s:
            if entry.digest != digest:
                raise SignatureError(
                    "replay-conflict", f"message_id {message_id!r} was already used for a different body"
                )
            return Admission(fresh=False, answer=entry.answer)
        if entry is not None:
            del self._entries[message_id]
        if len(self._entries) >= self.max_entries:
            self._purge(now_s)
            if len(self._entries) >= self.max_entries:
                raise SignatureError("replay-cache-full", f"{self.max_entries} messages in flight; retry later")
        until_s = min(until_s, now_s + self.max_window_s)
        self._entries[message_id] = _Entry(digest, max(until_s, now_s + 1))
        return Admission(fresh=True)

    def admit_verified(self, message_id: str, verified) -> Admission:
        """Admit a ``beckn.VerifiedMessage``: remembered until its sender's signature expires.

        Call only after verification succeeded, so a forged or malformed message never takes
        a slot (nothing is stored for it).
        """
        return self.admit(message_id, verified.digest, until_s=verified.sender.expires_s)

    def settle(self, message_id: str, answer: Any) -> None:
        """Store the answer sent for a fresh message so a duplicate gets the same one."""
        entry = self._entries.get(message_id)
        if entry is not None:
            entry.answer = answer

    def forget(self, message_id: str) -> None:
        """Drop an entry whose processing failed before any answer left, so a retry is fresh."""
        self._entries.pop(message_id, None)
