"""The charger as the protocols see it: one facade for the network binding, OCPI and the web page.

Why a facade: Beckn handlers, the OCPI CPO module and the local page all need the same few
things (what connectors exist and whether they are free, the tariff, start and stop a session,
live and finished sessions, receipts, and change notifications), and none of them may reach
into drivers or the safety gate. ``agent.runtime.Runtime`` implements this contract for a real
or simulated board; protocol tests may use any other implementation that passes the same
behaviour, but end-to-end tests run against the runtime.

All times here are wall-clock epoch seconds (floats); money is integers in 1/10,000 of the
currency unit (``*_u``) or in the currency's minor unit (``*_paise``: paise for INR, the cent
of another currency), as in ``agent.core.tariff``: one name per quantity, everywhere. Energy is
integer Wh.

CPython only (it is the edge the protocols bind to), so it may use typing.
"""
from __future__ import annotations

from dataclasses import dataclass, fields
from typing import TYPE_CHECKING, Any, Callable, NamedTuple

from agent.core.errors import AgentError

if TYPE_CHECKING:
    from agent.core.tariff import CostBreakdown, Period

# OCPI 2.2.1 EVSE status values; Beckn availability is derived from them.
CONNECTOR_STATUSES = ("AVAILABLE", "BLOCKED", "CHARGING", "INOPERATIVE", "OUTOFORDER", "RESERVED", "UNKNOWN")

# What a listener is told, each payload typed: ("connector", ConnectorView), ("session", SessionView)
# on any change of a session, ("receipt", ReceiptSigned) once a finished session's receipt is signed,
# ("tariff", dict) when new sessions are sold at a new tariff, ("clock", ClockView) when the clock's
# trust changes.
Listener = Callable[[str, Any], None]


class ReceiptSigned(NamedTuple):
    """A finished session's signed receipt, as listeners are told of it.

    A named tuple: its fields are checked like a view's (an unknown one is refused), and it
    still unpacks as ``session_id, receipt``.
    """

    session_id: str
    receipt: dict


class ServiceError(AgentError):
    """A request the charger refuses; ``code`` is one of the class attributes below.

    The codes map onto OCPI CommandResultType / status codes and Beckn error codes.
    """

    OCCUPIED = "occupied"            # connector busy with another session or reservation
    INOPERATIVE = "inoperative"      # faulted, out of order, or relay cannot be trusted
    UNKNOWN_CONNECTOR = "unknown-connector"
    UNKNOWN_SESSION = "unknown-session"
    UNKNOWN_RESERVATION = "unknown-reservation"
    REJECTED = "rejected"            # e.g. limits invalid, not allowed by site policy
    NOT_SUPPORTED = "not-supported"  # e.g. unlock on a socket without a lock

    code = "service-error"


@dataclass(slots=True, kw_only=True, eq=False, repr=False)
class ConnectorView:
    """A snapshot of one connector (one EVSE with one connector on Urja's boards).

    A dataclass so a misspelt field name is a ``TypeError`` where the view is built, not a field
    that silently stays None; every field defaults to None because a charger leaves out what it
    does not know. ``eq=False`` keeps comparison by identity and views hashable, as they were
    before they were dataclasses: a snapshot taken twice is two snapshots.
    """

    connector_id: str | None = None
    evse_uid: str | None = None
    standard: str | None = None
    format: str | None = None
    power_type: str | None = None
    max_voltage_v: int | None = None
    max_current_a: float | None = None
    max_power_w: int | None = None
    phases: int | None = None
    status: str | None = None
    last_updated_s: float | None = None
    session_id: str | None = None
    reservation_id: str | None = None
    pilot_state: str | None = None

    def as_dict(self) -> dict:
        return {f.name: getattr(self, f.name) for f in fields(self)}

    def __repr__(self) -> str:
        return f"ConnectorView({self.connector_id}, {self.status})"


