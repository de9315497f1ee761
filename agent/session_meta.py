"""What the runtime knows of a session beyond the core's view, and the connector it runs on.

The core knows a session by its id, state and limits; who asked for it (source, reference,
token), what was paid and accepted, its start and its live pricer are the runtime's, and the
views, actions and billing all read them here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

CONNECTOR_ID = "1"
MAX_FINISHED_VIEWS = 100  # finished sessions kept in memory (older ones come from the journal)


@dataclass(slots=True, kw_only=True)
class SessionMeta:
    """A field set by mistake under another name must fail, not be dropped: hence a dataclass."""

    source: str | None = None
    reference: str | None = None
    token: str | None = None
    paid_paise: int | None = None
    acceptance_digest: str | None = None
    start_s: float | None = None
    start_wh: int | None = None
    pricer: Any = None
    reservation_id: str | None = None
    limits: dict | None = None
    auth_id: str | None = None
    tariff_digest: str | None = None
