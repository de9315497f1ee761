"""A 1.1 ``order`` and a 2.0 ``contract``, both ways.

How the parts map (what 2.0 has a place for goes there):

    order.id, order.status          contract.id, contract.status.code (DRAFT until confirmed)
    order.provider                  participants[] (descriptor.code "provider") and the offer's provider
    order.billing                   participants[] (descriptor.code "buyer", a beckn:Buyer)
    order.items[0]                  commitments[0]: its resource (the connector's EVSE when a
                                    fulfillment names one) with the asked quantity, and the offer
                                    with the unit price or the budget as a PriceSpecification
    order.fulfillments[0]           performance[0]: state code, ChargingSession attributes
                                    (preferences.startTime, sessionStatus, metered energy, cost)
    order.quote                     consideration[0]: PriceSpecification with its components
    order.payments                  settlements[]: a beckn:Payment (status, amount, UPI URL, reference)
    order.tags (signed documents)   contract.descriptor.docs (``documents``)

Callbacks also carry ``contractAttributes`` of type ``ChargeOrderDetail`` (the charger's own
JSON-LD type, ``urja-context.jsonld``): the 1.1 order as the provider logic made it, for a node
that reads this charger's profile (the reference node does). Requests are read from the 2.0
places only; a detail a buyer sends is ignored.
"""
from __future__ import annotations

from decimal import Decimal, InvalidOperation
from typing import Any

from protocols.beckn2 import documents as docs_
from protocols.beckn2 import vocabulary as v

EVSE_MARK = ":evse:"
DETAIL_TYPE = "ChargeOrderDetail"


def number(text: Any) -> Any:
    """A 1.1 decimal string as a JSON number (int when whole); other values unchanged."""
    if not isinstance(text, str):
        return text
    try:
        d = Decimal(text)
    except InvalidOperation:
        return text
    if not d.is_finite():
        return text
    return int(d) if d == d.to_integral_value() else float(d)


def decimal_text(value: Any) -> Any:
    """A JSON number as the 1.1 decimal string; other values unchanged (the reader refuses them)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        return value
    if isinstance(value, float) and value != value:
        return value
    d = Decimal(repr(value)) if isinstance(value, float) else Decimal(value)
    text = format(d.normalize(), "f")
    return text


def descriptor_v2(d: Any) -> dict:
    if not isinstance(d, dict):
        return {}
    keys = {"code": "code", "name": "name", "short_desc": "shortDesc", "long_desc": "longDesc"}
    return {keys[k]: val for k, val in d.items() if k in keys}


def descriptor_v1(d: Any) -> dict:
    if not isinstance(d, dict):
        return {}
    keys = {"code": "code", "name": "name", "shortDesc": "short_desc", "longDesc": "long_desc"}
    return {keys[k]: val for k, val in d.items() if k in keys}


def resource_id(bpp_id: str | None, item_id: str, fulfillment_id: Any) -> str:
    """The 2.0 resource of an ask: the connector's EVSE when one is named, else the item."""
    if isinstance(fulfillment_id, str) and fulfillment_id:
        return f"{bpp_id or 'charger'}{EVSE_MARK}{fulfillment_id}"
    return item_id


def split_resource_id(rid: Any, item_id: str) -> tuple[Any, str | None]:
    """``(item id, fulfillment id)`` of a resource id (an EVSE names its connector)."""
    if isinstance(rid, str) and EVSE_MARK in rid:
        return item_id, rid.rsplit(EVSE_MARK, 1)[1]
    return rid, None


def quantity_v2(q: Any) -> Any:
    """``{"selected": {"measure": {"value", "unit"}}}`` -> a schema.org QuantitativeValue."""
    measure = q.get("selected", {}).get("measure") if isinstance(q, dict) else None
    if not isinstance(measure, dict):
        return None
    unit = measure.get("unit")
    out = {"unitQuantity": number(measure.get("value"))}
    if isinstance(unit, str):
        out["unitText"] = unit
        code = v.UNIT_CODES.get(unit.lower())
        if code:
            out["unitCode"] = code
    return out


def quantity_v1(q: Any) -> Any:
    if not isinstance(q, dict):
        return q
    unit = q.get("unitText")
    if not isinstance(unit, str):
        unit = v.CODE_UNITS.get(q.get("unitCode"), q.get("unitCode"))
    return {"selected": {"measure": {"value": decimal_text(q.get("unitQuantity")), "unit": unit}}}