@dataclass(slots=True, kw_only=True, eq=False, repr=False)
class SessionView:
    """A snapshot of one charging session, live or finished.

    ``status`` uses OCPI SessionStatus values (PENDING, ACTIVE, COMPLETED, INVALID, RESERVATION);
    ``state`` is the session machine's own state name. ``cost`` is an ``agent.core.tariff.CostBreakdown``
    (or None before the first reading); ``periods`` are the tariff's charging periods
    (``agent.core.tariff.Period``) for CDRs. A dataclass for the same reason as ``ConnectorView``.
    """

    session_id: str | None = None
    connector_id: str | None = None
    evse_uid: str | None = None
    auth_id: str | None = None
    source: str | None = None
    token: str | None = None
    reference: str | None = None
    status: str | None = None
    state: str | None = None
    start_s: float | None = None
    stop_s: float | None = None
    start_wh: int | None = None
    stop_wh: int | None = None
    energy_wh: int | None = None
    power_w: float | None = None
    current_a: tuple | None = None
    idle_s: int | None = None
    limits: dict | None = None
    cost: CostBreakdown | None = None
    periods: list[Period] | None = None
    stop_reason: str | None = None
    last_updated_s: float | None = None
    currency: str | None = None
    tariff_id: str | None = None
    meter_serial: str | None = None
    meter_model: str | None = None

    def as_dict(self) -> dict:
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("cost", "periods")}
        d["cost"] = self.cost.as_dict() if self.cost is not None else None
        return d

    def __repr__(self) -> str:
        return f"SessionView({self.session_id}, {self.status}, {self.energy_wh} Wh)"


@dataclass(slots=True, kw_only=True, eq=False)
class FaultView:
    """A latched fault as the owner's page shows it: what, when, and why it is still there."""

    code: str
    detail: str
    latched_s: float | None = None


@dataclass(slots=True, kw_only=True, eq=False)
class HealthView:
    """One part of the charger and whether it is well (``ok`` None: not fitted or not known)."""

    part: str
    ok: bool | None
    detail: str = ""


@dataclass(slots=True, kw_only=True, eq=False)
class SelfTestCheck:
    """One check of the self-test on the running charger (``status``: pass, fail or skip)."""

    connector_id: str
    name: str
    status: str
    detail: str = ""


@dataclass(slots=True, kw_only=True, eq=False)
class ClockView:
    """Whether the charger's clock can be trusted and why (``agent.timesync``), and how many
    finished sessions' receipts wait for it to be synchronised."""

    trusted: bool
    reason: str
    held_receipts: int = 0

    def as_dict(self) -> dict:
        return {"trusted": self.trusted, "reason": self.reason, "held_receipts": self.held_receipts}


class TokenAuthority:
    """Someone who knows tokens the site's allow-list does not (an eMSP, through OCPI).

    ``decide_token`` returns None for a token it has never heard of, otherwise a decision with
    ``allowed`` (bool) and ``reason`` (text). Before an allowed token's session starts the
    charger calls ``bind_session(reference, decision)`` with the session's reference, so the
    authority can tie what it reports later (sessions, CDRs) to that token.
    """

    async def decide_token(self, uid: str, *, token_type: str, evse_uid: str | None):
        raise NotImplementedError

    def bind_session(self, reference: str, decision) -> None:
        raise NotImplementedError


