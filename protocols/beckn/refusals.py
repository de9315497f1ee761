"""The charger's refusals (``ServiceError``) as Beckn errors, so a buyer reads one code set."""
from __future__ import annotations

from agent.service import ServiceError
from protocols.beckn.errors import (
    AGENT_UNAVAILABLE,
    BUSINESS_ERROR,
    FULFILLMENT_UNAVAILABLE,
    ORDER_NOT_FOUND,
    POLICY_ERROR,
    QUOTE_UNAVAILABLE,
    BecknError,
)

_SERVICE_CODES = {
    ServiceError.OCCUPIED: FULFILLMENT_UNAVAILABLE,
    ServiceError.INOPERATIVE: AGENT_UNAVAILABLE,
    ServiceError.UNKNOWN_CONNECTOR: FULFILLMENT_UNAVAILABLE,
    ServiceError.UNKNOWN_SESSION: ORDER_NOT_FOUND,
    ServiceError.UNKNOWN_RESERVATION: QUOTE_UNAVAILABLE,
    ServiceError.REJECTED: POLICY_ERROR,
    ServiceError.NOT_SUPPORTED: "40001",
}


def service_nack(exc: ServiceError, path: str | None, *, code: str | None = None) -> BecknError:
    return BecknError(code or _SERVICE_CODES.get(exc.code, BUSINESS_ERROR), f"charger refused: {exc}",
                      path=path, kind="refused")