def price_v2(price: Any, *, code: str) -> dict:
    spec: dict = {"@context": v.CORE_CONTEXT, "@type": "PriceSpecification"}
    currency = price.get("currency")
    if isinstance(currency, str) and currency.endswith("/kWh"):
        spec["currency"] = currency[:-4]
        spec["applicableQuantity"] = {"unitText": "kWh", "unitCode": "KWH", "unitQuantity": 1}
    elif currency is not None:
        spec["currency"] = currency
    value = price.get("maximum_value") if code == "BUDGET" else price.get("value")
    spec["value"] = number(value)
    return {"id": code.lower(), "status": {"code": code}, "considerationAttributes": spec}


def price_v1(consideration: Any) -> dict | None:
    if not isinstance(consideration, dict):
        return None
    spec = consideration.get("considerationAttributes")
    code = consideration.get("status", {}).get("code") if isinstance(consideration.get("status"), dict) else None
    if not isinstance(spec, dict):
        return None
    currency = spec.get("currency")
    if code == "BUDGET":
        return {"currency": currency, "maximum_value": decimal_text(spec.get("value"))}
    per = spec.get("applicableQuantity")
    if isinstance(per, dict) and per.get("unitCode") == "KWH" and isinstance(currency, str):
        currency += "/kWh"
    return {"currency": currency, "value": decimal_text(spec.get("value"))}


def session_attributes(ful: dict) -> dict | None:
    """A fulfillment's facts in the EvChargingSession pack (start time, live figures, connector)."""
    from protocols.beckn.tags import tag_values

    out: dict = {}
    for stop in ful.get("stops") or []:
        t = stop.get("time") if isinstance(stop, dict) else None
        if isinstance(stop, dict) and stop.get("type") == "start" and isinstance(t, dict) \
                and isinstance(t.get("timestamp"), str):
            out["preferences"] = {"startTime": t["timestamp"]}
    specs = tag_values(ful.get("tags"), "charging-point-specs") or {}
    if specs.get("connector-type") in v.CONNECTOR_TYPES:
        out["connectorType"] = v.CONNECTOR_TYPES[specs["connector-type"]]
    power = number(specs.get("power-rating-kw"))
    if isinstance(power, (int, float)) and power >= 1:
        out["maxPowerKW"] = power
    availability = specs.get("availability")
    if availability:
        out["connectorStatus"] = "AVAILABLE" if availability == "Available" else "UNAVAILABLE"
    live = tag_values(ful.get("tags"), "charging-live") or {}
    status = live.get("session-status")
    if status in ("PENDING", "ACTIVE", "COMPLETED"):
        out["sessionStatus"] = status
    elif status == "INVALID":
        out["sessionStatus"] = "INTERRUPTED"
    energy = number(live.get("energy-wh"))
    if isinstance(energy, int) and energy >= 0:
        out["meteredEnergyKWh"] = energy / 1000
    cost = number(live.get("cost"))
    if isinstance(cost, (int, float)):
        out["totalCost"] = {"inclVat": cost}
    if isinstance(live.get("updated-at"), str):
        out["lastUpdated"] = live["updated-at"]
    if not out:
        return None
    return {"@context": v.SESSION_CONTEXT, "@type": "ChargingSession", **out}


def _performance(ful: Any, commitment_id: str) -> dict:
    if not isinstance(ful, dict):
        return {}
    perf: dict = {}
    if ful.get("id") is not None:
        perf["id"] = ful["id"]
    state = ful.get("state", {}).get("descriptor") if isinstance(ful.get("state"), dict) else None
    if isinstance(state, dict):
        perf["status"] = descriptor_v2(state)
    perf["commitmentIds"] = [commitment_id]
    attrs = session_attributes(ful)
    if attrs is not None:
        perf["performanceAttributes"] = attrs
    return perf


def _payment_status(v1_status: Any) -> tuple[str, str]:
    return ("COMPLETE", "COMPLETED") if v1_status == "PAID" else ("DRAFT", "PENDING")


def _settlement(pay: Any, consideration_id: str | None) -> dict:
    if not isinstance(pay, dict):
        return {}
    status, pay_status = _payment_status(pay.get("status"))
    params = pay.get("params") if isinstance(pay.get("params"), dict) else {}
    attrs: dict = {"@context": v.CORE_CONTEXT, "@type": "beckn:Payment", "beckn:paymentStatus": pay_status,
                   "beckn:beneficiary": "BPP"}
    if pay.get("id") is not None:
        attrs["beckn:id"] = pay["id"]
    if params.get("amount") is not None:
        attrs["beckn:amount"] = {"currency": params.get("currency"), "value": number(params["amount"])}
    if isinstance(pay.get("url"), str):
        attrs["beckn:paymentURL"] = pay["url"]
    if params.get("transaction_id") is not None:
        attrs["beckn:txnRef"] = params["transaction_id"]
    out: dict = {"status": status, "settlementAttributes": attrs}
    if pay.get("id") is not None:
        out["id"] = pay["id"]
    if consideration_id is not None:
        out["considerationId"] = consideration_id
    return out


