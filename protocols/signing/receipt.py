"""Signed charging receipts: the record a buyer, an app and the site owner can all check.

A receipt binds, under the charger's Ed25519 signature (detached, over canonical JSON):
the order id and the digest of the buyer's signed acceptance, the charger's agency
certificate, the meter's identity, start and stop readings, the tariff (id and digest), the
cost breakdown, what was paid and what is due back, the OCMF document in which the
metering key signed the same start and stop readings, and the charging periods the cost was
priced from (``charging_periods``: start, energy, charging and parking time of each).

A receipt must agree with itself, and ``verify_receipt`` checks that it does: the energy is the
stop minus the start reading (those the meter signed in the OCMF document), the cost lines add
up to the total, and the energy priced (the periods' sum) is the energy stated. Receipts issued
before the periods were added carry none and are checked without them.

Money is integers in minor units (paise for INR) under ``*_paise`` names: exact, canonical in
JSON, and identical whether a receipt is read in Python, JavaScript or a spreadsheet.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from protocols.signing._codec import format_time, parse_time
from protocols.signing.agency import verify_certificate
from protocols.signing.detached import sign_object, signature_key_id, verify_object
from protocols.signing.errors import SignatureError
from protocols.signing.keys import Ed25519Signer
from protocols.signing.ocmf import transaction_span, verify_ocmf

RECEIPT_KIND = "urja.receipt"
_COST_PARTS = ("energy", "time", "parking", "flat", "tax")


@dataclass(frozen=True)
class CostBreakdown:
    energy_paise: int = 0
    time_paise: int = 0
    parking_paise: int = 0
    flat_paise: int = 0
    tax_paise: int = 0

    @property
    def total_paise(self) -> int:
        return self.energy_paise + self.time_paise + self.parking_paise + self.flat_paise + self.tax_paise


@dataclass(frozen=True)
class MeterIdentity:
    vendor: str
    model: str
    serial: str


def _amount(value: Any, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise SignatureError("receipt-malformed", f"{name} must be a whole number >= 0, got {value!r}")
    return value


def build_receipt(
    *,
    signer: Ed25519Signer,
    certificate: dict,
    receipt_id: str,
    order_id: str,
    acceptance_digest: str,
    meter: MeterIdentity,
    start_wh: int,
    start_s: float,
    stop_wh: int,
    stop_s: float,
    tariff_id: str,
    tariff_digest: str,
    costs: CostBreakdown,
    paid_paise: int,
    issued_s: float,
    currency: str = "INR",
    ocmf: str | None = None,
    waived_paise: int = 0,
    charging_periods: list[dict] | None = None,
    evse: dict | None = None,
) -> dict:
    """Assemble and sign a receipt; refuses numbers that do not add up.

    ``waived_paise`` is what the tariff asked beyond the buyer's money limit (prepaid amount or
    budget): the charger stopped a little late and does not collect it. Stated, so the buyer
    can see that the cost lines are the tariff's price held to their limit.
    ``charging_periods`` (``{"start", "energy_wh", "time_s", "parking_s"}`` each, in time order)
    are what the cost was priced from; their energy must be the receipt's.
    ``evse`` (``{"uid", "connector_id"}``) names the connector, where a charger has several.
    """
    _amount(start_wh, "start_wh")
    _amount(waived_paise, "waived_paise")
    _amount(stop_wh, "stop_wh")
    _amount(paid_paise, "paid_paise")
    for part in _COST_PARTS:
        _amount(getattr(costs, f"{part}_paise"), f"{part}_paise")
    if stop_wh < start_wh or stop_s < start_s:
        raise SignatureError("receipt-malformed", "stop reading must not be before the start reading")
    if (certificate.get("subscriber_id"), certificate.get("unique_key_id")) != (signer.subscriber_id, signer.key_id):
        raise SignatureError("key-mismatch", "the certificate is not for the signing key")
    total = costs.total_paise
    receipt = {
        "kind": RECEIPT_KIND,
        "receipt_id": receipt_id,
        "order_id": order_id,
        "acceptance_digest": acceptance_digest,
        "charger": {"subscriber_id": signer.subscriber_id, "certificate": certificate},
        "meter": {"vendor": meter.vendor, "model": meter.model, "serial": meter.serial},
        "start": {"time": format_time(start_s), "meter_wh": start_wh},
        "stop": {"time": format_time(stop_s), "meter_wh": stop_wh},
        "energy_wh": stop_wh - start_wh,
        "tariff": {"id": tariff_id, "digest": tariff_digest},
        "currency": currency,
        "cost_paise": {**{p: getattr(costs, f"{p}_paise") for p in _COST_PARTS}, "total": total},
        "paid_paise": paid_paise,
        "refund_due_paise": max(0, paid_paise - total),
        "balance_due_paise": max(0, total - paid_paise),
        "issued_at": format_time(issued_s),
    }
    if waived_paise:
        receipt["waived_paise"] = waived_paise
    if evse is not None:
        receipt["evse"] = {"uid": str(evse["uid"]), "connector_id": str(evse["connector_id"])}
    if ocmf is not None:
        receipt["ocmf"] = ocmf
    if charging_periods is not None:
        receipt["charging_periods"] = [dict(p) for p in charging_periods]
        _check_periods(receipt["charging_periods"], stop_wh - start_wh, start_s, stop_s)
    return sign_object(receipt, signer)


def _check_periods(periods: Any, energy_wh: int, start_s: float, stop_s: float) -> None:
    """The priced periods lie within the session and priced exactly its energy."""
    if not isinstance(periods, list):
        raise SignatureError("receipt-malformed", "charging_periods must be a list")
    priced_wh = 0
    previous_s = start_s - 1
    for i, period in enumerate(periods):
        if not isinstance(period, dict):
            raise SignatureError("receipt-malformed", f"charging_periods[{i}] must be an object")
        at_s = parse_time(_get(period, "start"), field=f"charging_periods[{i}].start")
        if at_s < previous_s or at_s < start_s - 1 or at_s > stop_s + 1:
            raise SignatureError("receipt-inconsistent", f"charging_periods[{i}] starts outside the session "
                                                         "or before the period ahead of it")
        previous_s = at_s
        for name in ("time_s", "parking_s"):
            _amount(_get(period, name), f"charging_periods[{i}].{name}")
        priced_wh += _amount(_get(period, "energy_wh"), f"charging_periods[{i}].energy_wh")
    if priced_wh != energy_wh:
        raise SignatureError("receipt-inconsistent", f"the energy priced ({priced_wh} Wh, the charging periods) "
                                                     f"differs from the receipt's energy ({energy_wh} Wh)")


@dataclass(frozen=True)
class ReceiptCheck:
    receipt_id: str
    subscriber_id: str
    energy_wh: int
    total_paise: int
    refund_due_paise: int
    currency: str
    ocmf_verified: bool
    balance_due_paise: int = 0


def _get(obj: Any, *path: str) -> Any:
    for name in path:
        if not isinstance(obj, dict) or name not in obj:
            raise SignatureError("receipt-malformed", f"missing field {'.'.join(path)}")
        obj = obj[name]
    return obj


def verify_receipt(
    receipt: Any, *, agency_public_key: bytes, revocations: Any = None, require_ocmf: bool = False
) -> ReceiptCheck:
    """Check a receipt offline: agency -> certificate -> receipt signature -> sums -> OCMF.

    The certificate must have been valid when the receipt was issued (receipts outlive
    certificates); revocation is checked against the list given, whatever its date.
    """
    if not isinstance(receipt, dict) or receipt.get("kind") != RECEIPT_KIND:
        raise SignatureError("receipt-malformed", f"not a receipt (kind must be {RECEIPT_KIND!r})")
    issued_s = parse_time(_get(receipt, "issued_at"), field="issued_at")
    cert = verify_certificate(
        _get(receipt, "charger", "certificate"), agency_public_key, revocations, now_s=issued_s
    )
    if _get(receipt, "charger", "subscriber_id") != cert.key.subscriber_id:
        raise SignatureError("key-mismatch", "charger.subscriber_id differs from the certificate")
    signature_key_id(receipt)
    verify_object(receipt, cert.key.signing_public_key, expected_key_id=(cert.key.subscriber_id, cert.key.key_id))
    start_wh = _amount(_get(receipt, "start", "meter_wh"), "start.meter_wh")
    stop_wh = _amount(_get(receipt, "stop", "meter_wh"), "stop.meter_wh")
    start_s = parse_time(_get(receipt, "start", "time"), field="start.time")
    stop_s = parse_time(_get(receipt, "stop", "time"), field="stop.time")
    energy_wh = _amount(_get(receipt, "energy_wh"), "energy_wh")
    if energy_wh != stop_wh - start_wh:
        raise SignatureError("receipt-inconsistent", f"energy_wh {energy_wh} != stop - start ({stop_wh - start_wh})")
    costs = _get(receipt, "cost_paise")
    parts = [_amount(_get(costs, p), f"cost_paise.{p}") for p in _COST_PARTS]
    total = _amount(_get(costs, "total"), "cost_paise.total")
    if total != sum(parts):
        raise SignatureError("receipt-inconsistent", f"cost total {total} != sum of parts {sum(parts)}")
    paid = _amount(_get(receipt, "paid_paise"), "paid_paise")
    refund = _amount(_get(receipt, "refund_due_paise"), "refund_due_paise")
    balance = _amount(_get(receipt, "balance_due_paise"), "balance_due_paise")
    if refund != max(0, paid - total) or balance != max(0, total - paid):
        raise SignatureError("receipt-inconsistent", "refund/balance due do not match paid and total")
    if "waived_paise" in receipt:
        _amount(receipt["waived_paise"], "waived_paise")
    if "charging_periods" in receipt:
        _check_periods(receipt["charging_periods"], energy_wh, start_s, stop_s)
    ocmf_text = receipt.get("ocmf")
    if ocmf_text is None and require_ocmf:
        raise SignatureError("ocmf-missing", "receipt carries no OCMF meter data")
    if ocmf_text is not None:
        if not cert.metering_public_key_hex:
            raise SignatureError("ocmf-unverifiable", "certificate names no metering key")
        doc = verify_ocmf(ocmf_text, cert.metering_public_key_hex)
        begin, end = transaction_span(doc)
        if doc.meter_serial != _get(receipt, "meter", "serial"):
            raise SignatureError("receipt-inconsistent", "OCMF meter serial differs from the receipt's meter")
        if begin.value_wh != start_wh or end.value_wh != stop_wh:
            raise SignatureError("receipt-inconsistent", "OCMF readings differ from the receipt's start/stop")
        if abs(begin.time_s - start_s) > 1 or abs(end.time_s - stop_s) > 1:
            raise SignatureError("receipt-inconsistent", "OCMF reading times differ from the receipt's")
    return ReceiptCheck(
        str(_get(receipt, "receipt_id")), cert.key.subscriber_id, energy_wh, total, refund,
        str(_get(receipt, "currency")), ocmf_text is not None, balance,
    )
