"""Why a Beckn message was refused, as the NACK will say it.

Every refusal names a BECKN-005 error code (a string, as the ``Error`` schema wants it), the
JSON path of the offending field when there is one, and a sentence a person can act on. The
HTTP binding maps ``http_status`` onto the response; the MQTT binding puts the same body in
its answer. Signature failures are 401 as BECKN-006 prescribes.
"""
from __future__ import annotations

from protocols.errors import ProtocolError

# BECKN-005 codes used by the charger; the message texts are the spec's.
INVALID_REQUEST = "30000"
PROVIDER_NOT_FOUND = "30001"
LOCATION_NOT_FOUND = "30002"
ITEM_NOT_FOUND = "30004"
FULFILLMENT_UNAVAILABLE = "30008"
ORDER_NOT_FOUND = "30010"
INVALID_CANCELLATION_REASON = "30011"
INVALID_UPDATE_TARGET = "30012"
RATING_ENTITY_NOT_FOUND = "30014"
INVALID_RATING_VALUE = "30015"
BUSINESS_ERROR = "40000"
ACTION_NOT_APPLICABLE = "40001"
QUANTITY_UNAVAILABLE = "40002"
QUOTE_UNAVAILABLE = "40003"
PAYMENT_NOT_SUPPORTED = "40004"
TRACKING_NOT_SUPPORTED = "40005"
AGENT_UNAVAILABLE = "40006"
POLICY_ERROR = "50000"
CANCELLATION_NOT_POSSIBLE = "50001"
UPDATE_NOT_POSSIBLE = "50002"
UNSUPPORTED_RATING_CATEGORY = "50003"

CODE_TEXT = {
    "30000": "Invalid request error",
    "30001": "Provider not found",
    "30002": "Provider location not found",
    "30004": "Item not found",
    "30008": "Fulfillment unavailable",
    "30010": "Order not found",
    "30011": "Invalid cancellation reason",
    "30012": "Invalid update_target",
    "30014": "Entity to rate not found",
    "30015": "Invalid rating value",
    "40000": "Business Error",
    "40001": "Action not applicable",
    "40002": "Item quantity unavailable",
    "40003": "Quote unavailable",
    "40004": "Payment not supported",
    "40005": "Tracking not supported",
    "40006": "Fulfilment agent unavailable",
    "50000": "Policy Error",
    "50001": "Cancellation not possible",
    "50002": "Updation not possible",
    "50003": "Unsupported rating category",
}


class BecknError(ProtocolError):
    """A message the charger refuses; becomes a NACK with ``code``, ``path`` and the message.

    ``kind`` is a short machine word for counters and logs (``malformed``, ``schema``,
    ``signature``, ``replay``, ``oversized``, ``unknown-transaction``, ``out-of-order``,
    ``refused``...).
    """

    code = INVALID_REQUEST

    def __init__(self, code: str, message: str, *, path: str | None = None, kind: str = "schema",
                 http_status: int = 400, **details):
        super().__init__(f"{path}: {message}" if path else message, code=code, **details)
        self.path = path
        self.reason = message
        self.kind = kind
        self.http_status = http_status


def invalid(path: str, message: str, *, code: str = INVALID_REQUEST) -> BecknError:
    """A field-level schema or value error at ``path`` (dotted JSON path with [i] indices)."""
    return BecknError(code, message, path=path, kind="schema")
