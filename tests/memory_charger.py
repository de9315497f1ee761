"""The reference in-memory ``ChargerService``: what the protocol tests program against.

Why one: the Beckn, OCPI, fleet and benchmark tests each need a charger without a board
(fast, deterministic, inspectable), and four hand-written ones drifted apart in what they
refused and announced. This one keeps the facade's contract the way ``agent.runtime.Runtime``
does (refusals with the documented codes, listeners told of every change, receipts for finished
sessions, token authorities asked about unknown cards); tests that need something particular
(a recorded call shape, an injected refusal) subclass it thinly.

Deterministic: the clock and the session ids are injected, and sessions do not progress by
themselves: a session is PENDING until the test says the car drew energy (``charge``), and it
ends only when stopped. Reservations are held until used or cancelled (a lapsed hold is the
caller's to cancel, as with the runtime).

Money follows ``agent.core.tariff``: a charge becomes charging periods (``agent.core.offers.simulate``
at the charge's power, contiguous from the session's start) priced by ``price_periods``.
"""
from __future__ import annotations

import copy
from collections.abc import Callable, Iterable

from agent.config import SiteConfig
from agent.core import offers
from agent.core.tariff import Tariff, price_periods
from agent.service import ChargerService, ConnectorView, ReceiptSigned, ServiceError, SessionView, TokenAuthority
from protocols.signing._codec import format_time
from protocols.signing.detached import sign_object
from protocols.signing.keys import Ed25519Signer

FAULTED = ("INOPERATIVE", "OUTOFORDER")
DEFAULT_POWER_W = 7000
# An OCMF document of the right form; a test of OCMF itself uses ``protocols.signing.ocmf``.
PLACEHOLDER_OCMF = 'OCMF|{"FV":"1.0","RD":[{"TX":"B"},{"TX":"E"}]}|{"SA":"ECDSA-secp256r1-SHA256","SD":"00"}'


def socket_connector(connector_id: str = "1", *, evse_uid: str, now_s: float, standard: str = "IEC_62196_T2",
                     max_current_a: int = 32, phases: int = 1, max_voltage_v: int = 230,
                     max_power_w: int | None = None) -> ConnectorView:
    """An available socket outlet (voltage line to neutral, as OCPI states it); its power is
    the rating's unless a nominal figure is given (a "7.4 kW" Type 2 socket)."""
    if max_power_w is None:
        max_power_w = max_voltage_v * max_current_a * phases
    return ConnectorView(connector_id=connector_id, evse_uid=evse_uid, standard=standard, format="SOCKET",
                         power_type="AC_3_PHASE" if phases == 3 else "AC_1_PHASE", max_voltage_v=max_voltage_v,
                         max_current_a=max_current_a, max_power_w=max_power_w, phases=phases,
                         status="AVAILABLE", last_updated_s=now_s)


