"""What the protocols read of the charger: connectors, sessions live and finished, receipts.

A part of ``agent.runtime.Runtime`` (a mixin sharing its state), kept apart because the reads
are many and the dispatcher should not be read around them. Views are snapshots built on
demand; listeners are told of each change (``agent.service`` says what they get).
"""
from __future__ import annotations

import json
import logging

from agent.core.tariff import capped
from agent.service import ConnectorView, SessionView
from agent.session_meta import MAX_FINISHED_VIEWS, SessionMeta

log = logging.getLogger("urja.runtime")


class RuntimeViews:
    """The facade's reads and change notifications."""

    @property
    def site(self):
        return self.config

    def now_s(self) -> float:
        return self.clock.wall_s()

    def tariff(self) -> dict:
        return self._tariff_dict

    def _status(self) -> str:
        if self.safety.latched_fault is not None or self.core.state == "faulted":
            return "OUTOFORDER"
        if self.core.busy or self.core.state in ("plugged_waiting_for_auth", "finishing") or \
                (self.core.pilot in ("B", "C", "D")):
            return "CHARGING"
        if self._reservation is not None:
            return "RESERVED"
        return "AVAILABLE"

    def _refresh_connector(self) -> None:
        status = self._status()
        if status != self._connector_status:
            self._connector_status = status
            self._connector_updated_s = self.clock.wall_s()
            log.info("connector %s is %s", self.connector_id, status)
            self._notify("connector", self.connectors()[0])

    def connectors(self) -> list[ConnectorView]:
        profile = self.board.profile
        phases = profile.phases
        voltage = 230  # OCPI max_voltage is line to neutral, for three-phase connectors too
        pilot_mode = self.core.pilot_mode
        return [ConnectorView(
            connector_id=self.connector_id, evse_uid=f"{self.config.site_id}-{self.connector_id}",
            standard="IEC_62196_T2" if pilot_mode else "DOMESTIC_M",
            format="SOCKET", power_type="AC_3_PHASE" if phases == 3 else "AC_1_PHASE",
            max_voltage_v=voltage, max_current_a=self.max_current_a,
            max_power_w=int(round(230 * self.max_current_a * phases)), phases=phases,
            status=self._connector_status or self._status(), last_updated_s=self._connector_updated_s,
            session_id=self.core.session_id, pilot_state=self.core.pilot,
            reservation_id=self._reservation[0] if self._reservation else None)]

    # --- what the load manager reads (``agent.load.runner``) -----------------------------------

    def connector_ids(self) -> list[str]:
        return [self.connector_id]

    def connector_wants_power(self, connector_id: str) -> bool:
        """A session is authorized to draw on the connector (it needs a share to be offered one)."""
        return connector_id == self.connector_id and self.core.active_auth_id is not None

    def connector_current_a(self, connector_id: str) -> tuple[tuple[float, ...], int] | None:
        """What the connector's own meter showed last, per phase, and when it was read (clock ms)."""
        reading = self._last_reading
        if reading is None or connector_id != self.connector_id:
            return None
        return tuple(reading.current_a), int(reading.meter_time_s * 1000)

    def load_status(self) -> dict | None:
        """The site's limit, the house's draw and each connector's share, or None without ``[load]``."""
        runner = getattr(self, "load", None)
        return None if runner is None else runner.status()

    def _update_view(self, sid: str, final: bool = False) -> SessionView:
        """Rebuild the session's view and tell the listeners."""
        view = self._views[sid] = self._build_view(sid, final)
        self._notify("session", view)
        return view

    def _build_view(self, sid: str, final: bool = False) -> SessionView:
        meta = self._meta.get(sid) or SessionMeta(source="unknown", reference=sid)
        now_s = self.clock.wall_s()
        live = self.core.session_id == sid and not final
        reading = self._last_reading
        cost = capped(meta.pricer.breakdown(), (meta.limits or {}).get("money_limit_paise")) \
            if meta.pricer is not None else None
        start_wh = meta.start_wh
        energy = cost.energy_wh if cost is not None else 0
        rec = self.journal.session(sid) if final else None
        return SessionView(
            session_id=sid, connector_id=self.connector_id, evse_uid=f"{self.config.site_id}-{self.connector_id}",
            auth_id=meta.auth_id, source=meta.source, token=meta.token, reference=meta.reference,
            status="ACTIVE" if live else "COMPLETED", state=self.core.state if live else "finished",
            start_s=meta.start_s, stop_s=rec.stop_time_s if rec else None, start_wh=start_wh,
            stop_wh=int(rec.stop_wh) if rec else None,
            energy_wh=int(rec.energy_wh) if rec else energy,
            power_w=(reading.power_w if reading is not None and live else 0.0),
            current_a=(tuple(reading.current_a) if reading is not None and live else ()),
            idle_s=(cost.parking_s if cost is not None else 0), limits=meta.limits or {},
            cost=cost, periods=meta.pricer.periods() if meta.pricer is not None else [],
            stop_reason=rec.stop_reason if rec else self.core.stop_reason, last_updated_s=now_s,
            currency=self._tariff.currency, tariff_id=self._tariff_dict.get("id"),
            meter_serial=self._meter_serial(), meter_model=self.board.meter.model)

    def session(self, session_id: str) -> SessionView | None:
        if session_id in self._views:
            if session_id == self.core.session_id:
                # A read is a snapshot: fresh figures, but no change notification.
                self._views[session_id] = self._build_view(session_id)
            return self._views[session_id]
        from agent.journal import UnknownSession

        try:
            rec = self.journal.session(session_id)
        except UnknownSession:
            return None
        return self._view_from_record(rec)

    def _view_from_record(self, rec) -> SessionView:
        auth = rec.auth or {}
        cost, periods = self._priced(rec, None) if rec.stop_wh is not None else (None, [])
        return SessionView(
            session_id=rec.session_id, connector_id=str(rec.connector_id),
            evse_uid=f"{self.config.site_id}-{rec.connector_id}",
            auth_id=auth.get("auth_id"), source=auth.get("source"), token=auth.get("token"), reference=auth.get("reference"),
            status="COMPLETED" if rec.stop_wh is not None else "ACTIVE", state="finished",
            start_s=rec.start_time_s, stop_s=rec.stop_time_s, start_wh=int(rec.start_wh),
            stop_wh=None if rec.stop_wh is None else int(rec.stop_wh),
            energy_wh=int(rec.energy_wh or 0), power_w=0.0, current_a=(), idle_s=0,
            limits=auth.get("limits") or {}, cost=cost, periods=periods, stop_reason=rec.stop_reason,
            last_updated_s=rec.stop_time_s or rec.last_time_s, currency=self._tariff.currency,
            tariff_id=rec.tariff_id, meter_serial=rec.meter_serial, meter_model=self.board.meter.model)

    def sessions(self, *, since_s: float | None = None, until_s: float | None = None) -> list[SessionView]:
        out: dict[str, SessionView] = {}
        # Filtered on last activity, as the views below are on last_updated: a session that
        # started before ``since_s`` and changed after it belongs in the answer.
        for rec in self.journal.sessions(active_since=since_s, limit=10_000):
            out[rec.session_id] = self._view_from_record(rec)
        for sid in list(self._views):
            out[sid] = self.session(sid)
        views = [v for v in out.values()
                 if (since_s is None or (v.last_updated_s or 0) >= since_s)
                 and (until_s is None or (v.last_updated_s or 0) < until_s)]
        views.sort(key=lambda v: (v.last_updated_s or 0, v.session_id))
        return views

    def receipt(self, session_id: str) -> dict | None:
        from agent.journal import JournalError

        try:
            text = self.journal.receipt(session_id)
        except JournalError:  # not journaled yet (the car has not asked for power) or unknown
            return None
        if text is None:
            return None
        return json.loads(text) if isinstance(text, (str, bytes)) else text

    def _prune_views(self) -> None:
        """Keep the newest finished sessions in memory; older ones are read from the journal.

        A charger runs for months: without a bound every session's view and pricer would stay.
        """
        finished = [sid for sid, v in self._views.items()
                    if v.status != "ACTIVE" and sid != self.core.session_id]
        for sid in finished[:-MAX_FINISHED_VIEWS]:
            self._views.pop(sid, None)
            self._meta.pop(sid, None)

    def add_listener(self, listener) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def _notify(self, kind: str, obj) -> None:
        for listener in list(self._listeners):
            try:
                listener(kind, obj)
            except Exception:  # a broken listener must not stop the charger
                log.exception("listener %r failed on %s", listener, kind)
