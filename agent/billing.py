"""Money of a finished or running session: its price, its receipt, the cost a limit foresees.

A part of ``agent.runtime.Runtime`` (a mixin sharing its state). A session is priced one way
(``_priced``): live from its pricer, or from the detail kept with its receipt, or, recovered
after a crash, as one period from its durable start and stop. The receipt's lines come from
the same breakdown, so they add up to exactly what is collected.
"""
from __future__ import annotations

import json
import logging

from agent.config import utc_offset_s
from agent.core.errors import AgentError
from agent.core.tariff import PARKING_TIME, CostBreakdown, Period, SessionPricer, capped, price_periods

log = logging.getLogger("urja.runtime")


class RuntimeBilling:
    """Pricing and receipts."""

    def _priced(self, rec, meta) -> tuple:
        """(breakdown, OCPI charging periods) of a session, from the best source there is: what
        the session costs the buyer, the tariff's price held to the session's money limit."""
        limit = ((rec.auth or {}).get("limits") or {}).get("money_limit_paise")
        if meta is not None and meta.pricer is not None:
            return capped(meta.pricer.breakdown(), limit), meta.pricer.periods()
        stored = self._stored_cost(rec.session_id)
        if stored is not None:  # priced live and kept with its receipt
            return stored
        # Recovered after a crash: only the durable start and stop are known, so the session
        # is priced as one period from its start (documented in ARCHITECTURE.md).
        offset = utc_offset_s(self.config.place.timezone, rec.start_time_s)
        elapsed = max(0, int((rec.stop_time_s or rec.start_time_s) - rec.start_time_s))
        energy = int(round((rec.stop_wh or rec.start_wh) - rec.start_wh))
        return capped(price_periods(self._tariff, [Period(int(rec.start_time_s), energy, elapsed, 0)], offset),
                      limit), []

    def _stored_cost(self, session_id: str):
        """(breakdown, periods) kept with a finished session's receipt, or None."""
        text = self.journal.cost_detail(session_id)
        if text is None:
            return None
        try:
            detail = json.loads(text)
            return (CostBreakdown.from_dict(detail["breakdown"]),
                    [Period.from_dict(start_s, dims) for start_s, dims in detail["periods"]])
        except (ValueError, KeyError, TypeError, AgentError) as exc:
            log.error("session %s: its stored cost detail is unreadable (%s); priced from the journal", session_id, exc)
            return None

    def _receipt_for_record(self, rec, cost=None, periods=None) -> str:
        from protocols.signing.ocmf import OcmfReading, build_ocmf
        from protocols.signing.receipt import CostBreakdown as ReceiptCost
        from protocols.signing.receipt import MeterIdentity, build_receipt

        meta = self._meta.get(rec.session_id)
        if cost is None:
            cost, periods = self._priced(rec, meta)
        auth = rec.auth or {}
        paid = auth.get("paid_paise", auth.get("paid_minor"))  # journals before 0.2 say "paid_minor"
        parts = _receipt_parts(cost)
        now_s = self.clock.wall_s()
        entry = self.identity.entry(now_s)
        model = self.board.meter.model
        serial = rec.meter_serial or "unknown"
        offset_min = utc_offset_s(self.config.place.timezone, rec.start_time_s) // 60
        # A charger with several connectors names the one (a single connector's receipts stay as they were).
        evse = ({"uid": f"{self.config.site_id}-{rec.connector_id}", "connector_id": str(rec.connector_id)}
                if getattr(self, "several_connectors", False) else None)
        ocmf = build_ocmf(metering_key=entry.metering_key, gateway_id=self.config.site_id,
                          gateway_serial=self.config.site_id, gateway_version="urja-0.1", pagination=1,
                          meter_vendor=_vendor(model), meter_model=model, meter_serial=serial,
                          identification=auth.get("token") or auth.get("reference"),
                          readings=[OcmfReading(rec.start_time_s, "B", int(rec.start_wh)),
                                    OcmfReading(rec.stop_time_s or now_s, "E", int(rec.stop_wh))],
                          utc_offset_min=offset_min, charge_point_id=evse["uid"] if evse else None)
        receipt = build_receipt(
            signer=self.identity.signer(now_s), certificate=self.identity.certificate,
            receipt_id=f"rcpt-{rec.session_id}", order_id=auth.get("reference") or rec.session_id,
            acceptance_digest=auth.get("acceptance_digest") or "",
            meter=MeterIdentity(vendor=_vendor(model), model=model, serial=serial),
            start_wh=int(rec.start_wh), start_s=rec.start_time_s, stop_wh=int(rec.stop_wh),
            stop_s=rec.stop_time_s or now_s, tariff_id=rec.tariff_id or "",
            tariff_digest=meta.tariff_digest if meta is not None and meta.tariff_digest else self._tariff_digest,
            costs=ReceiptCost(energy_paise=parts["energy"], time_paise=parts["time"],
                              parking_paise=parts["parking"], flat_paise=parts["flat"], tax_paise=parts["tax"]),
            # What the buyer actually paid before charging (prepaid orders); the receipt then
            # states the refund or the balance due. Without a prepayment nothing was paid: the
            # whole total is due (a signed receipt must not say "paid" for money never received).
            paid_paise=paid if isinstance(paid, int) and not isinstance(paid, bool) and paid >= 0 else 0,
            issued_s=now_s, currency=self._tariff.currency, ocmf=ocmf,
            waived_paise=max(0, cost.uncapped_paise - cost.total_paise),
            charging_periods=_receipt_periods(rec, periods), evse=evse)
        return json.dumps(receipt, sort_keys=True)

    def _cost_paise(self, energy_wh: int, elapsed_ms: int, idle_ms: int) -> int:
        """Cost of the running session at a hypothetical point, for predictive money limits."""
        sid = self.core.session_id
        meta = self._meta.get(sid) if sid else None
        if meta is None or meta.pricer is None:
            offset = utc_offset_s(self.config.place.timezone, self.clock.wall_s())
            start = int(self.clock.wall_s())
            return price_periods(self._tariff, [Period(start, energy_wh, max(0, (elapsed_ms - idle_ms) // 1000),
                                                       idle_ms // 1000)], offset).total_paise
        live = meta.pricer
        base: SessionPricer = live.pricer.copy()
        done_s = base.elapsed_s
        extra_wh = max(0, energy_wh - (live.last_wh - meta.start_wh))
        total_s = elapsed_ms // 1000
        extra_s = max(0, total_s - done_s)
        extra_idle = min(extra_s, max(0, idle_ms // 1000 - _parking_so_far(base)))
        base.add(Period(int(live.last_s), extra_wh, extra_s - extra_idle, extra_idle))
        return base.breakdown().total_paise


def _receipt_periods(rec, periods) -> list[dict] | None:
    """The charging periods a receipt states it was priced from, or None when it cannot say.

    A session recovered after a crash was priced as one period the receipt's own start and stop
    already state. Periods whose energy is not the receipt's are left out rather than signed
    (the verifier would rightly refuse them); the pricer's ``close`` makes that not happen.
    """
    from protocols.signing._codec import format_time

    if not periods:
        return None
    out = [{"start": format_time(p.start_s), "energy_wh": p.energy_wh, "time_s": p.time_s, "parking_s": p.parking_s}
           for p in periods if p.energy_wh or p.time_s or p.parking_s or not p.reservation_s]
    priced_wh = sum(p["energy_wh"] for p in out)
    if priced_wh != int(rec.stop_wh) - int(rec.start_wh):
        log.error("session %s: priced %d Wh but its readings say %d Wh; the receipt states no periods",
                  rec.session_id, priced_wh, int(rec.stop_wh) - int(rec.start_wh))
        return None
    return out


def _parking_so_far(pricer: SessionPricer) -> int:
    return pricer.dims[PARKING_TIME].volume


def _to_paise(value_u: int, digits: int) -> int:
    step = 10 ** (4 - digits)
    return (value_u + step // 2) // step


def _cost_detail(cost, periods) -> str:
    """The priced detail kept beside a receipt: the breakdown and the OCPI charging periods."""
    out = []
    for p in periods:
        dims = {k: getattr(p, k) for k in ("energy_wh", "time_s", "parking_s", "reservation_s", "min_current_ma",
                                           "max_current_ma", "min_power_w", "max_power_w")
                if getattr(p, k) is not None}
        out.append([p.start_s, dims])
    return json.dumps({"breakdown": cost.as_dict(), "periods": out}, separators=(",", ":"))


def _receipt_parts(cost) -> dict:
    """The receipt's cost lines in minor units, adding up to exactly what is collected.

    Reservation time and fee go with time and the flat fee. The tax line is the breakdown's
    VAT; when the total was clamped (max_price, min_price, a money limit) or the per-line
    rounding does not add up, the excl.-VAT lines give way, energy first, so the tax stated
    stays the tax on the amount collected.
    """
    digits = cost.minor_digits
    parts = {
        "energy": _to_paise(cost.energy_excl_u, digits),
        "time": _to_paise(cost.time_excl_u + cost.reservation_time_excl_u, digits),
        "parking": _to_paise(cost.parking_excl_u, digits),
        "flat": _to_paise(cost.flat_excl_u + cost.reservation_flat_excl_u, digits),
    }
    total = cost.total_paise
    tax = min(total, _to_paise(cost.total_vat_u, digits))
    excess = sum(parts.values()) - (total - tax)
    if excess < 0:  # clamped up (min_price) or rounded down: the difference is energy
        parts["energy"] -= excess
    for name in ("energy", "time", "parking", "flat"):
        if excess <= 0:
            break
        cut = min(excess, parts[name])
        parts[name] -= cut
        excess -= cut
    parts["tax"] = tax
    return parts


def _vendor(model: str) -> str:
    m = model.lower()
    for prefix, vendor in (("sdm", "Eastron"), ("abb", "ABB"), ("em3", "Carlo Gavazzi"),
                           ("eem", "Phoenix Contact"), ("iem", "Schneider Electric")):
        if m.startswith(prefix):
            return vendor
    return "unknown"
