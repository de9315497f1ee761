"""Beckn core 1.1 messages for EV charging: building them, and reading them strictly.

Why here and not in each binding: the MQTT binding, the HTTP binding, the buyer-side node and
the tests must agree byte for byte on what a ``select`` or an ``on_status`` looks like, and on
what the charger accepts. The shapes follow the DEG EV-charging example transaction
(``specs/deg-ev-charging-v1/examples``); every message built here validates against the Beckn
``transaction.yaml`` (checked in the tests; the spec file is not shipped, so at run time
``parse_request`` checks the fields the charger uses, with errors naming the JSON path).

Conventions the charger and its buyers share (all within the Beckn schema):

* Money travels as decimal text in the currency unit (``"40.00"`` INR); inside the charger it is
  integer paise (``*_paise``). Energy is ``kWh`` text outside, integer ``*_wh`` inside.
* One item, id ``ITEM_ID`` ("energy"), priced per kWh; each connector is a fulfillment whose id
  is the connector id; the site is the one provider location.
* What the buyer asks for in ``select``/``init``/``confirm`` (exactly one of):
  energy ``items[0].quantity.selected.measure {value, unit: "kWh"}``,
  time ``items[0].quantity.selected.measure {value, unit: "minute"}``,
  budget ``items[0].price {currency, maximum_value}``.
  A wanted start time is ``fulfillments[0].stops[type=start].time.timestamp`` (a future start
  makes the contract a reservation).
* Start and stop charging are ``update`` with ``update_target = "order.fulfillments[0].state"``
  and state code ``start-charging`` / ``end-charging``.
* Signed documents (an offer, a quote, a receipt, an agency certificate) travel as the RFC 8785
  canonical JSON text in the value of a tag whose group code names them (``TAG_*`` below), so
  they survive any re-serialisation by gateways; ``signed_documents()`` extracts them.

Public API (stable; other bindings build on it)::

    new_context(*, action, bap_id, bap_uri, transaction_id, message_id, timestamp_s,
                bpp_id=None, bpp_uri=None, domain=DEFAULT_DOMAIN, ttl_s=DEFAULT_TTL_S,
                city_code=DEFAULT_CITY, country_code=DEFAULT_COUNTRY) -> dict
    reply_context(request_context, *, action, timestamp_s, bpp_id, bpp_uri, message_id=None,
                  ttl_s=DEFAULT_TTL_S) -> dict
    encode(doc) -> bytes                               compact UTF-8 JSON, the bytes that get signed
    decode(body, *, max_bytes=MAX_BODY_BYTES) -> dict  bounded, no duplicate keys, no NaN
    # buyer side
    search(ctx, *, gps, radius_m, connector_type=None, min_power_w=None,
           max_price_paise_per_kwh=None, start_s=None, end_s=None, energy_wh=None, currency="INR")
    select(ctx, *, provider_id, item_id=ITEM_ID, fulfillment_id=None, energy_wh=None,
           budget_paise=None, duration_s=None, start_s=None, currency="INR", certificate=None)
    init(ctx, *, ...same as select..., billing=None)
    confirm(ctx, *, ...same as init..., payment_status="PAID", amount_paise=None,
            payment_ref=None, payment_type="PRE-ORDER")
    update(ctx, *, order_id, command, fulfillment_id=None)   command: START_CHARGING | END_CHARGING
    status(ctx, *, order_id) / track(ctx, *, order_id)
    cancel(ctx, *, order_id, reason_id="5", reason_text=None)
    rating(ctx, *, ref_id, value, category="Order")
    support(ctx, *, ref_id=None, phone=None, email=None)
    # charger side
    callback(ctx, message) -> dict                    any on_* (ctx from reply_context)
    ack() -> dict / nack(code, message, path=None) -> dict
    parse_request(doc, *, action, domain=DEFAULT_DOMAIN, currency="INR") -> Request
    parse_callback(doc, *, action) -> (Context, dict)        light checks for the buyer side
    signed_documents(obj, code) -> list[dict]                 signed docs carried in tags
    tag_group(code, values, *, name=None) -> dict / tag_values(groups, code) -> dict | None
"""
from __future__ import annotations

import datetime as _dt
import json
import math
import re
from dataclasses import dataclass, field
from typing import Any

