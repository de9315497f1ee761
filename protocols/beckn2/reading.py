"""Reading a 2.0 contract into the 1.1 order the provider logic reads, with the paths to say where.

Why paths: the provider logic refuses with the 1.1 path of the field it read
(``message.order.items[0].quantity...``); a 2.0 buyer must be told the 2.0 place it filled
(``message.contract.commitments[0].resources[0].quantity``). Every part read here records the
pair, and ``PathMap.v2`` turns a refusal's path back.
"""
from __future__ import annotations

from typing import Any

from protocols.beckn.vocabulary import ITEM_ID
from protocols.beckn2 import documents as docs_
from protocols.beckn2.contract import DETAIL_TYPE, decimal_text, price_v1, quantity_v1, split_resource_id

PAID_STATUSES = ("COMPLETED", "CAPTURED", "SETTLED", "AUTHORIZED")


class PathMap:
    """1.1 path prefixes and the 2.0 paths they were read from (longest prefix wins)."""

    def __init__(self, pairs: list[tuple[str, str]] | None = None):
        self.pairs = list(pairs or [])

    def add(self, v1: str, v2: str) -> None:
        self.pairs.append((v1, v2))

    def v2(self, path: str | None) -> str | None:
        if not path:
            return path
        best = None
        for v1, v2 in self.pairs:
            if (path == v1 or path.startswith(v1 + ".") or path.startswith(v1 + "[")) \
                    and (best is None or len(v1) > len(best[0])):
                best = (v1, v2)
        if best is None:
            return path
        return best[1] + path[len(best[0]):]


def _obj(value: Any) -> dict:
    return value if isinstance(value, dict) else {}


def _first(value: Any) -> Any:
    return value[0] if isinstance(value, list) and value else None


def _detail(contract: dict) -> dict | None:
    attrs = contract.get("contractAttributes")
    if isinstance(attrs, dict) and attrs.get("@type") == DETAIL_TYPE and isinstance(attrs.get("order"), dict):
        return attrs["order"]
    return None


def _payments(contract: dict, paths: PathMap, base: str) -> list | None:
    settlements = contract.get("settlements")
    if settlements is None:
        return None
    if not isinstance(settlements, list):
        return settlements  # the reader refuses it at message.order.payments
    out = []
    for i, s in enumerate(settlements):
        if not isinstance(s, dict):
            out.append(s)
            continue
        p = f"{base}.settlements[{i}]"
        attrs = _obj(s.get("settlementAttributes"))
        amount = _obj(attrs.get("beckn:amount"))
        paid = s.get("status") == "COMPLETE" or attrs.get("beckn:paymentStatus") in PAID_STATUSES
        params: dict = {}
        if amount.get("value") is not None:
            params["amount"] = decimal_text(amount["value"])
        if amount.get("currency") is not None:
            params["currency"] = amount["currency"]
        if attrs.get("beckn:txnRef") is not None:
            params["transaction_id"] = attrs["beckn:txnRef"]
        pay: dict = {"status": "PAID" if paid else "NOT-PAID", "type": "PRE-ORDER", "params": params}
        if s.get("id") is not None or attrs.get("beckn:id") is not None:
            pay["id"] = s.get("id", attrs.get("beckn:id"))
        out.append(pay)
        v1 = f"message.order.payments[{i}]"
        paths.add(v1, p)
        paths.add(v1 + ".status", p + ".status")
        paths.add(v1 + ".params.amount", p + ".settlementAttributes.beckn:amount.value")
        paths.add(v1 + ".params.currency", p + ".settlementAttributes.beckn:amount.currency")
        paths.add(v1 + ".params.transaction_id", p + ".settlementAttributes.beckn:txnRef")
    return out


def _provider_id(contract: dict, offer: dict, bpp_id: str | None) -> Any:
    provider = offer.get("provider")
    if isinstance(provider, dict) and provider.get("id") is not None:
        return provider["id"]
    for part in contract.get("participants") or []:
        if isinstance(part, dict) and _obj(part.get("descriptor")).get("code") == "provider":
            return part.get("id")
    return bpp_id


def _billing(contract: dict) -> dict | None:
    for part in contract.get("participants") or []:
        attrs = _obj(part.get("participantAttributes")) if isinstance(part, dict) else {}
        if attrs.get("@type") == "beckn:Buyer":
            billing = {k1: attrs[k2] for k1, k2 in (("name", "beckn:displayName"), ("phone", "beckn:telephone"),
                                                    ("email", "beckn:email")) if attrs.get(k2) is not None}
            return billing or None
    return None


