"""The site, its connectors, its prices and each order as a buyer sees them in Beckn
documents (fulfillments, order bodies, payments with the UPI intent, live charging data).

Why one place: the catalog, the quote, the contract and every later status show the same
connector and the same prices, and must agree field for field.
"""
from __future__ import annotations

from typing import Any
from urllib.parse import quote as _q

from agent.config import utc_offset_s
from agent.core.tariff import TariffError, parse_fixed
from agent.tariff_file import tariff_digest
from protocols.beckn import messages as m
from protocols.beckn.order_record import Transaction


def u_to_paise(u: int) -> int:
    """Tariff money (1/10,000 of the unit) to the paise a buyer is shown, half away from zero."""
    return (u + 50) // 100 if u >= 0 else -((-u + 50) // 100)


class PresentationMixin:
    """Documents for the ``Bpp``, from its ``service``, ``site``, ``policy`` and ``clock``."""

    @staticmethod
    def _tariff_digest(tariff: dict) -> str:
        """Same function as the receipt's tariff digest, so offer, quote and receipt can be matched."""
        return tariff_digest(tariff)

    def _offset(self, t_s: float) -> int:
        tz = getattr(self.site.place, "timezone", None) or "UTC"
        return utc_offset_s(tz, t_s)

    def _provider_descriptor(self) -> dict:
        d = {"name": self.site.name}
        if getattr(self.site, "operator", ""):
            d["short_desc"] = self.site.operator
        return d

    def _gps(self) -> str:
        return f"{self.site.place.lat:.6f},{self.site.place.lon:.6f}"

    def _connectors(self) -> dict:
        return {c.connector_id: c for c in self.service.connectors()}

    @staticmethod
    def _power_w(c) -> int:
        if c.max_power_w:
            return int(c.max_power_w)
        volts = c.max_voltage_v or 230
        return int(volts * (c.max_current_a or 16) * (c.phases or 1))

    def _fulfillment(self, c, *, state: str | None = None, start_s: float | None = None,
                     instructions: str | None = None) -> dict:
        avail = {"AVAILABLE": "Available", "CHARGING": "Occupied", "BLOCKED": "Occupied",
                 "RESERVED": "Reserved"}.get(c.status, "Unavailable")
        stop: dict = {"type": "start", "location": {"id": self.site.site_id, "gps": self._gps()}}
        if start_s is not None:
            stop["time"] = {"timestamp": m.format_timestamp(start_s)}
        if instructions:
            stop["instructions"] = {"name": "Charging instructions", "short_desc": instructions}
        ful = {
            "id": c.connector_id, "type": m.FULFILLMENT_TYPE, "stops": [stop],
            "tags": [m.tag_group(m.TAG_SPECS, {
                "charger-type": "DC" if str(c.power_type or "").startswith("DC") else "AC",
                "connector-type": c.standard or "UNKNOWN",
                "power-rating-kw": m.energy_text(self._power_w(c)),
                "availability": avail}, name="Charging Point Specifications")],
        }
        ful["state"] = {"descriptor": {"code": state or avail.lower()}}
        return ful

    def _energy_price_paise(self, tariff: dict) -> int | None:
        """Per-kWh price incl. VAT of the first ENERGY component, for display only."""
        for el in tariff.get("elements") or []:
            if (el.get("restrictions") or {}).get("reservation"):
                continue
            for pc in el.get("price_components") or []:
                if pc.get("type") == "ENERGY":
                    try:
                        u = parse_fixed(pc.get("price"), 4, "price")
                        vat = parse_fixed(pc.get("vat", 0), 2, "vat")
                    except TariffError:
                        return None
                    return u_to_paise(u * (10000 + vat) // 10000)
        return None

    def _cancellation_fee_paise(self, tariff: dict) -> int:
        """The tariff's own price for a reservation not used, else the site policy's fee."""
        for el in tariff.get("elements") or []:
            if (el.get("restrictions") or {}).get("reservation") == "RESERVATION_EXPIRES":
                for pc in el.get("price_components") or []:
                    if pc.get("type") == "FLAT":
                        try:
                            u = parse_fixed(pc.get("price"), 4, "price")
                            vat = parse_fixed(pc.get("vat", 0), 2, "vat")
                        except TariffError:
                            break
                        return u_to_paise(u * (10000 + vat) // 10000)
        return self.policy.cancellation_fee_paise

    def _cancellation_terms(self, fee_paise: int, currency: str) -> list:
        return [{"fulfillment_state": {"descriptor": {"code": m.STATE_CONFIRMED}}, "reason_required": False,
                 "cancellation_fee": {"amount": {"currency": currency, "value": m.money_text(fee_paise)}}}]

    def _order_body(self, tx: Transaction, *, state: str, status: str | None = None, live: dict | None = None,
                    extra_tags: list | None = None, instructions: str | None = None) -> dict:
        c = self._connectors().get(tx.connector_id)
        item: dict = {"id": m.ITEM_ID, "descriptor": {"code": "energy", "name": "EV charging energy"}}
        price = self._energy_price_paise(self.service.tariff())
        if price is not None:
            item["price"] = {"currency": f"{tx.currency}/kWh", "value": m.money_text(price)}
        if tx.energy_wh:
            item["quantity"] = {"selected": {"measure": {"value": m.energy_text(tx.energy_wh), "unit": "kWh"}}}
        if c is not None:
            ful = self._fulfillment(c, state=state, start_s=tx.start_s, instructions=instructions)
        else:
            ful = {"id": tx.connector_id, "type": m.FULFILLMENT_TYPE, "state": {"descriptor": {"code": state}}}
        if live:
            ful.setdefault("tags", []).append(m.tag_group(m.TAG_LIVE, live, name="Live charging data"))
        order: dict = {}
        if tx.order_id:
            order["id"] = tx.order_id
        if status:
            order["status"] = status
        order.update(provider={"id": self.bpp_id, "descriptor": self._provider_descriptor()},
                     items=[item], fulfillments=[ful])
        if tx.billing:
            order["billing"] = dict(tx.billing)
        breakup_item: dict = {"id": m.ITEM_ID, "descriptor": {"name": "Estimated energy"}}
        if tx.energy_wh:
            breakup_item["quantity"] = {"selected": {"measure": {"value": m.energy_text(tx.energy_wh),
                                                                 "unit": "kWh"}}}
        order["quote"] = {
            "id": tx.quote_id, "price": {"currency": tx.currency, "value": m.money_text(tx.price_paise)},
            "breakup": [
                {"item": breakup_item, "title": "Charging incl. GST",
                 "price": {"currency": tx.currency, "value": m.money_text(tx.price_paise)}},
                {"title": "of which GST", "price": {"currency": tx.currency, "value": m.money_text(tx.tax_paise)}},
            ],
            "ttl": m.duration_text(self.policy.quote_ttl_s),
        }
        tags = [m.signed_tag(m.TAG_QUOTE, tx.quote_doc)]
        if extra_tags:
            tags.extend(extra_tags)
        order["tags"] = tags
        return order

    def _payment(self, tx: Transaction, *, status: str | None = None) -> dict:
        amount = tx.paid_paise if status == "PAID" and tx.paid_paise else tx.price_paise
        params = {"amount": m.money_text(amount), "currency": tx.currency}
        pay = {"id": tx.payment_id, "collected_by": "BPP", "type": tx.payment_type,
               "status": status or tx.payment_status or "NOT-PAID", "params": params}
        if self.site.upi_vpa:
            params["virtual_payment_address"] = self.site.upi_vpa
            pay["url"] = (f"upi://pay?pa={_q(self.site.upi_vpa, safe='@')}&pn={_q(self.site.name)}"
                          f"&am={m.money_text(amount)}&cu={_q(tx.currency)}&tr={_q(tx.transaction_id)}"
                          f"&tn={_q('EV charging ' + tx.transaction_id[:8])}")
        if tx.payment_ref:
            params["transaction_id"] = tx.payment_ref
        return pay

    def _live(self, tx: Transaction) -> tuple[dict, Any]:
        s = self.service.session(tx.session_id) if tx.session_id else None
        if s is None:
            return {}, None
        live = {"session-id": s.session_id, "session-status": s.status or "", "state": s.state or "",
                "energy-wh": s.energy_wh or 0, "power-w": s.power_w or 0,
                "updated-at": m.format_timestamp(s.last_updated_s or self.clock())}
        if s.cost is not None:
            live["cost"] = m.money_text(s.cost.total_paise)
            live["currency"] = s.cost.currency
        return live, s

    @staticmethod
    def _state_of(s) -> str:
        if s is None:
            return m.STATE_CONFIRMED
        st = (s.state or "").lower()
        if s.status in ("COMPLETED", "INVALID"):
            return m.STATE_ENDED
        if "fault" in st or "error" in st:
            return m.STATE_FAULT
        if "pause" in st or "suspend" in st:
            return m.STATE_PAUSED
        if s.status == "PENDING":
            return m.STATE_PENDING
        return m.STATE_STARTED

    def _status_order(self, tx: Transaction) -> dict:
        live, s = self._live(tx)
        if tx.stage == "cancelled":
            state, status = m.STATE_CANCELLED, "CANCELLED"
        elif tx.stage == "confirmed":
            state, status = (m.STATE_RESERVED if tx.reserve_ahead else m.STATE_CONFIRMED), "ACTIVE"
        else:
            state = self._state_of(s)
            status = "COMPLETE" if tx.receipt is not None else "ACTIVE"
        extra = [m.signed_tag(m.TAG_RECEIPT, tx.receipt)] if tx.receipt is not None else None
        order = self._order_body(tx, state=state, status=status, live=live, extra_tags=extra)
        order["payments"] = [self._payment(tx, status=tx.payment_status)]
        return order
