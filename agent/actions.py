"""What the protocols ask the charger to do: start, stop, reserve, unlock, reset.

A part of ``agent.runtime.Runtime`` (a mixin sharing its state). Every action returns once
the charger has decided (the authorization is with the safety gate), never once the car
draws power; refusals are ``ServiceError`` with the facade's codes.
"""
from __future__ import annotations

import logging

from agent.core.errors import AgentError
from agent.core.session import AuthGranted, CurrentLimit, LocalReset, RelayFeedback, StopRequested
from agent.service import ConnectorView, ServiceError, SessionView
from agent.session_meta import SessionMeta

log = logging.getLogger("urja.runtime")


class RuntimeActions:
    """The facade's actions."""

    def _grant(self, auth, meta: SessionMeta, time_ms: int):
        """Build the grant event; the metadata waits beside it until the core names the session."""
        meta.limits = auth.limits()
        meta.auth_id = auth.auth_id
        self._granting = (auth.auth_id, meta)
        return AuthGranted(auth, time_ms)

    def _check_startable(self, connector_id: str | None) -> None:
        """Refusals every start shares, checked before anything is asked or granted."""
        if connector_id not in (None, self.connector_id):
            raise ServiceError(f"unknown connector {connector_id!r} (this charger has {self.connector_id})",
                               code=ServiceError.UNKNOWN_CONNECTOR)
        if self._shutting_down:
            raise ServiceError("the charger is shutting down", code=ServiceError.INOPERATIVE)
        if self.safety.latched_fault is not None or self.core.state == "faulted":
            raise ServiceError(f"charger faulted: {self.safety.latched_fault}", code=ServiceError.INOPERATIVE)
        if self.core.busy:
            raise ServiceError("connector busy with another session", code=ServiceError.OCCUPIED)
        closed = self._closed_reason()
        if closed is not None:
            raise ServiceError(closed, code=ServiceError.REJECTED)
        if getattr(self, "_selftest_running", False):
            raise ServiceError("the self-test is running; try again in a minute", code=ServiceError.OCCUPIED)

    def _closed_reason(self) -> str | None:
        """Why no session may start now by the site's opening hours (``agent.opening_hours``), or None.

        What the catalogs state; a session already running when the site closes goes on."""
        hours = getattr(self.config, "opening_hours", None)
        if hours is None or hours.is_open(self.clock.wall_s(), self.config.place.timezone):
            return None
        return f"the site is closed now (open {hours.text}, {self.config.place.timezone} time)"

    async def start_session(self, *, source: str, reference: str, token: str | None = None,  # noqa: C901
                            connector_id: str | None = None, energy_limit_wh: int | None = None,
                            money_limit_paise: int | None = None, time_limit_s: int | None = None,
                            departure_s: float | None = None, reservation_id: str | None = None,
                            paid_paise: int | None = None, acceptance_digest: str | None = None) -> SessionView:
        self._check_startable(connector_id)
        held = self._reservation
        if held is not None:
            rid, _, rtoken = held
            if reservation_id != rid and (rtoken is None or token != rtoken):
                raise ServiceError("connector reserved for someone else", code=ServiceError.OCCUPIED)
        limits = {}
        if energy_limit_wh is not None:
            limits["energy_limit_wh"] = int(energy_limit_wh)
        if money_limit_paise is not None:
            limits["money_limit_paise"] = int(money_limit_paise)
        if time_limit_s is not None:
            limits["time_limit_ms"] = int(time_limit_s * 1000)
        if departure_s is not None:
            limits["departure_ms"] = self.clock.monotonic_ms() + int((departure_s - self.clock.wall_s()) * 1000)
        if source in ("contract", "ocpi") and not self.clock_trusted:
            # A sale is dated and signed: on a clock that may be years off it would state what
            # is not true (and every verifier would refuse it).
            raise ServiceError(f"the charger's clock is not trusted ({self.clock_reason}); it sells again once "
                               f"the clock is synchronised", code=ServiceError.REJECTED)
        try:
            if source == "contract":
                auth = self.authorizer.from_contract(reference, **limits)
            elif source == "ocpi":
                auth = self.authorizer.from_ocpi(token or reference, **limits)
            elif source == "allow_list":
                auth = self.authorizer.from_local_token(token or "")
            elif source == "free_vend":
                auth = self.authorizer.from_free_vend()
                if auth is None:
                    raise ServiceError("free vend is off at this site", code=ServiceError.REJECTED)
            else:
                raise ServiceError(f"unknown source {source!r} (allowed: contract, ocpi, allow_list, free_vend)",
                                   code=ServiceError.REJECTED)
        except ServiceError:
            raise
        except AgentError as exc:
            raise ServiceError(str(exc), code=ServiceError.REJECTED) from None
        meta = SessionMeta(source=source, reference=reference, token=token, paid_paise=paid_paise,
                     acceptance_digest=acceptance_digest, reservation_id=reservation_id)
        try:
            await self.post_and_wait(lambda t: self._grant(auth, meta, t))
        except AgentError as exc:
            raise ServiceError(str(exc), code=ServiceError.REJECTED) from None
        sid = self.core.session_id
        if sid is None or self.core.active_auth_id != auth.auth_id:
            raise ServiceError("authorization was not taken", code=ServiceError.REJECTED)
        # Only a start that was taken uses up the reservation; a refused one leaves it held.
        if held is not None and self._reservation is held:
            self._reservation = None
        self._refresh_connector()
        return self._update_view(sid)

    async def present_token(self, uid: str, *, token_type: str = "RFID",
                            connector_id: str | None = None) -> SessionView:
        if not isinstance(uid, str) or not uid.strip():
            raise ServiceError(f"token must be non-empty text, got {uid!r}", code=ServiceError.REJECTED)
        if self.authorizer.knows_token(uid):
            return await self.start_session(source="allow_list", reference=f"token-{uid}", token=uid,
                                            connector_id=connector_id)
        # Refuse what would be refused anyway before asking anyone over the network.
        self._check_startable(connector_id)
        for authority in list(self._token_authorities):
            decision = await authority.decide_token(uid, token_type=token_type,
                                                    evse_uid=f"{self.config.site_id}-1")
            if decision is None:
                continue
            if not decision.allowed:
                log.info("token %s refused: %s", uid, decision.reason)
                raise ServiceError(f"token {uid} refused: {decision.reason}", code=ServiceError.REJECTED)
            reference = self._new_id()
            authority.bind_session(reference, decision)
            log.info("token %s allowed: %s", uid, decision.reason)
            return await self.start_session(source="ocpi", reference=reference, token=uid,
                                            connector_id=connector_id)
        raise ServiceError(f"token {uid} is not on this site's allow-list and no eMSP knows it",
                           code=ServiceError.REJECTED)

    def add_token_authority(self, authority) -> None:
        if authority not in self._token_authorities:
            self._token_authorities.append(authority)

    def remove_token_authority(self, authority) -> None:
        if authority in self._token_authorities:
            self._token_authorities.remove(authority)

    async def stop_session(self, session_id: str, *, reason: str = "remote") -> SessionView:
        if session_id != self.core.session_id or self.core.active_auth_id is None:
            view = self.session(session_id)
            if view is None:
                raise ServiceError(f"unknown session {session_id!r}", code=ServiceError.UNKNOWN_SESSION)
            return view
        await self.post_and_wait(lambda t: StopRequested(t, reason))
        return self.session(session_id)

    async def reserve(self, *, reservation_id: str, connector_id: str | None, expires_s: float,
                      token: str | None = None) -> ConnectorView:
        if connector_id not in (None, self.connector_id):
            raise ServiceError(f"unknown connector {connector_id!r}", code=ServiceError.UNKNOWN_CONNECTOR)
        if self.safety.latched_fault is not None:
            raise ServiceError("charger faulted", code=ServiceError.INOPERATIVE)
        if self._reservation is not None and self._reservation[0] != reservation_id:
            raise ServiceError("connector already reserved", code=ServiceError.OCCUPIED)
        if self.core.busy:
            raise ServiceError("connector busy", code=ServiceError.OCCUPIED)
        if expires_s <= self.clock.wall_s():
            raise ServiceError("reservation expiry is in the past", code=ServiceError.REJECTED)
        self._reservation = (reservation_id, float(expires_s), token)
        self._refresh_connector()
        return self.connectors()[0]

    async def cancel_reservation(self, reservation_id: str) -> None:
        if self._reservation is None or self._reservation[0] != reservation_id:
            raise ServiceError(f"unknown reservation {reservation_id!r}", code=ServiceError.UNKNOWN_RESERVATION)
        self._reservation = None
        self._refresh_connector()

    def _expire_reservation(self) -> None:
        if self._reservation is not None and self._reservation[1] <= self.clock.wall_s():
            log.info("reservation %s expired", self._reservation[0])
            self._reservation = None
            self._refresh_connector()

    async def unlock(self, connector_id: str) -> None:
        if connector_id != self.connector_id:
            raise ServiceError(f"unknown connector {connector_id!r}", code=ServiceError.UNKNOWN_CONNECTOR)
        raise ServiceError("this socket has no cable lock to release", code=ServiceError.NOT_SUPPORTED)

    async def local_reset(self) -> None:
        """Clear a latched fault: only from the charger itself (button, ``urja fault reset``),
        never from the network. Raises ``FaultPersists`` while the condition is still there.

        With a fault latched the relay is open already; it is driven open once more and its
        mirror contact read afresh, so a contactor repaired since it welded is seen apart
        before the gate judges the reset.
        """
        if self.safety.latched_fault is not None:
            async with self._relay_lock:
                await self.board.relay.open()
            await self.board.relay.wait_settled()
            feedback = self.board.relay.feedback
            if feedback is not None:
                self._feedback = feedback
                self.post(lambda t, f=feedback: RelayFeedback(f, t))
        try:
            await self.post_and_wait(lambda t: LocalReset(t))
        finally:
            self._refresh_connector()

    async def set_current_limit(self, limit_a: float, *, connector_id: str | None = None) -> None:
        """The site's share for a connector (amps per phase), from the load manager.

        The core applies it (offer, pause below 6 A, a socket outlet off) and the gate enforces
        it; this only queues it and logs a change, so the log shows what limit was in force.
        """
        if connector_id is not None and connector_id != self.connector_id:
            raise ServiceError(f"unknown connector {connector_id!r}", code=ServiceError.UNKNOWN_CONNECTOR)
        if limit_a != self.safety.limit_a:
            log.info("current limit %.1f A", limit_a)
        await self.post_and_wait(lambda t, a=limit_a: CurrentLimit(a, t))
