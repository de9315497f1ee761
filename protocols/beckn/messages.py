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
  canonical JSON text in the value of a tag whose group code names them (``TAG_*`` in
  ``vocabulary``), so they survive any re-serialisation by gateways; ``signed_documents()``
  extracts them.

Where each part lives (this module gathers them, so ``from protocols.beckn import messages``
and ``messages.<name>`` keep working for every binding): ``vocabulary`` (codes and
constants), ``values`` (timestamps, durations, money, energy, positions), ``tags`` (tag groups
and the signed documents in them), ``envelope`` (bytes, context, callbacks, ACK/NACK),
``buyer`` (request builders) and ``readers`` (strict reading into typed records).

Public API (stable; other bindings build on it)::

    new_context(*, action, bap_id, bap_uri, transaction_id, message_id, timestamp_s,
                bpp_id=None, bpp_uri=None, domain=DEFAULT_DOMAIN, ttl_s=DEFAULT_TTL_S,
                city_code=DEFAULT_CITY, country_code=DEFAULT_COUNTRY) -> dict
    reply_context(request_context, *, action, timestamp_s, bpp_id, bpp_uri, message_id=None,
                  ttl_s=DEFAULT_TTL_S, location=None) -> dict
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

from protocols.beckn.buyer import (  # noqa: F401
    cancel,
    confirm,
    init,
    rating,
    search,
    select,
    status,
    support,
    track,
    update,
)
from protocols.beckn.envelope import (  # noqa: F401
    ack,
    callback,
    decode,
    encode,
    nack,
    new_context,
    reply_context,
)
from protocols.beckn.readers import (  # noqa: F401
    CancelAsk,
    Context,
    OrderAsk,
    Payment,
    RatingAsk,
    Request,
    SearchIntent,
    SupportAsk,
    UpdateAsk,
    parse_callback,
    parse_context,
    parse_request,
)
from protocols.beckn.tags import (  # noqa: F401
    signed_document_texts,
    signed_documents,
    signed_tag,
    tag_group,
    tag_values,
)
from protocols.beckn.values import (  # noqa: F401
    distance_m,
    duration_text,
    energy_text,
    format_timestamp,
    money_text,
    parse_duration,
    parse_gps,
    parse_money,
    parse_timestamp,
)
from protocols.beckn.vocabulary import (  # noqa: F401
    CALLBACK_ACTIONS,
    CORE_VERSION,
    DEFAULT_CITY,
    DEFAULT_COUNTRY,
    DEFAULT_DOMAIN,
    DEFAULT_TTL_S,
    END_CHARGING,
    ENERGY_UNITS_WH,
    FULFILLMENT_TYPE,
    ITEM_ID,
    MAX_BODY_BYTES,
    MAX_LIST,
    MAX_TEXT,
    PAYMENT_STATUSES,
    PAYMENT_TYPES,
    RATING_CATEGORIES,
    REQUEST_ACTIONS,
    SIGNED_VALUE,
    START_CHARGING,
    STATE_CANCELLED,
    STATE_CONFIRMED,
    STATE_ENDED,
    STATE_FAULT,
    STATE_INITIATED,
    STATE_PAUSED,
    STATE_PENDING,
    STATE_QUOTED,
    STATE_RESERVED,
    STATE_STARTED,
    TAG_CERTIFICATE,
    TAG_LIVE,
    TAG_OFFER,
    TAG_QUOTE,
    TAG_RECEIPT,
    TAG_SEARCH,
    TAG_SPECS,
    TIME_UNITS_S,
    UPDATE_TARGET,
)
