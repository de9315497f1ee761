"""One transaction, a buyer's journey from ``select`` to the receipt, as a typed record, and
the JSON the order store keeps of it.

Why typed: the handlers, the order book and the store read and write these fields in many
places; a misspelt field must fail where it is written, not be stored beside the real one and
read back as a default after the next power cut. The constructor takes keywords only and
refuses unknown ones, and the record has no room for attributes it does not declare.

What is written (``stored_json``): the transaction's fields as one JSON object with sorted
keys and ``"format": ORDER_FORMAT``, including ``ctx`` (the buyer's ``confirm`` context: it
addresses the unsolicited ``on_status`` of that transaction) and ``quote_doc`` (the signed
quote every order reply carries as evidence of the price). Both are public; a transaction
never holds a private key or any secret (the signer stays outside). ``buyer_certificate`` is
the agency certificate the buyer showed (public too): ``status``, ``track``, ``update`` and
``cancel`` carry none, so after a restart it is what lets the charger verify the buyer of a
restored order again; it is written only when the buyer showed one, so a row without it (an
earlier release's, or an uncertified buyer's) reads back unchanged. Not written
(``_NOT_STORED``): the receipt (the journal holds it already; it is read back through
``service.receipt``) and ``last_sent`` (it only stops a notification from repeating). The
fee and refund of a cancelled order are written once it is cancelled, and absent before, as
they always were. ``from_stored`` reads exactly that layout back and refuses, naming the
order, a row of another format, a missing or mistyped field, or a field it does not know.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field, fields
from typing import Any

ORDER_FORMAT = 1  # the stored order's layout; a row of another format is not guessed at
ORDER_STAGES = ("confirmed", "charging", "stopping", "ended", "cancelled")  # stages that have an order
_NOT_STORED = ("receipt", "last_sent")
# Set when an order is cancelled, or when the buyer showed a certificate; a row or a snapshot has
# them only from then on.
_ONLY_WHEN_SET = ("cancel_fee_paise", "refund_paise", "buyer_certificate")
_NOT_SHOWN = ("ctx", "quote_doc", "buyer_certificate")  # large and public; left out of snapshots
_NUMBER = (int, float)
_NONE = type(None)
# What a restored order must hold, by type: the fields the handlers read without a check.
_STORED_FIELDS = {
    "transaction_id": (str,), "order_id": (str,), "bap_id": (str,), "bap_uri": (str, _NONE),
    "stage": (str,), "connector_id": (str,), "ctx": (dict,), "quote_doc": (dict,), "quote_id": (str,),
    "currency": (str,), "price_paise": (int,), "tax_paise": (int,), "paid_paise": (int,),
    "start_s": _NUMBER, "created_s": _NUMBER, "quote_expires_s": _NUMBER, "reserve_ahead": (bool,),
    "certified": (bool,), "payment_id": (str,), "payment_type": (str,), "payment_status": (str, _NONE),
    "payment_ref": (str, _NONE), "billing": (dict, _NONE), "session_id": (str, _NONE),
    "reservation_id": (str, _NONE), "reservation_expires_s": _NUMBER + (_NONE,),
    "hold_from_s": _NUMBER + (_NONE,), "hold_taken": (bool,),
    "acceptance_digest": (str, _NONE), "energy_wh": (int, _NONE), "asked_energy_wh": (int, _NONE),
    "duration_s": (int, _NONE), "budget_paise": (int, _NONE), "power_w": (int,), "ratings": (list,),
}


@dataclass(slots=True, kw_only=True, eq=False)
class Transaction:
    """One transaction (a buyer's journey from select to receipt).

    ``eq=False``: a transaction is one live object shared by the order book's indexes, and
    is compared by identity there.
    """

    # the buyer and its request
    transaction_id: str
    bap_id: str
    bap_uri: str | None
    ctx: dict
    certified: bool
    created_s: float
    buyer_certificate: dict | None = None  # the agency certificate the buyer showed, if any
    # the quote (``select``)
    connector_id: str
    start_s: float
    energy_wh: int | None
    duration_s: int | None
    budget_paise: int | None
    asked_energy_wh: int | None
    power_w: int
    price_paise: int
    tax_paise: int
    currency: str
    quote_id: str
    quote_doc: dict
    quote_expires_s: float
    reserve_ahead: bool
    # payment
    payment_id: str
    payment_type: str
    payment_ref: str | None
    payment_status: str | None = None
    paid_paise: int = 0
    billing: dict | None = None
    # the order (``confirm`` on)
    stage: str = "quoted"
    order_id: str | None = None
    reservation_id: str | None = None
    reservation_expires_s: float | None = None
    hold_from_s: float | None = None  # a booking's hold starts here (``Policy.hold_lead_s`` before its start)
    hold_taken: bool = False  # whether the charger holds the connector for it now
    session_id: str | None = None
    acceptance_digest: str | None = None
    ratings: list = field(default_factory=list)
    cancel_fee_paise: int | None = None
    refund_paise: int | None = None
    # in memory only
    receipt: Any = None
    last_sent: tuple | None = None

    def _fields(self) -> dict:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        for name in _ONLY_WHEN_SET:
            if values[name] is None:
                del values[name]
        return values

    def snapshot(self) -> dict:
        return {k: v for k, v in self._fields().items() if k not in _NOT_SHOWN}

    def copy(self) -> "Transaction":
        """A shallow copy, so a change that cannot be recorded can be undone (``restore``)."""
        return Transaction(**{f.name: getattr(self, f.name) for f in fields(self)})

    def restore(self, earlier: "Transaction") -> None:
        """Take every field back from ``earlier`` (a ``copy`` of this transaction)."""
        for f in fields(self):
            setattr(self, f.name, getattr(earlier, f.name))

    def stored_json(self) -> str:
        """What the order store keeps (module docstring)."""
        doc = {k: v for k, v in self._fields().items() if k not in _NOT_STORED}
        doc["format"] = ORDER_FORMAT
        return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)

    @classmethod
    def from_stored(cls, tx_id: str, text: str) -> "Transaction":
        """A transaction from its stored JSON; ``ValueError`` naming the order when unusable."""
        name = f"transaction {tx_id!r}"
        try:
            doc = json.loads(text)
        except ValueError as exc:
            raise ValueError(f"{name}: not JSON ({exc})") from None
        if not isinstance(doc, dict):
            raise ValueError(f"{name}: not a JSON object")
        if isinstance(doc.get("order_id"), str):
            name = f"order {doc['order_id']!r} ({name})"
        if doc.pop("format", None) != ORDER_FORMAT:
            raise ValueError(f"{name}: format must be {ORDER_FORMAT}")
        _check_types(name, doc)
        if doc["transaction_id"] != tx_id:
            raise ValueError(f"{name}: stored under another transaction ({doc['transaction_id']!r})")
        if doc["stage"] not in ORDER_STAGES:
            raise ValueError(f"{name}: stage {doc['stage']!r} (allowed: {', '.join(ORDER_STAGES)})")
        if doc["stage"] in ("charging", "stopping") and doc["session_id"] is None:
            raise ValueError(f"{name}: {doc['stage']} without a session")
        ratings = []
        for r in doc["ratings"]:
            if not (isinstance(r, list) and len(r) == 2):
                raise ValueError(f"{name}: rating {r!r} is not [category, value]")
            ratings.append(tuple(r))
        doc["ratings"] = ratings
        for key in _NOT_STORED:
            doc.pop(key, None)
        known = {f.name for f in fields(cls)}
        unknown = sorted(k for k in doc if k not in known)
        if unknown:
            raise ValueError(f"{name}: unknown field {unknown[0]!r} (this release reads format {ORDER_FORMAT})")
        return cls(**doc)


def _check_types(name: str, doc: dict) -> None:
    """Every field a restored order must hold, of its type; the optional ones when present."""
    for key, types in _STORED_FIELDS.items():
        if key not in doc:
            raise ValueError(f"{name}: {key} is missing")
        value = doc[key]
        if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
            raise ValueError(f"{name}: {key} is {value!r}, not {' or '.join(t.__name__ for t in types)}")
    if not isinstance(doc.get("buyer_certificate", {}), dict):
        raise ValueError(f"{name}: buyer_certificate is {doc['buyer_certificate']!r}, not dict")