def _fulfillment(contract: dict, fid: str | None, paths: PathMap, base: str) -> dict | None:
    """The connector (the resource's EVSE) and the start asked for, as the 1.1 fulfillment."""
    perf = _first(contract.get("performance"))
    if not isinstance(perf, dict) and fid is None:
        return None
    ful: dict = {"type": "CHARGING"}
    perf = _obj(perf)
    if fid is not None or perf.get("id") is not None:
        ful["id"] = fid if fid is not None else perf.get("id")
    paths.add("message.order.fulfillments[0].id",
              base + ".commitments[0].resources[0].id" if fid else base + ".performance[0].id")
    start = _obj(_obj(perf.get("performanceAttributes")).get("preferences")).get("startTime")
    if start is not None:
        ful["stops"] = [{"type": "start", "time": {"timestamp": start}}]
        paths.add("message.order.fulfillments[0].stops[0].time.timestamp",
                  base + ".performance[0].performanceAttributes.preferences.startTime")
    return ful


def contract_to_order(contract: Any, *, bpp_id: str | None, paths: PathMap, use_detail: bool,
                      base: str = "message.contract") -> Any:
    """The 1.1 order a 2.0 contract asks for (requests) or states (callbacks, ``use_detail``)."""
    if not isinstance(contract, dict):
        paths.add("message.order", base)
        return contract
    paths.add("message.order", base)
    paths.add("message.order.id", base + ".id")
    paths.add("message.order.tags", base + ".descriptor.docs")
    docs = _obj(contract.get("descriptor")).get("docs")
    detail = _detail(contract) if use_detail else None
    if detail is not None:
        order = dict(detail)
        if contract.get("id") is not None:
            order = {"id": contract["id"], **order}
        tags = docs_.tags_of(docs) + list(order.get("tags") or [])
        if tags:
            order["tags"] = tags
        return order
    order: dict = {}
    if contract.get("id") is not None:
        order["id"] = contract["id"]
    commitments = contract.get("commitments")
    c0 = _first(commitments)
    cp = base + ".commitments[0]"
    paths.add("message.order.items", base + ".commitments")
    if not isinstance(c0, dict):
        order["items"] = commitments if not isinstance(commitments, list) else [c0] if c0 is not None else []
        return order
    offer = _obj(c0.get("offer"))
    r0 = _first(c0.get("resources"))
    paths.add("message.order.items[0]", cp + ".resources[0]")
    paths.add("message.order.items[0].id", cp + ".resources[0].id")
    paths.add("message.order.items[0].quantity.selected.measure", cp + ".resources[0].quantity")
    paths.add("message.order.items[0].quantity.selected.measure.value", cp + ".resources[0].quantity.unitQuantity")
    paths.add("message.order.items[0].quantity.selected.measure.unit", cp + ".resources[0].quantity.unitText")
    paths.add("message.order.items[0].price.maximum_value", cp + ".offer.considerations[0].considerationAttributes.value")
    paths.add("message.order.items[0].price", cp + ".offer.considerations[0].considerationAttributes")
    fid = None
    if isinstance(r0, dict):
        item_id, fid = split_resource_id(r0.get("id"), ITEM_ID)
        item: Any = {"id": item_id}
        q = r0.get("quantity")
        if isinstance(q, dict) and q:
            item["quantity"] = quantity_v1(q)
        price = price_v1(_first(offer.get("considerations")))
        if price is not None and "maximum_value" in price:
            item["price"] = price
    else:
        item = r0
    order["provider"] = {"id": _provider_id(contract, offer, bpp_id)}
    paths.add("message.order.provider", cp + ".offer.provider")
    order["items"] = [item] if item is not None else []
    ful = _fulfillment(contract, fid, paths, base)
    if ful is not None:
        order["fulfillments"] = [ful]
    billing = _billing(contract)
    if billing:
        order["billing"] = billing
        paths.add("message.order.billing", base + ".participants")
    payments = _payments(contract, paths, base)
    if payments is not None:
        order["payments"] = payments
    tags = docs_.tags_of(docs)
    if tags:
        order["tags"] = tags
    return order