from agent.core.tariff import TariffError, format_fixed, parse_fixed
from protocols.beckn.errors import (
    INVALID_REQUEST,
    BecknError,
    invalid,
)
from protocols.signing.detached import canonical_bytes, load_json
from protocols.signing.errors import SignatureError

DEFAULT_DOMAIN = "dent:ev-charging:0.1.0"
CORE_VERSION = "1.1.0"
DEFAULT_TTL_S = 30
DEFAULT_CITY = "std:080"
DEFAULT_COUNTRY = "IND"
MAX_BODY_BYTES = 64 * 1024
ITEM_ID = "energy"
FULFILLMENT_TYPE = "CHARGING"

REQUEST_ACTIONS = ("search", "select", "init", "confirm", "status", "track", "cancel", "update",
                   "rating", "support")
CALLBACK_ACTIONS = tuple("on_" + a for a in REQUEST_ACTIONS)

# Fulfillment state codes (DEG examples plus the ones the charger adds for faults and pauses).
START_CHARGING = "start-charging"
END_CHARGING = "end-charging"
UPDATE_TARGET = "order.fulfillments[0].state"
STATE_QUOTED = "quote-provided"
STATE_INITIATED = "order-initiated"
STATE_CONFIRMED = "payment-completed"
STATE_RESERVED = "reserved"
STATE_PENDING = "charging-pending"
STATE_STARTED = "charging-started"
STATE_PAUSED = "charging-paused"
STATE_FAULT = "charging-fault"
STATE_ENDED = "charging-ended"
STATE_CANCELLED = "order-cancelled"

TAG_CERTIFICATE = "agency-certificate"
TAG_OFFER = "signed-offer"
TAG_QUOTE = "signed-quote"
TAG_RECEIPT = "signed-receipt"
TAG_LIVE = "charging-live"
TAG_SPECS = "charging-point-specs"
TAG_SEARCH = "charging-search"
SIGNED_VALUE = "document"

ENERGY_UNITS_WH = {"kwh": 1000, "wh": 1}
TIME_UNITS_S = {"minute": 60, "minutes": 60, "min": 60, "hour": 3600, "hours": 3600,
                "second": 1, "seconds": 1, "s": 1}
RATING_CATEGORIES = ("Item", "Order", "Fulfillment", "Provider", "Agent", "Support")
PAYMENT_TYPES = ("PRE-ORDER", "PRE-FULFILLMENT", "ON-FULFILLMENT", "POST-FULFILLMENT")
PAYMENT_STATUSES = ("PAID", "NOT-PAID")

_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@/+\-]{0,127}$")
_DECIMAL_RE = re.compile(r"^[+-]?([0-9]*[.])?[0-9]+$")
_GPS_RE = re.compile(
    r"^[-+]?([1-8]?\d(\.\d+)?|90(\.0+)?),\s*[-+]?(180(\.0+)?|((1[0-7]\d)|([1-9]?\d))(\.\d+)?)$"
)
_DURATION_RE = re.compile(r"^P(?:(\d{1,4})D)?(?:T(?:(\d{1,6})H)?(?:(\d{1,8})M)?(?:(\d{1,9})S)?)?$")
MAX_TEXT = 512
MAX_LIST = 32


# --------------------------------------------------------------------------- encoding

def encode(doc: dict) -> bytes:
    """Compact UTF-8 JSON: these exact bytes are what gets signed and sent."""
    return json.dumps(doc, separators=(",", ":"), ensure_ascii=False, allow_nan=False).encode("utf-8")


def decode(body: bytes, *, max_bytes: int = MAX_BODY_BYTES) -> dict:
    """Untrusted bytes to a JSON object: bounded, no duplicate keys, no NaN; ``BecknError``."""
    if not isinstance(body, (bytes, bytearray)):
        raise BecknError(INVALID_REQUEST, "body must be bytes", kind="malformed")
    if len(body) > max_bytes:
        raise BecknError(INVALID_REQUEST, f"body is {len(body)} bytes, limit {max_bytes}",
                         kind="oversized", http_status=413)
    try:
        doc = load_json(bytes(body), max_bytes=max_bytes)
    except SignatureError as exc:
        raise BecknError(INVALID_REQUEST, str(exc), kind="malformed") from None
    if not isinstance(doc, dict):
        raise BecknError(INVALID_REQUEST, "body must be a JSON object", path="$", kind="malformed")
    return doc