class ChargerService:
    """The contract every protocol binding programs against.

    Reads are synchronous snapshots (cheap, no I/O); actions are coroutines that return once the
    charger has taken the decision (authorization handed to the safety gate, not once the car
    draws power). Refusals raise ``ServiceError`` with a code from that class.
    """

    # --- what the charger is -------------------------------------------------------------
    @property
    def site(self):
        """The ``agent.config.SiteConfig`` (identity, place, contact, payment)."""
        raise NotImplementedError

    def connectors(self) -> list[ConnectorView]:
        raise NotImplementedError

    def tariff(self) -> dict:
        """The site owner's tariff as an OCPI 2.2.1 Tariff dict (with ``id``, ``currency``...)."""
        raise NotImplementedError

    def now_s(self) -> float:
        """The charger's wall clock (injected; tests and simulations control it)."""
        raise NotImplementedError

    def load_status(self) -> dict | None:
        """The site's limit and each connector's share (``[load]``); None where there is no load manager."""
        return None

    # --- several boards sharing one site's limit (``protocols/loadshare``) -------------------
    def load_connectors(self) -> list[dict]:
        """This board's connectors as a follower reports them to the site's load manager."""
        raise NotImplementedError

    async def apply_load_shares(self, shares: dict[str, float]) -> None:
        """The shares the site's load manager (or the safe share) gives this board's connectors."""
        raise NotImplementedError

    def load_remote_state(self, board_id: str, connectors: list[dict], *, timeout_ms: int) -> None:
        """On the site's load manager: a follower board's report. ``ServiceError`` on any other board."""
        raise NotImplementedError

    def load_remote_shares(self, board_id: str) -> dict[str, float]:
        """On the site's load manager: what its last decision gives a follower's connectors."""
        raise NotImplementedError

    # --- actions -------------------------------------------------------------------------
    async def start_session(self, *, source: str, reference: str, token: str | None = None,
                            connector_id: str | None = None, energy_limit_wh: int | None = None,
                            money_limit_paise: int | None = None, time_limit_s: int | None = None,
                            departure_s: float | None = None, reservation_id: str | None = None,
                            paid_paise: int | None = None, acceptance_digest: str | None = None) -> SessionView:
        """Authorize charging on a connector (``source`` as in ``agent.core.auth.SOURCES``;
        ``reference`` is the contract/order id or OCPI session request id the caller tracks).

        ``paid_paise`` is what the buyer already paid (prepaid network orders; the receipt states
        the refund due); ``acceptance_digest`` is the digest of the buyer's signed acceptance
        (the Beckn ``confirm`` body), bound into the receipt."""
        raise NotImplementedError

    async def present_token(self, uid: str, *, token_type: str = "RFID",
                            connector_id: str | None = None) -> SessionView:
        """A token shown at the charger (a card at the RFID reader, a code typed on the local
        page): start charging if the site's allow-list or a token authority lets it.

        The allow-list decides first, with no network. Then each token authority in turn (the
        OCPI binding holds the eMSPs' tokens with their whitelist rules and asks the eMSP in
        real time where the rules say so). Refused: ``ServiceError`` REJECTED naming why."""
        raise NotImplementedError

    def add_token_authority(self, authority: "TokenAuthority") -> None:
        """Ask ``authority`` about tokens the allow-list does not know (a charger without a
        token reader may ignore it: the default does)."""

    def remove_token_authority(self, authority: "TokenAuthority") -> None:
        """Stop asking ``authority`` (the default: nothing to forget)."""

    async def stop_session(self, session_id: str, *, reason: str = "remote") -> SessionView:
        raise NotImplementedError

    async def reserve(self, *, reservation_id: str, connector_id: str | None, expires_s: float,
                      token: str | None = None) -> ConnectorView:
        raise NotImplementedError

    async def cancel_reservation(self, reservation_id: str) -> None:
        raise NotImplementedError

    async def unlock(self, connector_id: str) -> None:
        raise NotImplementedError

    # --- sessions and receipts -----------------------------------------------------------
    def session(self, session_id: str) -> SessionView | None:
        raise NotImplementedError

    def sessions(self, *, since_s: float | None = None, until_s: float | None = None) -> list[SessionView]:
        """Live and finished sessions whose last update lies in [since_s, until_s), oldest first."""
        raise NotImplementedError

    def receipt(self, session_id: str) -> dict | None:
        """The signed receipt of a finished session (see ``protocols.signing.receipt``)."""
        raise NotImplementedError

    # --- the site's own upkeep (the owner's page) ------------------------------------------
    def set_tariff(self, tariff: dict) -> None:
        """Sell new sessions at ``tariff`` (an OCPI Tariff dict, already checked) from now on.

        Running sessions keep the price they were sold at. Listeners are told
        ``("tariff", tariff)``, so bindings republish their catalogs and tariffs."""
        raise NotImplementedError

    def latched_fault(self) -> FaultView | None:
        """The fault keeping the charger out of order, or None."""
        return None

    async def reset_fault(self, *, by: str) -> None:
        """A technician's reset at the site: ``ServiceError`` INOPERATIVE while the condition
        persists (the safety gate decides, as for ``urja fault reset``)."""
        raise ServiceError("this charger has no fault reset", code=ServiceError.NOT_SUPPORTED)

    def health(self) -> list[HealthView]:
        """Meter, relay, pilot, clock and each binding, as far as the charger knows them."""
        return []

    async def run_selftest(self, *, by: str, connector_id: str | None = None) -> list[SelfTestCheck]:
        """The factory self-test's safe subset on the running charger's own meter, pilot and
        relay (``board.selftest.run_running_checks``): nothing is closed, the relay is left open.
        ``ServiceError`` OCCUPIED while a session or reservation holds the connector (every
        connector when none is named); no session starts while it runs."""
        raise ServiceError("this charger has no self-test", code=ServiceError.NOT_SUPPORTED)

    def clock_status(self) -> ClockView | None:
        """Whether the clock is trusted and why (None: this charger does not say). Listeners
        are told ``("clock", ClockView)`` when it changes."""
        return None

    # --- notifications -------------------------------------------------------------------
    def add_listener(self, listener: Listener) -> None:
        raise NotImplementedError

    def remove_listener(self, listener: Listener) -> None:
        raise NotImplementedError
