"""The energy-meter contract: what every meter backend promises the rest of the charger.

This module is the reference for anyone adding a backend. A backend turns one physical
meter into a stream of :class:`MeterReading` objects and a :class:`MeterHealth` record.
It never decides policy: a meter that stops answering raises a classified
:class:`MeterFault`, and it is the safety supervisor, not the driver, that opens the relay.

Conformance rules for implementers:

* ``connect()`` opens the link and may read identity (serial number); it raises
  :class:`MeterFault` if the meter cannot be reached at all.
* ``read()`` returns one complete, validated reading or raises exactly one
  :class:`MeterFault` subclass. A partial reading is never returned: billing depends on
  the energy register and the safety gate on the rest, so they travel together.
* Every fault, including the ones a retry recovered from, is counted in ``health``.
* ``close()`` is idempotent and releases the link (or the driver's share of a shared bus).
"""
from __future__ import annotations

from abc import ABC, abstractmethod

from drivers.errors import DriverError

# Quality flags a reading may carry. "ok" means nothing noteworthy happened; the others
# qualify the reading without invalidating it (invalid readings are faults, not flags).
QUALITY_OK = "ok"
QUALITY_RETRIED = "retried"  # a transient bus fault was recovered by a retry during this poll
QUALITY_SUSPECT = "suspect"  # values are individually plausible but disagree with each other
QUALITY_STALE = "stale"  # the meter's own clock did not advance since the previous reading
QUALITY_FLAGS = frozenset({QUALITY_OK, QUALITY_RETRIED, QUALITY_SUSPECT, QUALITY_STALE})


class MeterReading:
    """One instant of the meter, immutable so it can be shared between safety, session and journal.

    ``energy_import_wh`` is the billing truth (whole watt-hours, as the meter counts them);
    everything else is for supervision and display.
    """

    __slots__ = (
        "energy_import_wh",
        "power_w",
        "voltage_v",
        "current_a",
        "frequency_hz",
        "meter_time_s",
        "quality",
        "serial",
    )

    def __init__(
        self,
        *,
        energy_import_wh: int,
        power_w: float,
        voltage_v: tuple[float, ...],
        current_a: tuple[float, ...],
        frequency_hz: float | None,
        meter_time_s: float,
        quality: frozenset[str] = frozenset({QUALITY_OK}),
        serial: str | None = None,
    ):
        if isinstance(energy_import_wh, bool) or not isinstance(energy_import_wh, int):
            raise TypeError(f"energy_import_wh must be an int, got {energy_import_wh!r}")
        voltage_v = tuple(float(v) for v in voltage_v)
        current_a = tuple(float(a) for a in current_a)
        if len(voltage_v) not in (1, 3) or len(current_a) != len(voltage_v):
            raise ValueError(
                f"voltage_v and current_a must both have 1 or 3 phases, got {len(voltage_v)} and {len(current_a)}"
            )
        unknown = set(quality) - QUALITY_FLAGS
        if unknown:
            raise ValueError(f"unknown quality flags {sorted(unknown)} (allowed: {', '.join(sorted(QUALITY_FLAGS))})")
        setter = object.__setattr__
        setter(self, "energy_import_wh", energy_import_wh)
        setter(self, "power_w", float(power_w))
        setter(self, "voltage_v", voltage_v)
        setter(self, "current_a", current_a)
        setter(self, "frequency_hz", None if frequency_hz is None else float(frequency_hz))
        setter(self, "meter_time_s", float(meter_time_s))
        setter(self, "quality", frozenset(quality))
        setter(self, "serial", serial)

    def __setattr__(self, name, value):
        raise AttributeError("MeterReading is immutable")

    def __delattr__(self, name):
        raise AttributeError("MeterReading is immutable")

    @property
    def phases(self) -> int:
        return len(self.voltage_v)

    def _key(self):
        return tuple(getattr(self, name) for name in self.__slots__)

    def __eq__(self, other):
        if not isinstance(other, MeterReading):
            return NotImplemented
        return self._key() == other._key()

    def __hash__(self):
        return hash(self._key())

    def __repr__(self):
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"MeterReading({fields})"


# --------------------------------------------------------------------------- faults


class MeterFault(DriverError):
    """A classified meter fault. ``code`` is stable; ``details`` carry the numbers."""

    code = "meter-fault"


class MeterNoAnswer(MeterFault):
    """The meter did not answer within the timeout, after every allowed retry."""

    code = "meter-no-answer"