def format_timestamp(epoch_s: float) -> str:
    """RFC 3339 UTC with milliseconds, the spelling Beckn examples use."""
    t = _dt.datetime.fromtimestamp(float(epoch_s), _dt.timezone.utc)
    return t.strftime("%Y-%m-%dT%H:%M:%S.") + f"{t.microsecond // 1000:03d}Z"


def parse_timestamp(text: Any, path: str) -> float:
    if not isinstance(text, str) or len(text) > 40:
        raise invalid(path, f"must be an RFC 3339 date-time string, got {_show(text)}")
    try:
        value = _dt.datetime.fromisoformat(text[:-1] + "+00:00" if text.endswith("Z") else text)
    except ValueError:
        raise invalid(path, f"not an RFC 3339 date-time: {_show(text)}") from None
    if value.tzinfo is None:
        raise invalid(path, f"needs a time zone (Z or +05:30): {_show(text)}")
    return value.timestamp()


def duration_text(seconds: int) -> str:
    return f"PT{int(seconds)}S"


def parse_duration(text: Any, path: str) -> int:
    """ISO 8601 duration (days, hours, minutes, seconds) to whole seconds."""
    m = _DURATION_RE.match(text) if isinstance(text, str) else None
    if not m or text in ("P", "PT") or text.endswith("T"):
        raise invalid(path, f"must be an ISO 8601 duration such as PT30S, got {_show(text)}")
    d, h, mi, s = (int(g) if g else 0 for g in m.groups())
    return ((d * 24 + h) * 60 + mi) * 60 + s


def money_text(paise: int) -> str:
    return format_fixed(int(paise), 2)


def parse_money(value: Any, path: str, *, allow_negative: bool = False) -> int:
    """Decimal text in the currency unit to integer paise; more than 2 decimals is refused."""
    if not isinstance(value, str) or not _DECIMAL_RE.match(value) or len(value) > 20:
        raise invalid(path, f"must be decimal text such as \"40.00\", got {_show(value)}")
    try:
        return parse_fixed(value, 2, path, allow_negative=allow_negative)
    except TariffError as exc:
        raise invalid(path, str(exc)) from None


def energy_text(wh: int) -> str:
    """kWh with up to three decimals, no trailing zeros ("4", "4.5", "0.125")."""
    text = format_fixed(int(wh), 3)
    return text.rstrip("0").rstrip(".") if "." in text else text


def _scaled(value: Any, path: str, places: int) -> int:
    if not isinstance(value, str) or not _DECIMAL_RE.match(value) or len(value) > 20:
        raise invalid(path, f"must be decimal text, got {_show(value)}")
    try:
        return parse_fixed(value, places, path)
    except TariffError as exc:
        raise invalid(path, str(exc)) from None