class MemoryCharger(ChargerService):
    """Connectors, a tariff, sessions, reservations, receipts, listeners and token authorities.

    ``connectors`` are the connectors as they start (copied; default: one 7.4 kW Type 2 socket
    ``"1"``). ``receipt_signer`` signs a receipt for every finished session; without one the
    charger issues none. ``allow_list`` holds the token uids the site itself accepts.
    ``calls`` records every action asked of the charger, in order, and ``start_kwargs`` the
    options of the last start asked for (refused or not), for tests of what a binding passes.
    ``refuse_with`` set to a ``ServiceError`` code refuses every start with it (a fault the
    test injects).
    """

    def __init__(self, *, site: SiteConfig, clock: Callable[[], float], tariff: dict,
                 connectors: Iterable[ConnectorView] | None = None,
                 new_session_id: Callable[[int], str] = lambda n: f"S{n}",
                 receipt_signer: Ed25519Signer | None = None, allow_list: Iterable[str] = (),
                 utc_offset_s: int = 19800, meter_start_wh: int = 1000, meter_serial: str = "SIM-1"):
        self.clock = clock
        self._site = site
        self._tariff = copy.deepcopy(tariff)
        if connectors is None:
            connectors = [socket_connector("1", evse_uid=f"{site.site_id}-1", now_s=clock(), max_power_w=7400)]
        self._conns: dict[str, ConnectorView] = {c.connector_id: ConnectorView(**c.as_dict()) for c in connectors}
        self._new_session_id = new_session_id
        self._sessions: dict[str, SessionView] = {}
        self._paid_paise: dict[str, int | None] = {}
        self._acceptance: dict[str, str | None] = {}
        self._reservations: dict[str, tuple[str, float]] = {}
        self._receipts: dict[str, dict] = {}
        self._listeners: list = []
        self._authorities: list[TokenAuthority] = []
        self._meter_wh = meter_start_wh
        self.receipt_signer = receipt_signer
        self.allow_list = set(allow_list)
        self.utc_offset_s = utc_offset_s
        self.meter_serial = meter_serial
        self.calls: list[tuple] = []
        self.start_kwargs: dict = {}
        self.refuse_with: str | None = None

    # --- what the charger is -------------------------------------------------------------
    @property
    def site(self):
        return self._site

    def connectors(self) -> list[ConnectorView]:
        return [ConnectorView(**c.as_dict()) for c in self._conns.values()]

    def tariff(self) -> dict:
        return copy.deepcopy(self._tariff)

    def now_s(self) -> float:
        return self.clock()

    # --- what a test does to it ----------------------------------------------------------
    def set_status(self, status: str, *, connector_id: str | None = None) -> None:
        """The connector changes by itself (a fault, a repair), and says so."""
        self._set_status(connector_id or next(iter(self._conns)), status)

    def charge(self, session_id: str, energy_wh: int, duration_s: int | None = None, *,
               power_w: int | None = None, notify: bool = True) -> SessionView:
        """The car draws ``energy_wh`` more over ``duration_s`` (default: as long as it takes at
        ``power_w``), continuing where the session's charge so far ended; ``notify=False`` is a
        change the charger does not announce (bindings must still see it when they poll)."""
        v = self._sessions[session_id]
        if not duration_s:
            power_w = power_w or DEFAULT_POWER_W
            duration_s = offers.charge_duration_s(energy_wh, power_w)
        elif power_w is None:
            power_w = max(1, -(-energy_wh * 3600 // duration_s))  # rounded up: all of energy_wh is drawn
        begin_s = int(v.start_s) + sum(p.time_s + p.parking_s for p in v.periods)
        v.periods = v.periods + offers.simulate(self._tariff, begin_s, int(duration_s), power_w, self.utc_offset_s,
                                                energy_wh=energy_wh)
        v.energy_wh += energy_wh
        self._meter_wh += energy_wh
        v.cost = price_periods(Tariff(self._tariff), v.periods, self.utc_offset_s)
        v.status, v.state, v.power_w, v.last_updated_s = "ACTIVE", "charging", power_w, self.clock()
        if notify:
            self._notify("session", v)
        return v

    def state(self) -> tuple:
        """Everything a refused request must leave untouched."""
        return (tuple((c.connector_id, c.status) for c in self._conns.values()),
                tuple(sorted((k, v.status) for k, v in self._sessions.items())),
                tuple(sorted(self._reservations)))

    # --- actions -------------------------------------------------------------------------
    async def start_session(self, *, source, reference, token=None, connector_id=None, energy_limit_wh=None,
                            money_limit_paise=None, time_limit_s=None, departure_s=None, reservation_id=None,
                            paid_paise=None, acceptance_digest=None) -> SessionView:
        self._log("start", source, reference, token, connector_id)
        self.start_kwargs = {"energy_limit_wh": energy_limit_wh, "money_limit_paise": money_limit_paise,
                             "time_limit_s": time_limit_s, "paid_paise": paid_paise,
                             "acceptance_digest": acceptance_digest, "reservation_id": reservation_id}
        if self.refuse_with:
            raise ServiceError("refused", code=self.refuse_with)
        c = self._connector(connector_id)
        if c.status in FAULTED:
            raise ServiceError(f"connector {c.connector_id} is {c.status}", code=ServiceError.INOPERATIVE)
        held = [r for r, (cid, _) in self._reservations.items() if cid == c.connector_id]
        if c.status == "CHARGING" or (held and reservation_id not in held):
            raise ServiceError(f"connector {c.connector_id} is busy", code=ServiceError.OCCUPIED)
        self._reservations.pop(reservation_id, None)
        n = len(self._sessions) + 1
        now = self.clock()
        view = SessionView(session_id=self._new_session_id(n), connector_id=c.connector_id, evse_uid=c.evse_uid,
                           auth_id=f"A{n}", source=source, token=token, reference=reference, status="PENDING",
                           state="authorized", start_s=now, start_wh=self._meter_wh, energy_wh=0, power_w=0,
                           limits={"energy_limit_wh": energy_limit_wh, "money_limit_paise": money_limit_paise},
                           periods=[], last_updated_s=now, currency=self._tariff.get("currency", "INR"),
                           tariff_id=self._tariff.get("id"), meter_serial=self.meter_serial, meter_model="sim")
        self._sessions[view.session_id] = view
        self._paid_paise[view.session_id] = paid_paise
        self._acceptance[view.session_id] = acceptance_digest
        self._notify("session", view)
        c.session_id = view.session_id
        self._set_status(c.connector_id, "CHARGING")
        return view

    async def present_token(self, uid: str, *, token_type: str = "RFID",
                            connector_id: str | None = None) -> SessionView:
        if uid in self.allow_list:
            return await self.start_session(source="allow_list", reference=f"token-{uid}", token=uid,
                                            connector_id=connector_id)
        evse_uid = self._connector(connector_id).evse_uid
        for authority in list(self._authorities):
            decision = await authority.decide_token(uid, token_type=token_type, evse_uid=evse_uid)
            if decision is None:
                continue
            if not decision.allowed:
                raise ServiceError(f"token {uid} refused: {decision.reason}", code=ServiceError.REJECTED)
            reference = f"token-{uid}-{len(self._sessions) + 1}"
            authority.bind_session(reference, decision)
            return await self.start_session(source="ocpi", reference=reference, token=uid,
                                            connector_id=connector_id)
        raise ServiceError(f"token {uid} is not on this site's allow-list and no eMSP knows it",
                           code=ServiceError.REJECTED)

    def add_token_authority(self, authority: TokenAuthority) -> None:
        if authority not in self._authorities:
            self._authorities.append(authority)

    def remove_token_authority(self, authority: TokenAuthority) -> None:
        if authority in self._authorities:
            self._authorities.remove(authority)

    async def stop_session(self, session_id: str, *, reason: str = "remote") -> SessionView:
        self._log("stop", session_id)
        v = self._sessions.get(session_id)
        if v is None:
            raise ServiceError(f"unknown session {session_id!r}", code=ServiceError.UNKNOWN_SESSION)
        if v.stop_s is not None:
            return v  # stopping a finished session changes nothing, as with the runtime
        now = self.clock()
        v.status, v.state, v.stop_reason, v.power_w = "COMPLETED", "finished", reason, 0
        v.stop_s = v.last_updated_s = now
        v.stop_wh = v.start_wh + v.energy_wh
        self._notify("session", v)
        c = self._conns[v.connector_id]
        c.session_id = None
        self._set_status(c.connector_id, "AVAILABLE")
        if self.receipt_signer is not None:
            receipt = self._receipt(v)
            self._receipts[session_id] = receipt
            self._notify("receipt", ReceiptSigned(session_id, receipt))
        return v

    async def reserve(self, *, reservation_id, connector_id, expires_s, token=None) -> ConnectorView:
        self._log("reserve", reservation_id, connector_id, expires_s, token)
        c = self._connector(connector_id)
        if c.status == "CHARGING" or any(cid == c.connector_id for cid, _ in self._reservations.values()):
            raise ServiceError(f"connector {c.connector_id} is occupied", code=ServiceError.OCCUPIED)
        if c.status in FAULTED:
            raise ServiceError(f"connector {c.connector_id} is {c.status}", code=ServiceError.INOPERATIVE)
        self._reservations[reservation_id] = (c.connector_id, float(expires_s))
        c.reservation_id = reservation_id
        self._set_status(c.connector_id, "RESERVED")
        return ConnectorView(**c.as_dict())

    async def cancel_reservation(self, reservation_id: str) -> None:
        self._log("cancel", reservation_id)
        if reservation_id not in self._reservations:
            raise ServiceError(f"unknown reservation {reservation_id!r}", code=ServiceError.UNKNOWN_RESERVATION)
        cid, _ = self._reservations.pop(reservation_id)
        self._conns[cid].reservation_id = None
        self._set_status(cid, "AVAILABLE")

    async def unlock(self, connector_id: str) -> None:
        self._log("unlock", connector_id)
        raise ServiceError("a socket outlet has no cable lock", code=ServiceError.NOT_SUPPORTED)

    # --- sessions and receipts -----------------------------------------------------------
    def session(self, session_id: str) -> SessionView | None:
        return self._sessions.get(session_id)

    def sessions(self, *, since_s: float | None = None, until_s: float | None = None) -> list[SessionView]:
        return [s for s in sorted(self._sessions.values(), key=lambda s: s.last_updated_s)
                if (since_s is None or s.last_updated_s >= since_s)
                and (until_s is None or s.last_updated_s < until_s)]

    def receipt(self, session_id: str) -> dict | None:
        return self._receipts.get(session_id)

    # --- notifications -------------------------------------------------------------------
    def add_listener(self, listener) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    # --- inside --------------------------------------------------------------------------
    def _log(self, action: str, *args) -> None:
        """Record an action asked of the charger (a subclass may record another shape)."""
        self.calls.append((action, *args))

    def _notify(self, kind: str, obj) -> None:
        for listener in list(self._listeners):
            listener(kind, obj)

    def _connector(self, connector_id: str | None) -> ConnectorView:
        cid = connector_id or next(iter(self._conns))
        if cid not in self._conns:
            raise ServiceError(f"unknown connector {cid!r}", code=ServiceError.UNKNOWN_CONNECTOR)
        return self._conns[cid]

    def _set_status(self, connector_id: str, status: str) -> None:
        c = self._conns[connector_id]
        if c.status != status:
            c.status, c.last_updated_s = status, self.clock()
            self._notify("connector", ConnectorView(**c.as_dict()))

    def _receipt(self, v: SessionView) -> dict:
        """A receipt of the runtime's shape, signed the same way (detached, over canonical JSON);
        its cost lines are the breakdown's parts in paise, the tax taking the rounding."""
        paid = self._paid_paise.get(v.session_id) or 0
        total = v.cost.total_paise if v.cost is not None else 0
        parts = {p: (getattr(v.cost, f"{p}_excl_u") // 100 if v.cost is not None else 0)
                 for p in ("energy", "time", "parking", "flat")}
        parts["tax"] = max(0, total - sum(parts.values()))
        receipt = {"kind": "urja.receipt", "receipt_id": f"R-{v.session_id}", "order_id": v.reference,
                   "acceptance_digest": self._acceptance.get(v.session_id) or "",
                   "meter": {"vendor": "sim", "model": v.meter_model, "serial": v.meter_serial},
                   "start": {"time": format_time(v.start_s), "meter_wh": v.start_wh},
                   "stop": {"time": format_time(v.stop_s), "meter_wh": v.stop_wh},
                   "energy_wh": v.energy_wh, "tariff": {"id": v.tariff_id}, "currency": v.currency,
                   "cost_paise": {**parts, "total": total}, "paid_paise": paid,
                   "refund_due_paise": max(0, paid - total), "balance_due_paise": max(0, total - paid),
                   "issued_at": format_time(self.clock()), "ocmf": PLACEHOLDER_OCMF}
        return sign_object(receipt, self.receipt_signer)