class MeterLinkDown(MeterFault):
    """The link itself (serial port, TCP connection) could not be opened or was lost."""

    code = "meter-link-down"


class MeterFrameError(MeterFault):
    """Bytes arrived but did not form a valid frame (bad CRC, truncated or garbled)."""

    code = "meter-frame-error"


class MeterExceptionResponse(MeterFault):
    """The meter answered with a Modbus exception; ``details['exception_code']`` says which."""

    code = "meter-modbus-exception"

    @property
    def exception_code(self) -> int:
        return self.details.get("exception_code", 0)


class MeterImplausible(MeterFault):
    """A decoded value is NaN, the model's 'not available' sentinel, or outside physical limits."""

    code = "meter-implausible"


class MeterEnergyBackwards(MeterFault):
    """The import energy register decreased; a billing register must never do that."""

    code = "meter-energy-backwards"


class MeterEnergyJump(MeterFault):
    """Energy grew by more than the measured power could explain over the elapsed time."""

    code = "meter-energy-jump"


FAULT_CLASSES: tuple[type[MeterFault], ...] = (
    MeterNoAnswer,
    MeterLinkDown,
    MeterFrameError,
    MeterExceptionResponse,
    MeterImplausible,
    MeterEnergyBackwards,
    MeterEnergyJump,
)
FAULT_CODES: tuple[str, ...] = tuple(cls.code for cls in FAULT_CLASSES)


class MeterHealth:
    """Fault statistics of one meter, kept by the driver and read by supervision.

    ``counts`` holds one counter per fault code (including faults a retry recovered
    from); ``consecutive_failures`` counts failed polls since the last good one.
    """

    __slots__ = ("counts", "last_fault", "last_fault_at_s", "consecutive_failures", "good_reads", "connected")

    def __init__(self):
        self.counts: dict[str, int] = {code: 0 for code in FAULT_CODES}
        self.last_fault: MeterFault | None = None
        self.last_fault_at_s: float | None = None
        self.consecutive_failures = 0
        self.good_reads = 0
        self.connected = False

    @property
    def healthy(self) -> bool:
        return self.connected and self.consecutive_failures == 0 and self.good_reads > 0

    def note_fault(self, fault: MeterFault, at_s: float) -> None:
        """Count a fault without marking the poll failed (a retry may still rescue it)."""
        self.counts[fault.code] = self.counts.get(fault.code, 0) + 1
        self.last_fault = fault
        self.last_fault_at_s = at_s

    def poll_failed(self, fault: MeterFault, at_s: float, *, counted: bool = False) -> None:
        """Mark the poll failed; ``counted`` when the fault was already noted attempt by attempt."""
        if not counted:
            self.note_fault(fault, at_s)
        self.consecutive_failures += 1

    def poll_ok(self) -> None:
        self.consecutive_failures = 0
        self.good_reads += 1

    def copy(self) -> "MeterHealth":
        other = MeterHealth()
        other.counts = dict(self.counts)
        other.last_fault = self.last_fault
        other.last_fault_at_s = self.last_fault_at_s
        other.consecutive_failures = self.consecutive_failures
        other.good_reads = self.good_reads
        other.connected = self.connected
        return other

    def __repr__(self):
        nonzero = {k: v for k, v in self.counts.items() if v}
        last = self.last_fault.code if self.last_fault else None
        return (
            f"MeterHealth(healthy={self.healthy}, consecutive_failures={self.consecutive_failures}, "
            f"good_reads={self.good_reads}, faults={nonzero}, last_fault={last})"
        )


class EnergyMeter(ABC):
    """The contract every meter backend implements (see the module docstring for the rules)."""

    @abstractmethod
    async def connect(self) -> None:
        """Open the link and identify the meter; raise MeterFault when it cannot be reached."""

    @abstractmethod
    async def read(self) -> MeterReading:
        """One complete, validated reading, or one classified MeterFault."""

    @abstractmethod
    async def close(self) -> None:
        """Release the link; safe to call twice."""

    @property
    @abstractmethod
    def model(self) -> str:
        """The register-map name (file stem) this meter is driven with."""

    @property
    @abstractmethod
    def serial(self) -> str | None:
        """The meter's serial number, when the model exposes one and it has been read."""

    @property
    @abstractmethod
    def health(self) -> MeterHealth:
        """A snapshot of the fault statistics (a copy: callers cannot disturb the driver)."""

    async def __aenter__(self):
        await self.connect()
        return self

    async def __aexit__(self, *exc):
        await self.close()

