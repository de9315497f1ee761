"""What the journal hands back (sessions, orders, outbox entries) and its checkpoint policy."""
from __future__ import annotations

from dataclasses import dataclass

from agent.journal.errors import InvalidValue
from agent.journal.values import is_number


@dataclass(frozen=True, kw_only=True)
class CheckpointPolicy:
    """How often a running session's meter reading is written.

    A reading is written when ``interval_s`` has passed since the last written one, or
    sooner when at least ``step_wh`` more energy has flowed and ``min_interval_s`` has
    passed. The defaults give 60 small transactions per charging hour up to 30 kW (500 Wh
    then takes longer than the interval) and never more than 240, which keeps an AC
    charger's journal well below 500 KB written per charging hour (see bench/journal.py).
    """

    interval_s: float = 60.0
    step_wh: float = 500.0
    min_interval_s: float = 15.0

    def __post_init__(self):
        for name in ("interval_s", "step_wh", "min_interval_s"):
            value = getattr(self, name)
            if not is_number(value) or value < 0:
                raise InvalidValue(f"checkpoint policy {name} must be a non-negative number, got {value!r}",
                                   field=name, value=value)
        if self.min_interval_s > self.interval_s:
            raise InvalidValue(
                f"checkpoint policy min_interval_s ({self.min_interval_s}) must not exceed interval_s ({self.interval_s})",
                field="min_interval_s", value=self.min_interval_s)

    @classmethod
    def from_section(cls, section) -> "CheckpointPolicy":
        """Read ``checkpoint_interval_s``, ``checkpoint_step_wh`` and ``checkpoint_min_interval_s``
        from a ``drivers.configfile.Section`` (the caller calls ``finish()``), so a bad value is
        reported with its file and key."""
        default = cls()
        interval_s = section.float("checkpoint_interval_s", default.interval_s, min=1.0, max=3_600.0)
        min_interval_s = section.float("checkpoint_min_interval_s", min(default.min_interval_s, interval_s),
                                       min=0.0, max=interval_s)
        step_wh = section.float("checkpoint_step_wh", default.step_wh, min=1.0, max=100_000.0)
        return cls(interval_s=interval_s, step_wh=step_wh, min_interval_s=min_interval_s)

    def due(self, *, last_wh, last_time_s, energy_wh, time_s) -> bool:
        elapsed_s = time_s - last_time_s
        if elapsed_s >= self.interval_s:
            return True
        return energy_wh - last_wh >= self.step_wh and elapsed_s >= self.min_interval_s


@dataclass(frozen=True)
class SessionRecord:
    session_id: str
    connector_id: int
    auth: dict
    tariff_id: str | None
    meter_serial: str
    start_wh: float
    start_time_s: float
    stop_wh: float | None
    stop_time_s: float | None
    stop_reason: str | None
    last_wh: float
    last_time_s: float
    has_receipt: bool

    @property
    def is_open(self) -> bool:
        return self.stop_wh is None

    @property
    def energy_wh(self) -> float | None:
        """Billed energy; defined from the two durable readings only, so it can be re-derived."""
        if self.stop_wh is None:
            return None
        return self.stop_wh - self.start_wh


@dataclass(frozen=True)
class OrderRecord:
    """One stored network order: ``snapshot`` is the binding's JSON text, returned as written."""

    binding: str
    tx_id: str
    snapshot: str
    updated_s: float


@dataclass(frozen=True)
class OutboxEntry:
    id: int
    topic: str
    payload: bytes
    key: str | None
    attempts: int
    next_attempt_s: float
    created_s: float