def _quote(quote: Any) -> dict | None:
    if not isinstance(quote, dict) or not isinstance(quote.get("price"), dict):
        return None
    price = quote["price"]
    spec: dict = {"@context": v.CORE_CONTEXT, "@type": "PriceSpecification", "currency": price.get("currency"),
                  "value": number(price.get("value"))}
    components = []
    for i, part in enumerate(quote.get("breakup") or []):
        if isinstance(part, dict) and isinstance(part.get("price"), dict):
            components.append({"type": "UNIT" if i == 0 else "TAX", "value": number(part["price"].get("value")),
                               "currency": part["price"].get("currency"), "description": part.get("title", "")})
    if components:
        spec["components"] = components
    return {"id": quote.get("id") or "quote", "status": {"code": "QUOTED"}, "considerationAttributes": spec}


def _participants(order: dict) -> list:
    out = []
    provider = order.get("provider")
    if isinstance(provider, dict) and provider.get("id") is not None:
        out.append({"id": provider["id"],
                    "descriptor": {"code": "provider", **descriptor_v2(provider.get("descriptor"))}})
    billing = order.get("billing")
    if isinstance(billing, dict):
        buyer = {"@context": v.CORE_CONTEXT, "@type": "beckn:Buyer", "beckn:id": "buyer", "beckn:role": "BUYER"}
        for k1, k2 in (("name", "beckn:displayName"), ("phone", "beckn:telephone"), ("email", "beckn:email")):
            if billing.get(k1) is not None:
                buyer[k2] = billing[k1]
        out.append({"id": "buyer", "descriptor": {"code": "buyer"}, "participantAttributes": buyer})
    return out


def order_to_contract(order: dict, *, bpp_id: str | None, detail: bool) -> dict:
    """A 1.1 order (as the provider logic or the reference node made it) as a 2.0 contract."""
    contract: dict = {}
    if order.get("id") is not None:
        contract["id"] = order["id"]
    docs, other_tags = docs_.split_tags(order.get("tags"))
    if docs:
        contract["descriptor"] = {"docs": docs}
    items = order.get("items") if isinstance(order.get("items"), list) else []
    fuls = order.get("fulfillments") if isinstance(order.get("fulfillments"), list) else []
    item = items[0] if items and isinstance(items[0], dict) else {}
    ful = fuls[0] if fuls and isinstance(fuls[0], dict) else {}
    item_id = item.get("id", "energy")
    rid = resource_id(bpp_id, item_id, ful.get("id"))
    resource: dict = {"id": rid}
    if item.get("descriptor"):
        resource["descriptor"] = descriptor_v2(item["descriptor"])
    quantity = quantity_v2(item.get("quantity"))
    resource["quantity"] = quantity if quantity is not None else {}
    offer: dict = {"id": item_id, "resourceIds": [rid]}
    provider = order.get("provider")
    if isinstance(provider, dict) and provider.get("id") is not None:
        offer["provider"] = {"id": provider["id"], "descriptor": descriptor_v2(provider.get("descriptor"))}
    price = item.get("price")
    if isinstance(price, dict):
        offer["considerations"] = [price_v2(price, code="BUDGET" if "maximum_value" in price else "UNIT_PRICE")]
    active = order.get("status") in ("ACTIVE", "COMPLETE", "COMPLETED")
    contract["commitments"] = [{"id": item_id, "status": {"descriptor": {"code": "ACTIVE" if active else "DRAFT"}},
                                "resources": [resource], "offer": offer}]
    quote = _quote(order.get("quote"))
    if quote is not None:
        contract["consideration"] = [quote]
    participants = _participants(order)
    if participants:
        contract["participants"] = participants
    if ful:
        contract["performance"] = [_performance(ful, item_id)]
    pays = order.get("payments") if isinstance(order.get("payments"), list) else []
    if pays:
        contract["settlements"] = [_settlement(p, quote["id"] if quote else None) for p in pays]
    contract["status"] = {"code": v.CONTRACT_STATUS.get(order.get("status"), "DRAFT")}
    if detail:
        rest = {k: val for k, val in order.items() if k not in ("id", "tags")}
        if other_tags:
            rest["tags"] = other_tags
        contract["contractAttributes"] = {"@context": v.URJA_CONTEXT, "@type": DETAIL_TYPE, "order": rest}
    return contract
