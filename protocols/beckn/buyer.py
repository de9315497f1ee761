"""Requests as a buyer builds them (``search`` .. ``support``), for the buyer-side node,
tools and tests; the charger's strict readers accept exactly these shapes.
"""
from __future__ import annotations

from protocols.beckn.tags import signed_tag, tag_group
from protocols.beckn.values import energy_text, format_timestamp, money_text
from protocols.beckn.vocabulary import (
    FULFILLMENT_TYPE,
    ITEM_ID,
    TAG_CERTIFICATE,
    TAG_SEARCH,
    UPDATE_TARGET,
)


def _request(ctx: dict, action: str, message: dict) -> dict:
    return {"context": {**ctx, "action": action}, "message": message}


def search(ctx: dict, *, gps: tuple[float, float], radius_m: int, connector_type: str | None = None,
           min_power_w: int | None = None, max_price_paise_per_kwh: int | None = None,
           start_s: float | None = None, end_s: float | None = None, energy_wh: int | None = None,
           currency: str = "INR") -> dict:
    """Chargers within ``radius_m`` of ``gps``, optionally filtered; price ceiling incl. GST."""
    stop: dict = {"type": "start", "location": {"circle": {
        "gps": f"{gps[0]:.6f},{gps[1]:.6f}",
        "radius": {"type": "CONSTANT", "value": energy_text(int(radius_m)), "unit": "km"}}}}
    if start_s is not None or end_s is not None:
        rng = {}
        if start_s is not None:
            rng["start"] = format_timestamp(start_s)
        if end_s is not None:
            rng["end"] = format_timestamp(end_s)
        stop["time"] = {"range": rng}
    fulfillment: dict = {"type": FULFILLMENT_TYPE, "stops": [stop]}
    wants = {}
    if connector_type is not None:
        wants["connector-type"] = connector_type
    if min_power_w is not None:
        wants["min-power-kw"] = energy_text(int(min_power_w))
    if wants:
        fulfillment["tags"] = [tag_group(TAG_SEARCH, wants)]
    item: dict = {"descriptor": {"code": ITEM_ID}}
    if energy_wh is not None:
        item["quantity"] = {"selected": {"measure": {"value": energy_text(energy_wh), "unit": "kWh"}}}
    if max_price_paise_per_kwh is not None:
        item["price"] = {"currency": currency + "/kWh", "maximum_value": money_text(max_price_paise_per_kwh)}
    return _request(ctx, "search", {"intent": {"item": item, "fulfillment": fulfillment}})