def _show(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


# --------------------------------------------------------------------------- tags and signed documents

def tag_group(code: str, values: dict, *, name: str | None = None, display: bool = True) -> dict:
    """A Beckn TagGroup from ``{code: value}`` (values become strings)."""
    descriptor = {"code": code}
    if name:
        descriptor["name"] = name
    return {"display": display, "descriptor": descriptor,
            "list": [{"descriptor": {"code": k}, "value": str(v)} for k, v in values.items()]}


def signed_tag(code: str, document: dict) -> dict:
    """A tag group carrying one signed document as canonical JSON text."""
    return tag_group(code, {SIGNED_VALUE: canonical_bytes(document).decode("utf-8")}, display=False)


def tag_values(groups: Any, code: str) -> dict | None:
    """``{tag code: value}`` of the first group with ``code``; None when absent or malformed."""
    if not isinstance(groups, list):
        return None
    for group in groups:
        if isinstance(group, dict) and isinstance(group.get("descriptor"), dict) \
                and group["descriptor"].get("code") == code:
            out = {}
            for tag in group.get("list") or []:
                if isinstance(tag, dict) and isinstance(tag.get("descriptor"), dict):
                    k, v = tag["descriptor"].get("code"), tag.get("value")
                    if isinstance(k, str) and isinstance(v, str):
                        out[k] = v
            return out
    return None


def signed_documents(obj: Any, code: str, *, max_depth: int = 12) -> list[dict]:
    """Every signed document carried in a tag group ``code`` anywhere inside ``obj``.

    The documents are parsed, not verified: the caller checks them with
    ``protocols.signing.detached.verify_object`` (or ``receipt.verify_receipt``).
    """
    found: list[dict] = []
    for text in signed_document_texts(obj, code, max_depth=max_depth):
        try:
            doc = load_json(text)
        except SignatureError:
            continue
        if isinstance(doc, dict):
            found.append(doc)
    return found


def signed_document_texts(obj: Any, code: str, *, max_depth: int = 12) -> list[str]:
    """The text of every signed document in a tag group ``code`` inside ``obj``, unparsed, so a
    reader that has seen the very same text before can skip parsing and checking it again."""
    found: list[str] = []

    def walk(node: Any, depth: int) -> None:
        if depth > max_depth:
            return
        if isinstance(node, dict):
            tags = node.get("tags")
            values = tag_values(tags, code) if isinstance(tags, list) else None
            if values and SIGNED_VALUE in values:
                found.append(values[SIGNED_VALUE])
            for key, value in node.items():
                # text and numbers carry no tags, and a tag group holds its documents as text
                if key != "tags" and isinstance(value, (dict, list)):
                    walk(value, depth + 1)
        elif isinstance(node, list):
            for value in node[:256]:
                if isinstance(value, (dict, list)):
                    walk(value, depth + 1)

    walk(obj, 0)
    return found


# --------------------------------------------------------------------------- context

def new_context(*, action: str, bap_id: str, bap_uri: str, transaction_id: str, message_id: str,
                timestamp_s: float, bpp_id: str | None = None, bpp_uri: str | None = None,
                domain: str = DEFAULT_DOMAIN, ttl_s: int | None = DEFAULT_TTL_S,
                city_code: str = DEFAULT_CITY, country_code: str = DEFAULT_COUNTRY) -> dict:
    ctx = {
        "domain": domain,
        "action": action,
        "location": {"country": {"code": country_code}, "city": {"code": city_code}},
        "version": CORE_VERSION,
        "bap_id": bap_id,
        "bap_uri": bap_uri,
    }
    if bpp_id is not None:
        ctx["bpp_id"] = bpp_id
    if bpp_uri is not None:
        ctx["bpp_uri"] = bpp_uri
    ctx.update(transaction_id=transaction_id, message_id=message_id,
               timestamp=format_timestamp(timestamp_s))
    if ttl_s is not None:
        ctx["ttl"] = duration_text(ttl_s)
    return ctx


def reply_context(request_context: dict, *, action: str, timestamp_s: float, bpp_id: str,
                  bpp_uri: str, message_id: str | None = None, ttl_s: int | None = DEFAULT_TTL_S) -> dict:
    """Context of a callback: same transaction (and message id unless unsolicited), our ids."""
    ctx = {k: v for k, v in request_context.items() if k not in ("ttl", "key")}
    ctx.update(action=action, bpp_id=bpp_id, bpp_uri=bpp_uri,
               timestamp=format_timestamp(timestamp_s))
    if message_id is not None:
        ctx["message_id"] = message_id
    if ttl_s is not None:
        ctx["ttl"] = duration_text(ttl_s)
    return ctx


def callback(ctx: dict, message: dict) -> dict:
    return {"context": ctx, "message": message}


def ack() -> dict:
    return {"message": {"ack": {"status": "ACK"}}}


def nack(code: str, message: str, path: str | None = None) -> dict:
    error = {"code": str(code), "message": message[:MAX_TEXT]}
    if path:
        error["paths"] = path
    return {"message": {"ack": {"status": "NACK"}}, "error": error}


# --------------------------------------------------------------------------- buyer-side builders

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


# --------------------------------------------------------------------------- strict reading

def _obj(value: Any, path: str, *, required: bool = True) -> dict | None:
    if value is None and not required:
        return None
    if not isinstance(value, dict):
        raise invalid(path, f"must be an object, got {_show(value) if value is not None else 'nothing'}")
    return value


def _list(value: Any, path: str, *, required: bool = True, min_items: int = 0) -> list | None:
    if value is None and not required:
        return None
    if not isinstance(value, list):
        raise invalid(path, f"must be a list, got {_show(value) if value is not None else 'nothing'}")
    if len(value) > MAX_LIST:
        raise invalid(path, f"at most {MAX_LIST} entries, got {len(value)}")
    if len(value) < min_items:
        raise invalid(path, f"needs at least {min_items} entr{'y' if min_items == 1 else 'ies'}")
    return value


def _text(value: Any, path: str, *, required: bool = True, max_len: int = MAX_TEXT) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or not value:
        raise invalid(path, f"must be a non-empty string, got {_show(value) if value is not None else 'nothing'}")
    if len(value) > max_len:
        raise invalid(path, f"longer than {max_len} characters")
    return value


def _ident(value: Any, path: str, *, required: bool = True) -> str | None:
    if value is None and not required:
        return None
    if not isinstance(value, str) or not _ID_RE.match(value):
        raise invalid(path, "must be an id of 1-128 letters, digits or ._:@/+- "
                            f"(got {_show(value) if value is not None else 'nothing'})")
    return value


def _uri(value: Any, path: str) -> str:
    text = _text(value, path, max_len=512)
    if not re.match(r"^(https?|mqtts?)://[^\s/?#]+[^\s]*$", text):
        raise invalid(path, f"must be an http(s) or mqtt(s) URI, got {_show(text)}")
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
    wh = _scaled(value, path + ".value", 3) * scale // 1000
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


def _parse_search(msg: dict, currency: str) -> SearchIntent:
    intent = _obj(msg.get("intent"), "message.intent")
    gps = radius_m = connector = min_power_w = price = start_s = end_s = energy_wh = None
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
                radius_m = _scaled(r.get("value"), p + ".location.circle.radius.value", 3)
                radius_m = radius_m if unit == "km" else radius_m // 1000
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
            min_power_w = _scaled(wants["min-power-kw"], "message.intent.fulfillment.tags.min-power-kw", 3)
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
    if radius_m is not None and radius_m > 500_000:
        raise invalid("message.intent.fulfillment.stops", "radius above 500 km")
    return SearchIntent(gps, radius_m, connector, min_power_w, price, start_s, end_s, energy_wh)


def parse_gps(value: Any, path: str) -> tuple[float, float]:
    if not isinstance(value, str) or len(value) > 64 or not _GPS_RE.match(value):
        raise invalid(path, f"must be 'lat,lon' in degrees, got {_show(value)}")
    lat, lon = value.split(",")
    return float(lat), float(lon.strip())


def _parse_order(msg: dict, action: str, currency: str) -> OrderAsk:
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
            duration_s = _scaled(value, p + ".value", 0) * TIME_UNITS_S[unit.lower()]
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
            raise invalid("message.order.payments[0].status", f"{_show(st)} (allowed: PAID, NOT-PAID)")
        ty = p0.get("type", "PRE-ORDER")
        if ty not in PAYMENT_TYPES:
            raise invalid("message.order.payments[0].type", f"{_show(ty)} (allowed: {', '.join(PAYMENT_TYPES)})")
        params = _obj(p0.get("params"), "message.order.payments[0].params", required=False) or {}
        amount = parse_money(params["amount"], "message.order.payments[0].params.amount") \
            if params.get("amount") is not None else None
        cur = params.get("currency")
        if cur is not None and cur != currency:
            raise invalid("message.order.payments[0].params.currency", f"{_show(cur)} (allowed: {currency})")
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
                      f"{_show(code)} (allowed: {START_CHARGING}, {END_CHARGING})", code="30012")
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
            raise invalid("message.cancellation_reason_id", f"{_show(reason)} must be a numeric reason code",
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
                raise invalid(p + ".rating_category", f"{_show(cat)} (allowed: {', '.join(RATING_CATEGORIES)})",
                              code="50003")
            value = r.get("value")
            if not isinstance(value, str) or value not in ("1", "2", "3", "4", "5"):
                raise invalid(p + ".value", f"{_show(value)} (allowed: \"1\" .. \"5\")", code="30015")
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


def distance_m(a: tuple[float, float], b: tuple[float, float]) -> float:
    """Great-circle distance (haversine, mean Earth radius)."""
    lat1, lon1, lat2, lon2 = map(math.radians, (a[0], a[1], b[0], b[1]))
    h = math.sin((lat2 - lat1) / 2) ** 2 + math.cos(lat1) * math.cos(lat2) * math.sin((lon2 - lon1) / 2) ** 2
    return 2 * 6_371_008.8 * math.asin(min(1.0, math.sqrt(h)))
