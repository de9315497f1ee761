"""The words the charger and its buyers share: domain, core version, actions, fulfillment
state codes, tag group codes and the units an ask may use.

Why one module of constants: the builders, the strict readers and the provider must spell
each code the same way, and a binding reads them without loading any of the logic.
"""
from __future__ import annotations

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

MAX_TEXT = 512  # the longest free text read or sent (a NACK's message is cut to it)
MAX_LIST = 32  # the longest list a strict reader accepts