def _order(*, provider_id, item_id, fulfillment_id, energy_wh, budget_paise, duration_s, start_s,
           currency, certificate, billing=None) -> dict:
    asked = [x is not None for x in (energy_wh, budget_paise, duration_s)]
    if sum(asked) > 1:
        raise ValueError("ask for one of energy_wh, budget_paise or duration_s, not several")
    item: dict = {"id": item_id}
    if energy_wh is not None:
        item["quantity"] = {"selected": {"measure": {"value": energy_text(energy_wh), "unit": "kWh"}}}
    elif duration_s is not None:
        if duration_s % 60:
            raise ValueError("duration_s must be whole minutes")
        item["quantity"] = {"selected": {"measure": {"value": str(duration_s // 60), "unit": "minute"}}}
    elif budget_paise is not None:
        item["price"] = {"currency": currency, "maximum_value": money_text(budget_paise)}
    order: dict = {"provider": {"id": provider_id}, "items": [item]}
    fulfillment: dict = {"type": FULFILLMENT_TYPE}
    if fulfillment_id is not None:
        fulfillment["id"] = fulfillment_id
    if start_s is not None:
        fulfillment["stops"] = [{"type": "start", "time": {"timestamp": format_timestamp(start_s)}}]
    if billing:
        person = {k: billing[k] for k in ("phone", "email") if billing.get(k)}
        if person:
            fulfillment["customer"] = {"contact": person}
        if billing.get("name"):
            fulfillment.setdefault("customer", {})["person"] = {"name": billing["name"]}
        order["billing"] = {k: v for k, v in billing.items() if k in ("name", "email", "phone") and v}
    order["fulfillments"] = [fulfillment]
    if certificate is not None:
        order["tags"] = [signed_tag(TAG_CERTIFICATE, certificate)]
    return order


def select(ctx: dict, *, provider_id: str, item_id: str = ITEM_ID, fulfillment_id: str | None = None,
           energy_wh: int | None = None, budget_paise: int | None = None, duration_s: int | None = None,
           start_s: float | None = None, currency: str = "INR", certificate: dict | None = None) -> dict:
    return _request(ctx, "select", {"order": _order(
        provider_id=provider_id, item_id=item_id, fulfillment_id=fulfillment_id, energy_wh=energy_wh,
        budget_paise=budget_paise, duration_s=duration_s, start_s=start_s, currency=currency,
        certificate=certificate)})


def init(ctx: dict, *, provider_id: str, item_id: str = ITEM_ID, fulfillment_id: str | None = None,
         energy_wh: int | None = None, budget_paise: int | None = None, duration_s: int | None = None,
         start_s: float | None = None, currency: str = "INR", certificate: dict | None = None,
         billing: dict | None = None) -> dict:
    return _request(ctx, "init", {"order": _order(
        provider_id=provider_id, item_id=item_id, fulfillment_id=fulfillment_id, energy_wh=energy_wh,
        budget_paise=budget_paise, duration_s=duration_s, start_s=start_s, currency=currency,
        certificate=certificate, billing=billing)})


def confirm(ctx: dict, *, provider_id: str, item_id: str = ITEM_ID, fulfillment_id: str | None = None,
            energy_wh: int | None = None, budget_paise: int | None = None, duration_s: int | None = None,
            start_s: float | None = None, currency: str = "INR", certificate: dict | None = None,
            billing: dict | None = None, payment_status: str = "PAID", amount_paise: int | None = None,
            payment_ref: str | None = None, payment_type: str = "PRE-ORDER") -> dict:
    """``payment_ref`` is the buyer's UPI reference of the payment made to the intent."""
    order = _order(provider_id=provider_id, item_id=item_id, fulfillment_id=fulfillment_id,
                   energy_wh=energy_wh, budget_paise=budget_paise, duration_s=duration_s, start_s=start_s,
                   currency=currency, certificate=certificate, billing=billing)
    params: dict = {"currency": currency}
    if amount_paise is not None:
        params["amount"] = money_text(amount_paise)
    if payment_ref is not None:
        params["transaction_id"] = payment_ref
    order["payments"] = [{"collected_by": "BPP", "params": params, "status": payment_status,
                          "type": payment_type}]
    return _request(ctx, "confirm", {"order": order})


def update(ctx: dict, *, order_id: str, command: str, fulfillment_id: str | None = None) -> dict:
    fulfillment: dict = {"type": FULFILLMENT_TYPE, "state": {"descriptor": {"code": command}}}
    if fulfillment_id is not None:
        fulfillment["id"] = fulfillment_id
    return _request(ctx, "update", {"update_target": UPDATE_TARGET,
                                    "order": {"id": order_id, "fulfillments": [fulfillment]}})


def status(ctx: dict, *, order_id: str) -> dict:
    return _request(ctx, "status", {"order_id": order_id})


def track(ctx: dict, *, order_id: str) -> dict:
    return _request(ctx, "track", {"order_id": order_id})


def cancel(ctx: dict, *, order_id: str, reason_id: str = "5", reason_text: str | None = None) -> dict:
    message: dict = {"order_id": order_id, "cancellation_reason_id": reason_id}
    if reason_text:
        message["descriptor"] = {"short_desc": reason_text}
    return _request(ctx, "cancel", message)


def rating(ctx: dict, *, ref_id: str, value: int, category: str = "Order") -> dict:
    return _request(ctx, "rating", {"ratings": [{"id": ref_id, "rating_category": category,
                                                 "value": str(value)}]})


def support(ctx: dict, *, ref_id: str | None = None, phone: str | None = None,
            email: str | None = None) -> dict:
    sup = {k: v for k, v in (("ref_id", ref_id), ("phone", phone), ("email", email)) if v}
    return _request(ctx, "support", {"support": sup})
