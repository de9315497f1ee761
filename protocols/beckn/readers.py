"""Reading incoming messages strictly into typed records.

Why strict: nothing reaches the charger that was not checked field by field, and a refusal
names the JSON path and what is allowed there (the spec file is not shipped, so these checks
are the charger's own reading of the Beckn ``transaction.yaml`` fields it uses).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from protocols.beckn.errors import BecknError, invalid
from protocols.beckn.tags import tag_values
from protocols.beckn.values import parse_duration, parse_gps, parse_money, parse_scaled, parse_timestamp, shown
from protocols.beckn.vocabulary import (
    CALLBACK_ACTIONS,
    DEFAULT_DOMAIN,
    END_CHARGING,
    ENERGY_UNITS_WH,
    MAX_LIST,
    MAX_TEXT,
    PAYMENT_STATUSES,
    PAYMENT_TYPES,
    RATING_CATEGORIES,
    REQUEST_ACTIONS,
    SIGNED_VALUE,
    START_CHARGING,
    TAG_CERTIFICATE,
    TAG_SEARCH,
    TIME_UNITS_S,
    UPDATE_TARGET,
)
from protocols.mqtt.topics import MAX_SEARCH_CELLS, SEARCH_PRECISIONS, search_reaches
from protocols.signing.detached import load_json
from protocols.signing.errors import SignatureError

_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@/+\-]{0,127}$")


def _obj(value: Any, path: str, *, required: bool = True) -> dict | None:
    if value is None and not required:
        return None
    if not isinstance(value, dict):
        raise invalid(path, f"must be an object, got {shown(value) if value is not None else 'nothing'}")
    return value


def _list(value: Any, path: str, *, required: bool = True, min_items: int = 0) -> list | None:
    if value is None and not required:
        return None
    if not isinstance(value, list):
        raise invalid(path, f"must be a list, got {shown(value) if value is not None else 'nothing'}")
    if len(value) > MAX_LIST:
        raise invalid(path, f"at most {MAX_LIST} entries, got {len(value)}")
    if len(value) < min_items:
        raise invalid(path, f"needs at least {min_items} entr{'y' if min_items == 1 else 'ies'}")
    return value


def _text(value: Any, path: str, *, required: bool = True, max_len: int = MAX_TEXT) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise invalid(path, f"must be a non-empty string, got {shown(value) if value is not None else 'nothing'}")
    if len(value) > max_len:
        raise invalid(path, f"longer than {max_len} characters")
    return value


def _ident(value: Any, path: str, *, required: bool = True) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or not _ID_RE.match(value):
        raise invalid(path, "must be an id of 1-128 letters, digits or ._:@/+- "
                            f"(got {shown(value) if value is not None else 'nothing'})")
    return value


def _uri(value: Any, path: str) -> str:
    text = _text(value, path, max_len=512)
    if not re.match(r"^(https?|mqtts?)://[^\s/?#]+[^\s]*$", text):
        raise invalid(path, f"must be an http(s) or mqtt(s) URI, got {shown(text)}")
    return text


@dataclass(frozen=True)
class Context:
    domain: str
    action: str
    version: str
    bap_id: str
    bap_uri: str
    bpp_id: str | None
    bpp_uri: str | None
    transaction_id: str
    message_id: str
    timestamp_s: float
    ttl_s: int | None
    city_code: str | None
    country_code: str | None
    raw: dict = field(repr=False, compare=False)


def parse_context(value: Any, *, action: str, domain: str | None = DEFAULT_DOMAIN) -> Context:
    """The context of any message; ``domain=None`` accepts any domain."""
    ctx = _obj(value, "context")
    got_domain = _text(ctx.get("domain"), "context.domain", max_len=128)
    if domain is not None and got_domain != domain:
        raise invalid("context.domain", f"{got_domain!r} is not served here (allowed: {domain})")
    got_action = _text(ctx.get("action"), "context.action", max_len=32)
    if got_action != action:
        raise invalid("context.action", f"{got_action!r} sent to the {action!r} endpoint")
    version = _text(ctx.get("version"), "context.version", max_len=16)
    if not version.startswith("1.1"):
        raise invalid("context.version", f"core version {version!r} (allowed: 1.1.x)")
    bap_id = _ident(ctx.get("bap_id"), "context.bap_id")
    bap_uri = _uri(ctx.get("bap_uri"), "context.bap_uri")
    bpp_id = _ident(ctx.get("bpp_id"), "context.bpp_id", required=False)
    bpp_uri = _uri(ctx.get("bpp_uri"), "context.bpp_uri") if ctx.get("bpp_uri") is not None else None
    transaction_id = _ident(ctx.get("transaction_id"), "context.transaction_id")
    message_id = _ident(ctx.get("message_id"), "context.message_id")
    timestamp_s = parse_timestamp(ctx.get("timestamp"), "context.timestamp")
    ttl_s = parse_duration(ctx["ttl"], "context.ttl") if ctx.get("ttl") is not None else None
    city = country = None
    loc = _obj(ctx.get("location"), "context.location", required=False)
    if loc is not None:
        c = _obj(loc.get("city"), "context.location.city", required=False)
        city = _text(c.get("code"), "context.location.city.code", required=False, max_len=64) if c else None
        c = _obj(loc.get("country"), "context.location.country", required=False)
        country = _text(c.get("code"), "context.location.country.code", required=False, max_len=8) if c else None
    return Context(got_domain, got_action, version, bap_id, bap_uri, bpp_id, bpp_uri, transaction_id,
                   message_id, timestamp_s, ttl_s, city, country, ctx)


@dataclass(frozen=True)
class SearchIntent:
    gps: tuple[float, float] | None
    radius_m: int | None
    connector_type: str | None
    min_power_w: int | None
    max_price_paise_per_kwh: int | None
    start_s: float | None
    end_s: float | None
    energy_wh: int | None


@dataclass(frozen=True)
class Payment:
    status: str
    type: str
    amount_paise: int | None
    currency: str | None
    reference: str | None


@dataclass(frozen=True)
class OrderAsk:
    """What ``select``/``init``/``confirm`` ask for."""

    order_id: str | None
    provider_id: str
    item_id: str
    fulfillment_id: str | None
    energy_wh: int | None
    budget_paise: int | None
    duration_s: int | None
    start_s: float | None
    billing: dict | None
    payment: Payment | None
    certificate: dict | None


@dataclass(frozen=True)
class UpdateAsk:
    order_id: str | None
    fulfillment_id: str | None
    command: str


@dataclass(frozen=True)
class CancelAsk:
    order_id: str
    reason_id: str | None
    reason_text: str | None


@dataclass(frozen=True)
class RatingAsk:
    ref_id: str
    category: str | None
    value: int


@dataclass(frozen=True)
class SupportAsk:
    ref_id: str | None
    phone: str | None
    email: str | None


@dataclass(frozen=True)
class Request:
    """A parsed incoming request: ``body`` is one of the ``*Ask``/``SearchIntent`` types, a str
    (order id for ``status``/``track``) or a list of ``RatingAsk``."""

    context: Context
    body: Any
    certificate: dict | None = None


def _measure(q: Any, path: str) -> tuple[str, str] | None:
    q = _obj(q, path, required=False)
    if q is None:
        return None
    sel = _obj(q.get("selected"), path + ".selected", required=False)
    if sel is None:
        return None
    m = _obj(sel.get("measure"), path + ".selected.measure")
    unit = _text(m.get("unit"), path + ".selected.measure.unit", max_len=16)
    return unit, m.get("value")


def _energy(unit: str, value: Any, path: str) -> int:
    scale = ENERGY_UNITS_WH.get(unit.lower())
    if scale is None:
        raise invalid(path + ".unit", f"unit {unit!r} (allowed: kWh, Wh, minute)")
    wh = parse_scaled(value, path + ".value", 3) * scale // 1000
    if not 1 <= wh <= 500_000:
        raise invalid(path + ".value", f"energy must be 1 Wh .. 500 kWh, got {wh} Wh")
    return wh


def _certificate(groups: Any, path: str) -> dict | None:
    if groups is None:
        return None
    _list(groups, path)
    values = tag_values(groups, TAG_CERTIFICATE)
    if values is None:
        return None
    text = values.get(SIGNED_VALUE)
    if text is None:
        raise invalid(path, f"tag group {TAG_CERTIFICATE!r} has no {SIGNED_VALUE!r} tag")
    try:
        doc = load_json(text, max_bytes=16 * 1024)
    except SignatureError as exc:
        raise invalid(path, f"{TAG_CERTIFICATE}: {exc}") from None
    if not isinstance(doc, dict):
        raise invalid(path, f"{TAG_CERTIFICATE} must be a JSON object")
    return doc


def _parse_search(msg: dict, currency: str) -> SearchIntent:  # noqa: C901
    intent = _obj(msg.get("intent"), "message.intent")
    gps = radius_m = radius_path = connector = min_power_w = price = start_s = end_s = energy_wh = None
    ful = _obj(intent.get("fulfillment"), "message.intent.fulfillment", required=False)
    if ful is not None:
        stops = _list(ful.get("stops"), "message.intent.fulfillment.stops", required=False) or []
        for i, stop in enumerate(stops):
            p = f"message.intent.fulfillment.stops[{i}]"
            stop = _obj(stop, p)
            loc = _obj(stop.get("location"), p + ".location", required=False)
            circle = _obj(loc.get("circle"), p + ".location.circle", required=False) if loc else None
            if circle is not None:
                gps = parse_gps(circle.get("gps"), p + ".location.circle.gps")
                r = _obj(circle.get("radius"), p + ".location.circle.radius")
                unit = _text(r.get("unit"), p + ".location.circle.radius.unit", max_len=8)
                if unit not in ("km", "m"):
                    raise invalid(p + ".location.circle.radius.unit", f"unit {unit!r} (allowed: km, m)")
                radius_m = parse_scaled(r.get("value"), p + ".location.circle.radius.value", 3)
                radius_m = radius_m if unit == "km" else radius_m // 1000
                radius_path = p + ".location.circle.radius"
            elif loc is not None and loc.get("gps") is not None:
                gps = parse_gps(loc.get("gps"), p + ".location.gps")
            t = _obj(stop.get("time"), p + ".time", required=False)
            rng = _obj(t.get("range"), p + ".time.range", required=False) if t else None
            if rng is not None:
                if rng.get("start") is not None:
                    start_s = parse_timestamp(rng["start"], p + ".time.range.start")
                if rng.get("end") is not None:
                    end_s = parse_timestamp(rng["end"], p + ".time.range.end")
        wants = tag_values(_list(ful.get("tags"), "message.intent.fulfillment.tags", required=False),
                           TAG_SEARCH) or {}
        if "connector-type" in wants:
            connector = _text(wants["connector-type"], "message.intent.fulfillment.tags.connector-type", max_len=64)
        if "min-power-kw" in wants:
            min_power_w = parse_scaled(wants["min-power-kw"], "message.intent.fulfillment.tags.min-power-kw", 3)
    item = _obj(intent.get("item"), "message.intent.item", required=False)
    if item is not None:
        m = _measure(item.get("quantity"), "message.intent.item.quantity")
        if m is not None:
            energy_wh = _energy(m[0], m[1], "message.intent.item.quantity.selected.measure")
        pr = _obj(item.get("price"), "message.intent.item.price", required=False)
        if pr is not None and pr.get("maximum_value") is not None:
            cur = pr.get("currency")
            if cur is not None and cur.split("/")[0] != currency:
                raise invalid("message.intent.item.price.currency", f"{cur!r} (allowed: {currency}/kWh)")
            price = parse_money(pr["maximum_value"], "message.intent.item.price.maximum_value")
    if radius_m is not None and not search_reaches(gps[0], gps[1], radius_m / 1000):
        raise invalid(radius_path, f"a {radius_m / 1000:g} km radius around {gps[0]:g},{gps[1]:g} needs more "
                                   f"than {MAX_SEARCH_CELLS} geohash cells at precision {min(SEARCH_PRECISIONS)}, "
                                   "so no search can reach it (allowed: what the search cover reaches)")
    return SearchIntent(gps, radius_m, connector, min_power_w, price, start_s, end_s, energy_wh)


def _parse_order(msg: dict, action: str, currency: str) -> OrderAsk:  # noqa: C901
    order = _obj(msg.get("order"), "message.order")
    order_id = _ident(order.get("id"), "message.order.id", required=False)
    provider = _obj(order.get("provider"), "message.order.provider")
    provider_id = _ident(provider.get("id"), "message.order.provider.id")
    items = _list(order.get("items"), "message.order.items", min_items=1)
    if len(items) != 1:
        raise invalid("message.order.items", f"exactly one item (the energy), got {len(items)}")
    item = _obj(items[0], "message.order.items[0]")
    item_id = _ident(item.get("id"), "message.order.items[0].id")
    energy_wh = budget = duration_s = None
    m = _measure(item.get("quantity"), "message.order.items[0].quantity")
    if m is not None:
        unit, value = m
        p = "message.order.items[0].quantity.selected.measure"
        if unit.lower() in TIME_UNITS_S:
            duration_s = parse_scaled(value, p + ".value", 0) * TIME_UNITS_S[unit.lower()]
            if not 60 <= duration_s <= 7 * 86400:
                raise invalid(p + ".value", f"time must be 1 minute .. 7 days, got {duration_s} s")
        else:
            energy_wh = _energy(unit, value, p)
    pr = _obj(item.get("price"), "message.order.items[0].price", required=False)
    if pr is not None and pr.get("maximum_value") is not None:
        cur = pr.get("currency")
        if cur != currency:
            raise invalid("message.order.items[0].price.currency", f"{cur!r} (allowed: {currency})")
        budget = parse_money(pr["maximum_value"], "message.order.items[0].price.maximum_value")
        if budget < 100:
            raise invalid("message.order.items[0].price.maximum_value", "budget below 1.00")
    if sum(x is not None for x in (energy_wh, budget, duration_s)) > 1:
        raise invalid("message.order.items[0]", "ask for one of energy, time or budget, not several")
    fulfillment_id = start_s = None
    fuls = _list(order.get("fulfillments"), "message.order.fulfillments", required=False) or []
    if len(fuls) > 1:
        raise invalid("message.order.fulfillments", f"at most one fulfillment (connector), got {len(fuls)}")
    if fuls:
        ful = _obj(fuls[0], "message.order.fulfillments[0]")
        fulfillment_id = _ident(ful.get("id"), "message.order.fulfillments[0].id", required=False)
        stops = _list(ful.get("stops"), "message.order.fulfillments[0].stops", required=False) or []
        for i, stop in enumerate(stops):
            p = f"message.order.fulfillments[0].stops[{i}]"
            stop = _obj(stop, p)
            if stop.get("type") == "start":
                t = _obj(stop.get("time"), p + ".time", required=False)
                if t is not None and t.get("timestamp") is not None:
                    start_s = parse_timestamp(t["timestamp"], p + ".time.timestamp")
    billing = None
    b = _obj(order.get("billing"), "message.order.billing", required=False)
    if b is not None:
        billing = {k: _text(b.get(k), f"message.order.billing.{k}", required=False, max_len=128)
                   for k in ("name", "email", "phone") if b.get(k) is not None}
    payment = None
    if action == "confirm":
        pays = _list(order.get("payments"), "message.order.payments", min_items=1)
        p0 = _obj(pays[0], "message.order.payments[0]")
        st = p0.get("status")
        if st not in PAYMENT_STATUSES:
            raise invalid("message.order.payments[0].status", f"{shown(st)} (allowed: PAID, NOT-PAID)")
        ty = p0.get("type", "PRE-ORDER")
        if ty not in PAYMENT_TYPES:
            raise invalid("message.order.payments[0].type", f"{shown(ty)} (allowed: {', '.join(PAYMENT_TYPES)})")
        params = _obj(p0.get("params"), "message.order.payments[0].params", required=False) or {}
        amount = parse_money(params["amount"], "message.order.payments[0].params.amount") \
            if params.get("amount") is not None else None
        cur = params.get("currency")
        if cur is not None and cur != currency:
            raise invalid("message.order.payments[0].params.currency", f"{shown(cur)} (allowed: {currency})")
        ref = _text(params.get("transaction_id"), "message.order.payments[0].params.transaction_id",
                    required=False, max_len=128)
        payment = Payment(st, ty, amount, cur, ref)
    cert = _certificate(order.get("tags"), "message.order.tags")
    return OrderAsk(order_id, provider_id, item_id, fulfillment_id, energy_wh, budget, duration_s, start_s,
                    billing, payment, cert)


def _parse_update(msg: dict) -> UpdateAsk:
    target = _text(msg.get("update_target"), "message.update_target", max_len=128)
    if target not in (UPDATE_TARGET, "order.fulfillments[0].state.descriptor.code", "fulfillment"):
        raise invalid("message.update_target", f"{target!r} (allowed: {UPDATE_TARGET})",
                      code="30012")
    order = _obj(msg.get("order"), "message.order")
    order_id = _ident(order.get("id"), "message.order.id", required=False)
    fuls = _list(order.get("fulfillments"), "message.order.fulfillments", min_items=1)
    if len(fuls) != 1:
        raise invalid("message.order.fulfillments", f"exactly one fulfillment, got {len(fuls)}", code="30013")
    ful = _obj(fuls[0], "message.order.fulfillments[0]")
    fid = _ident(ful.get("id"), "message.order.fulfillments[0].id", required=False)
    st = _obj(ful.get("state"), "message.order.fulfillments[0].state")
    d = _obj(st.get("descriptor"), "message.order.fulfillments[0].state.descriptor")
    code = d.get("code")
    if code not in (START_CHARGING, END_CHARGING):
        raise invalid("message.order.fulfillments[0].state.descriptor.code",
                      f"{shown(code)} (allowed: {START_CHARGING}, {END_CHARGING})", code="30012")
    return UpdateAsk(order_id, fid, code)


def parse_request(doc: Any, *, action: str, domain: str | None = DEFAULT_DOMAIN,
                  currency: str = "INR") -> Request:
    """Strictly read an incoming request; raises ``BecknError`` naming the JSON path."""
    if action not in REQUEST_ACTIONS:
        raise BecknError("40001", f"action {action!r} is not served (allowed: {', '.join(REQUEST_ACTIONS)})",
                         kind="unknown-action")
    doc = _obj(doc, "$")
    ctx = parse_context(doc.get("context"), action=action, domain=domain)
    if action != "search" and ctx.bpp_id is None:
        raise invalid("context.bpp_id", f"required for {action}")
    msg = _obj(doc.get("message"), "message")
    cert = None
    if action == "search":
        body: Any = _parse_search(msg, currency)
        intent = msg["intent"]
        cert = _certificate(intent.get("tags"), "message.intent.tags")
    elif action in ("select", "init", "confirm"):
        body = _parse_order(msg, action, currency)
        cert = body.certificate
    elif action == "update":
        body = _parse_update(msg)
    elif action in ("status", "track"):
        body = _ident(msg.get("order_id"), "message.order_id")
    elif action == "cancel":
        reason = msg.get("cancellation_reason_id")
        if reason is not None and (not isinstance(reason, str) or not reason.isdigit() or len(reason) > 4):
            raise invalid("message.cancellation_reason_id", f"{shown(reason)} must be a numeric reason code",
                          code="30011")
        d = _obj(msg.get("descriptor"), "message.descriptor", required=False)
        text = _text(d.get("short_desc"), "message.descriptor.short_desc", required=False) if d else None
        body = CancelAsk(_ident(msg.get("order_id"), "message.order_id"), reason, text)
    elif action == "rating":
        ratings = _list(msg.get("ratings"), "message.ratings", min_items=1)
        out = []
        for i, r in enumerate(ratings):
            p = f"message.ratings[{i}]"
            r = _obj(r, p)
            cat = r.get("rating_category")
            if cat is not None and cat not in RATING_CATEGORIES:
                raise invalid(p + ".rating_category", f"{shown(cat)} (allowed: {', '.join(RATING_CATEGORIES)})",
                              code="50003")
            value = r.get("value")
            if not isinstance(value, str) or value not in ("1", "2", "3", "4", "5"):
                raise invalid(p + ".value", f"{shown(value)} (allowed: \"1\" .. \"5\")", code="30015")
            out.append(RatingAsk(_ident(r.get("id"), p + ".id"), cat, int(value)))
        body = out
    else:  # support
        s = _obj(msg.get("support"), "message.support", required=False) or {}
        body = SupportAsk(_ident(s.get("ref_id"), "message.support.ref_id", required=False),
                          _text(s.get("phone"), "message.support.phone", required=False, max_len=32),
                          _text(s.get("email"), "message.support.email", required=False, max_len=128))
    return Request(ctx, body, cert)


def parse_callback(doc: Any, *, action: str, domain: str | None = None) -> tuple[Context, dict]:
    """Light checks of an ``on_*`` callback for the buyer side: context and a message object."""
    if action not in CALLBACK_ACTIONS:
        raise BecknError("40001", f"{action!r} is not a callback (allowed: {', '.join(CALLBACK_ACTIONS)})",
                         kind="unknown-action")
    doc = _obj(doc, "$")
    ctx = parse_context(doc.get("context"), action=action, domain=domain)
    _ident(ctx.raw.get("bpp_id"), "context.bpp_id")
    msg = _obj(doc.get("message"), "message", required=doc.get("error") is None) or {}
    return ctx, msg
