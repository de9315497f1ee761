"""The journal's errors: one ``JournalError`` base, each case with a machine ``code``."""
from __future__ import annotations

from agent.core.errors import AgentError


class JournalError(AgentError):
    code = "journal-error"


class UnknownSession(JournalError):
    code = "journal-unknown-session"


class SessionExists(JournalError):
    code = "journal-session-exists"


class SessionClosed(JournalError):
    code = "journal-session-closed"


class ReceiptConflict(JournalError):
    code = "journal-receipt-conflict"


class UnknownMessage(JournalError):
    code = "journal-unknown-message"


class InvalidValue(JournalError):
    code = "journal-invalid-value"


class SchemaError(JournalError):
    code = "journal-schema"


class StorageError(JournalError):
    """The file could not be opened, is not a journal, or the disk refused a write."""

    code = "journal-storage"


class JournalHeld(StorageError):
    """Another process (a running agent) holds the journal: not a fault of the configuration."""

    code = "journal-held"
