"""The charger as a Beckn provider (BPP): each charge is a small contract made on the spot.

Why transport-agnostic: the same contract logic answers over HTTP (``protocols.http``) and
over MQTT, and tests drive it directly. A binding hands over the action, the exact body bytes
and the headers; it gets back the ACK/NACK body and the signed callbacks to deliver. Nothing
reaches the charger (``agent.service.ChargerService``) before the message's signature, its
sender and its freshness are checked and it has been read strictly (``messages.parse_request``);
every message that leaves is signed.

The contract, action by action (codes are BECKN-005):

* ``search``   -> ``on_search``: the site as provider, connectors with live availability, the
  tariff as a signed offer (the whole OCPI tariff, so a buyer can price offline), the charger's
  agency certificate. A search that does not match (too far, wrong connector, too dear) is a
  NACK ``40000`` with the reason; nothing is sent back.
* ``select``   -> ``on_select``: a signed quote for the energy, time or budget asked, priced by
  ``agent.core.offers`` exactly as the receipt will price it; valid ``Policy.quote_ttl_s``.
* ``init``     -> ``on_init``: payment terms: amount and a UPI intent
  (``upi://pay?pa=<vpa>&pn=<name>&am=<amount>&cu=INR&tr=<transaction id>&tn=...``).
* ``confirm``  -> ``on_confirm``: the contract. The connector is reserved until the start
  time plus ``Policy.reservation_grace_s``. Prepaid sites need ``payments[0].status = PAID``
  and the amount paid becomes the session's money limit (the receipt states the refund due);
  ``postpaid_certified`` sites also accept ``NOT-PAID`` from agency-certified buyers.
  (Without a back-end the charger cannot see the UPI payment itself; the ``tr`` reference lets
  the site owner reconcile.)
* ``update``   (``start-charging`` / ``end-charging``) -> ``on_update``.
* ``status``, ``track`` -> live energy, power and cost.
* ``cancel``   -> ``on_cancel`` before charging starts (reservation released; fee from the
  tariff's ``RESERVATION_EXPIRES`` flat price, else ``Policy.cancellation_fee_paise``).
* ``rating``, ``support`` (the site owner's contact).

Unsolicited messages: session changes (start, stop, pause, fault) become ``on_status``, the
signed receipt of a finished session an ``on_status`` with order status ``COMPLETE``, and a
connector change a fresh signed catalog; they are queued and delivered by a named background
task through the injected ``send`` coroutine (``start()`` / ``close()``).

Durable orders (``store``): chargers lose power without warning, and a buyer who paid and got
an order id must still find the order afterwards. With a ``store`` (the runtime's journal:
``save_order`` / ``orders`` / ``delete_order``, see ``agent.journal``) and a ``binding`` name
(``"mqtt"``, ``"http"``: each binding reads only its own rows) a transaction is written when it
is confirmed and whenever its stage changes (started, stopping, ended, cancelled) or it is
rated, and read back when the ``Bpp`` is built. Quotes before confirm are not written: they
live minutes and the buyer simply selects again. Without a store (the default; fleet mode and
most tests) transactions live in memory only, as before.

* What is written: the transaction's fields as one JSON object, with ``ctx`` (the buyer's
  ``confirm`` context: it addresses the unsolicited ``on_status`` of that transaction) and
  ``quote_doc`` (the signed quote every order reply carries as evidence of the price). Both
  are public; a transaction never holds a private key or any secret (the signer stays
  outside). Not written: the receipt (the journal holds it already; it is read back through
  ``service.receipt``) and ``last_sent`` (it only stops a notification from repeating).
* After a restart each order is tied to the charger again. An order that was charging is
  tied to its session, which the runtime's boot reconciliation closed and gave a receipt: the
  order is ended, the receipt attached and the buyer told (``on_status`` ``COMPLETE``), as a
  live end would be. A start that never reached the journal (the car had not drawn power) died
  with the process: the order is confirmed again and may be started or cancelled. A confirmed
  order's connector hold is taken again through ``service.reserve`` in ``start()`` while it has
  not expired (a hold that cannot be taken is logged; the order may still start). A row that
  cannot be read is skipped with an error naming the order, and left in the store.
* Bound: the store follows the memory bound. ``max_transactions`` and the same eviction (ended
  and cancelled orders, oldest first) delete the row with the transaction, and a restore that
  finds more rows drops the oldest finished ones. A finished order is kept until then rather
  than after a time-out, so a buyer whose receipt was lost in the power cut can still ask
  ``status`` for it; the table keeps no more rows than memory keeps orders (at most
  ``max_transactions``, about 2 KB each), plus any row it could not read.
* Refusals: ``confirm`` is refused, with nothing held, when its order cannot be written: the
  charger must not say yes and then forget. A write that fails after the charger acted (a
  start, a stop, a cancel) is logged and counted (``store_failed``) instead; the action stands
  and the next change writes the order again.

Public API::

    Policy(*, payment="prepaid", reservation_grace_s=900, cancellation_fee_paise=0,
           quote_ttl_s=300, max_advance_s=86400)            Policy.from_site(site)
    Outgoing(action, body: bytes, headers: dict, receiver_id: str | None, receiver_uri: str | None,
             ttl_s: int | None = None)
    Reply(ack: dict, callbacks: list[Outgoing], http_status: int = 200, headers: dict = {})
    Bpp(*, service, signer, verifier, bpp_uri, domain=DEFAULT_DOMAIN, clock=None, new_id=uuid4 text,
        bpp_id=None, policy=None, certificate=None, agency_public_key=None, revocations=None,
        replay=None, send=None, max_body_bytes=65536, signature_ttl_s=60, max_transactions=1000,
        store=None, binding=None)
      await bpp.receive(action, body, headers) -> Reply
      bpp.catalog() -> Outgoing          the retained, signed catalog (an unsolicited on_search)
      await bpp.start() / await bpp.close()   the unsolicited-message pump (uses bpp.send)
      bpp.counters: dict[str, int]        received, ack, nack, nack:<code>, nack:<kind>, offers_signed, ...
      bpp.transactions() -> dict          a read-only snapshot for tests and the status page
      bpp.invalidate_catalog()            drop the cached signed catalog (also done on "connector"
                                          and "tariff" service events)
      bpp.certificate_cache               buyer certificates already verified (trust.CertificateCache)
      bpp.revocations = new_list          takes effect with the next message
      bpp.store, bpp.binding              the order store and this binding's name in it (None: memory only)

What is reused between messages, and why that weakens nothing: the catalog with its signed
offer, until the tariff, a connector, the site, the certificate or the signing key changes or
half the offer's window has run (every reply around it is signed afresh with its own
created/expires); and the check of a buyer's certificate, for that exact certificate text,
inside its own window, under the same revocation list.

``signer`` is an ``Ed25519Signer`` or anything with ``signer(now_s) -> Ed25519Signer`` (a
``Keyring``, so key rotation applies); ``verifier`` a ``protocols.signing.beckn.Verifier``.
"""
from __future__ import annotations

import asyncio
import inspect
import json
import logging
import uuid
from collections import OrderedDict, deque
from dataclasses import dataclass, field
from typing import Any, Awaitable, Callable
from urllib.parse import quote as _q

from agent.core import offers
from agent.aio import cancel_and_wait
from agent.config import utc_offset_s
from agent.service import ChargerService, ServiceError
from agent.core.tariff import Tariff, TariffError, parse_fixed
from agent.tariff_file import tariff_digest
from drivers.configfile import Section
from protocols.beckn import messages as m
from protocols.beckn.errors import (
    AGENT_UNAVAILABLE,
    BUSINESS_ERROR,
    CANCELLATION_NOT_POSSIBLE,
    FULFILLMENT_UNAVAILABLE,
    INVALID_REQUEST,
    ITEM_NOT_FOUND,
    ORDER_NOT_FOUND,
    PAYMENT_NOT_SUPPORTED,
    POLICY_ERROR,
    PROVIDER_NOT_FOUND,
    QUANTITY_UNAVAILABLE,
    QUOTE_UNAVAILABLE,
    RATING_ENTITY_NOT_FOUND,
    UPDATE_NOT_POSSIBLE,
    BecknError,
)
from protocols.beckn.trust import CertificateCache, CertifiedKeys, revocations_marker
from protocols.signing.beckn import (
    AUTHORIZATION,
    GATEWAY_AUTHORIZATION,
    Verifier,
    sign_body,
    www_authenticate,
)
from protocols.signing.detached import load_json, sign_object
from protocols.signing.errors import SignatureError
from protocols.signing.keys import signer_at
from protocols.signing.replay import ReplayGuard

log = logging.getLogger("urja.beckn")

PAYMENT_POLICIES = ("prepaid", "postpaid_certified")
OFFER_KIND = "urja.offer"
QUOTE_KIND = "urja.quote"
MAX_OUTBOX = 256
POLICY_KEYS = ("payment", "reservation_grace_s", "cancellation_fee_paise", "quote_ttl_s", "max_advance_s",
               "hold_lead_s")
HOLD_CHECK_S = 1.0  # how often booked orders whose hold is due are looked at (real seconds)
# ``[network]`` keys the MQTT binding reads (``protocols.mqtt.stack.NetworkConfig``)
NETWORK_TRANSPORT_KEYS = ("brokers", "protocol", "topic_root", "username", "password", "ca_file", "cert_file",
                          "key_file", "keepalive_s", "agency_public_key", "registry_url")
ABANDONED_AFTER_S = 86_400  # a confirmed order never started may be evicted this long after its window
_NOT_SERVICEABLE = ("INOPERATIVE", "OUTOFORDER", "UNKNOWN")

ORDER_FORMAT = 1  # the stored order's layout; a row of another format is not guessed at
ORDER_STAGES = ("confirmed", "charging", "stopping", "ended", "cancelled")  # stages that have an order
_NOT_STORED = ("receipt", "last_sent")
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


@dataclass(frozen=True)
class Policy:
    """The site owner's ``[network]`` choices that shape contracts."""

    payment: str = "prepaid"
    reservation_grace_s: int = 900
    cancellation_fee_paise: int = 0
    quote_ttl_s: int = 300
    max_advance_s: int = 86400
    hold_lead_s: int = 900

    @classmethod
    def from_site(cls, site) -> "Policy":
        """Read the keys this module owns from ``[network]`` (other bindings read the rest)."""
        data = (getattr(site, "extra", None) or {}).get("network") or {}
        sec = Section(data, getattr(site, "path", "<site>"), "network")
        sec.known(*NETWORK_TRANSPORT_KEYS)
        policy = cls(
            payment=sec.str("payment", "prepaid", choices=PAYMENT_POLICIES),
            reservation_grace_s=sec.int("reservation_grace_s", 900, min=60, max=86400),
            cancellation_fee_paise=sec.int("cancellation_fee_paise", 0, min=0, max=10_000_000),
            quote_ttl_s=sec.int("quote_ttl_s", 300, min=10, max=86400),
            max_advance_s=sec.int("max_advance_s", 86400, min=0, max=30 * 86400),
            hold_lead_s=sec.int("hold_lead_s", 900, min=0, max=86400),
        )
        sec.finish()  # a misspelt key must not silently leave a default in force
        return policy


@dataclass
class Outgoing:
    """A signed message to deliver: ``body`` is sent byte for byte with ``headers``."""

    action: str
    body: bytes
    headers: dict
    receiver_id: str | None
    receiver_uri: str | None
    ttl_s: int | None = None  # the body's context.ttl, so a binding need not parse the body for it


@dataclass
class Reply:
    """The synchronous answer (``ack``) and the callbacks to send after it."""

    ack: dict
    callbacks: list = field(default_factory=list)
    http_status: int = 200
    headers: dict = field(default_factory=dict)

    @property
    def acked(self) -> bool:
        return self.ack.get("message", {}).get("ack", {}).get("status") == "ACK"


@dataclass
class _CatalogCache:
    key: tuple
    signed_s: float
    refresh_s: float
    message: dict
    message_json: bytes
    certificate: Any  # held, so the id in the key cannot be reused by another object


class _Tx:
    """One transaction (a buyer's journey from select to receipt)."""

    def __init__(self, **values):
        self.stage = "quoted"
        self.order_id = self.reservation_id = self.session_id = self.acceptance_digest = None
        self.reservation_expires_s = None
        self.hold_from_s = None  # a booking's hold starts here (``Policy.hold_lead_s`` before its start)
        self.hold_taken = False  # whether the charger holds the connector for it now
        self.payment_status = None
        self.paid_paise = 0
        self.billing = None
        self.ratings: list = []
        self.receipt = None
        self.last_sent = None
        self.__dict__.update(values)

    def snapshot(self) -> dict:
        return {k: v for k, v in self.__dict__.items() if k not in ("ctx", "quote_doc")}

    def stored_json(self) -> str:
        """What the order store keeps (see "Durable orders" in the module docstring)."""
        doc = {k: v for k, v in self.__dict__.items() if k not in _NOT_STORED}
        doc["format"] = ORDER_FORMAT
        return json.dumps(doc, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)

    @classmethod
    def from_stored(cls, tx_id: str, text: str) -> "_Tx":
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
        for key, types in _STORED_FIELDS.items():
            if key not in doc:
                raise ValueError(f"{name}: {key} is missing")
            value = doc[key]
            if not isinstance(value, types) or (isinstance(value, bool) and bool not in types):
                raise ValueError(f"{name}: {key} is {value!r}, not {' or '.join(t.__name__ for t in types)}")
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
        return cls(**doc)


def _header(headers: Any, name: str) -> str | None:
    if not isinstance(headers, dict):
        return None
    for k, v in headers.items():
        if isinstance(k, str) and k.lower() == name.lower():
            return v if isinstance(v, str) else None
    return None


def _u_to_paise(u: int) -> int:
    return (u + 50) // 100 if u >= 0 else -((-u + 50) // 100)


class Bpp:
    def __init__(self, *, service: ChargerService, signer, verifier: Verifier, bpp_uri: str,
                 domain: str = m.DEFAULT_DOMAIN, clock: Callable[[], float] | None = None,
                 new_id: Callable[[], str] = lambda: str(uuid.uuid4()), bpp_id: str | None = None,
                 policy: Policy | None = None, certificate: dict | None = None,
                 agency_public_key: bytes | None = None, revocations: Any = None,
                 replay: ReplayGuard | None = None,
                 send: Callable[[Outgoing], Awaitable[None]] | None = None,
                 max_body_bytes: int = m.MAX_BODY_BYTES, signature_ttl_s: int = 60,
                 max_transactions: int = 1000, city_code: str = m.DEFAULT_CITY,
                 store: Any = None, binding: str | None = None):
        if store is not None and (not isinstance(binding, str) or not binding):
            raise ValueError("a Bpp with an order store needs its binding's name (e.g. 'mqtt', 'http'), "
                             f"got {binding!r}")
        self.service = service
        self.site = service.site
        self._signer = signer
        self.verifier = verifier
        # Keys vouched for by certificates that buyers carried; consulted before the lookup.
        self.certified_keys = CertifiedKeys(verifier.lookup)
        self._verifier = Verifier(lookup=self.certified_keys, clock=verifier.clock,
                                  clock_skew_s=verifier.clock_skew_s, max_body_bytes=verifier.max_body_bytes)
        self.domain = domain
        self.clock = clock or service.now_s
        self.new_id = new_id
        self.bpp_id = bpp_id or self.site.site_id
        self.bpp_uri = bpp_uri
        self.policy = policy or Policy.from_site(self.site)
        self.certificate = certificate
        self.agency_public_key = agency_public_key
        self.revocations = revocations
        self.certificate_cache = CertificateCache()
        self._revocations_seen: tuple[Any, tuple | None] = (revocations, revocations_marker(revocations))
        self._catalog_cache: _CatalogCache | None = None
        self._certificate_tag: tuple[Any, dict] | None = None
        self.replay = replay or ReplayGuard(clock=self.clock)
        self.send = send
        self.max_body_bytes = max_body_bytes
        self.signature_ttl_s = signature_ttl_s
        self.max_transactions = max_transactions
        self.city_code = city_code
        self.counters: dict[str, int] = {}
        self._txs: OrderedDict[str, _Tx] = OrderedDict()
        self._by_order: dict[str, _Tx] = {}
        self._by_session: dict[str, _Tx] = {}
        self._outbox: deque = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task | None = None
        self._listening = False
        self._connector_states: dict = {}
        self._start_kwargs: set | None = None
        self._handlers = {
            "search": self._search, "select": self._select, "init": self._init, "confirm": self._confirm,
            "update": self._update, "status": self._status, "track": self._track, "cancel": self._cancel,
            "rating": self._rating, "support": self._support,
        }
        self.store = store
        self.binding = binding
        self._hold_task = None
        if store is not None:
            self._restore()
        self.service.add_listener(self._on_event)
        self._listening = True

    # ------------------------------------------------------------------ lifecycle

    async def start(self) -> None:
        """Take the connector holds that are due (restored orders' included), then start
        delivering unsolicited messages through ``self.send`` and taking later holds on time."""
        await self.take_due_holds()
        if self._task is None:
            self._task = asyncio.create_task(self._pump(), name=f"beckn-bpp-outbox:{self.bpp_id}")
        if self._hold_task is None:
            self._hold_task = asyncio.create_task(self._hold_loop(), name=f"beckn-bpp-holds:{self.bpp_id}")

    async def close(self) -> None:
        if self._listening:
            self.service.remove_listener(self._on_event)
            self._listening = False
        tasks = [t for t in (self._task, self._hold_task) if t is not None]
        self._task = self._hold_task = None
        await cancel_and_wait(tasks)

    async def __aenter__(self) -> "Bpp":
        await self.start()
        return self

    async def __aexit__(self, *exc) -> None:
        await self.close()

    def pending(self) -> list[Outgoing]:
        """Unsolicited messages not yet handed to ``send``."""
        return list(self._outbox)

    def transactions(self) -> dict:
        return {tid: tx.snapshot() for tid, tx in self._txs.items()}

    def _count(self, name: str) -> None:
        self.counters[name] = self.counters.get(name, 0) + 1

    # ------------------------------------------------------------------ durable orders

    def _persist(self, tx: _Tx) -> None:
        """Write an order now (one fsync); raises what the store raises."""
        if self.store is None or not tx.order_id:
            return
        self.store.save_order(self.binding, tx.transaction_id, tx.stored_json(), self.clock())
        self._count("orders_saved")

    def _persist_quietly(self, tx: _Tx) -> None:
        """Write an order after the charger acted: a failure is logged, never refused."""
        try:
            self._persist(tx)
        except Exception:
            self._count("store_failed")
            log.exception("beckn: order %s (%s) could not be written; it is held in memory until its next change",
                          tx.order_id, tx.stage)

    def _drop(self, tx_id: str, tx: _Tx) -> None:
        """Forget a transaction, in memory and in the store."""
        self._txs.pop(tx_id, None)
        if tx.order_id:
            self._by_order.pop(tx.order_id, None)
        if tx.session_id:
            self._by_session.pop(tx.session_id, None)
        if self.store is not None and tx.order_id:
            try:
                self.store.delete_order(self.binding, tx_id)
            except Exception:
                self._count("store_failed")
                log.exception("beckn: order %s could not be deleted from the store", tx.order_id)

    def _restore(self) -> None:
        """Read back this binding's orders and tie each to the charger (module docstring)."""
        try:
            records = self.store.orders(self.binding)
        except Exception:
            self._count("store_failed")
            log.exception("beckn: the stored orders of binding %s could not be read; starting without them",
                          self.binding)
            return
        restored = []
        for rec in records:
            try:
                restored.append(_Tx.from_stored(rec.tx_id, rec.snapshot))
            except ValueError as exc:
                self._count("orders_unreadable")
                log.error("beckn: stored %s of binding %s is unreadable and was skipped (left in the store)",
                          exc, self.binding)
        restored.sort(key=lambda tx: tx.created_s)  # the order their selects came in
        by_reference = self._contract_sessions(restored)
        for tx in restored:
            self._txs[tx.transaction_id] = tx
            self._by_order[tx.order_id] = tx
            try:
                self._reattach(tx, by_reference)
            except Exception:  # the order stays as stored; a status still answers with it
                log.exception("beckn: restored order %s could not be tied to the charger", tx.order_id)
            if tx.session_id:
                self._by_session[tx.session_id] = tx
            if tx.stage == "confirmed" and tx.reservation_id is not None:
                tx.hold_taken = False  # the charger's holds died with the process: take it again
            self._count("orders_restored")
        excess = len(self._txs) - self.max_transactions
        for tid, tx in list(self._txs.items()):
            if excess <= 0:
                break
            if tx.stage in ("ended", "cancelled"):
                self._drop(tid, tx)
                excess -= 1
        if restored:
            log.info("beckn: %d order(s) of binding %s restored", len(restored), self.binding)

    def _contract_sessions(self, restored: list) -> dict:
        """Sessions started for confirmed orders, by order id: a start whose write the crash
        cut off still has its session (one read, only when such orders exist)."""
        confirmed = [tx for tx in restored if tx.stage == "confirmed"]
        if not confirmed:
            return {}
        try:
            views = self.service.sessions(since_s=min(tx.created_s for tx in confirmed))
        except Exception:
            log.exception("beckn: could not list sessions to tie restored orders")
            return {}
        return {v.reference: v for v in views if v.source == "contract" and v.reference}

    def _reattach(self, tx: _Tx, by_reference: dict) -> None:
        stage = tx.stage
        view = None
        if tx.stage == "confirmed" and tx.order_id in by_reference:
            view = by_reference[tx.order_id]
            tx.session_id, tx.stage = view.session_id, "charging"
        if tx.stage in ("charging", "stopping"):
            view = self.service.session(tx.session_id)
            if view is None:
                # authorized, but the car drew no power before the restart: nothing was
                # journaled and the authorization died with the process, so the order is open again
                tx.session_id, tx.stage = None, "confirmed"
            elif view.status in ("COMPLETED", "INVALID"):
                tx.stage = "ended"
            if view is not None:
                tx.last_sent = (view.status, view.state)
        if tx.stage == "ended" and tx.session_id:
            tx.receipt = self.service.receipt(tx.session_id)
        if tx.stage == stage:
            return
        self._persist_quietly(tx)
        log.info("beckn: restored order %s: %s -> %s", tx.order_id, stage, tx.stage)
        if tx.stage == "ended":
            self._unsolicited(tx, "on_status", {"order": self._status_order(tx)})

    async def take_due_holds(self) -> None:
        """Hold the connector for every confirmed order whose hold is due and not yet taken.

        A booking for the evening must not shut the connector all day: its hold starts
        ``Policy.hold_lead_s`` before the booked start (immediately for a start within that
        lead) and ends ``reservation_grace_s`` after it. A hold that cannot be taken yet (a car
        still charging there) is tried again on the next round until the window closes.
        """
        now_s = self.clock()
        for tx in list(self._by_order.values()):
            if tx.stage != "confirmed" or tx.reservation_id is None or tx.hold_taken:
                continue
            expires_s = tx.reservation_expires_s
            if expires_s is None or expires_s <= now_s:
                continue
            if tx.hold_from_s is not None and tx.hold_from_s > now_s:
                continue
            try:
                await self.service.reserve(reservation_id=tx.reservation_id, connector_id=tx.connector_id,
                                           expires_s=expires_s, token=tx.bap_id)
            except ServiceError as exc:
                self._count("holds_not_taken")
                log.info("beckn: order %s: connector %s cannot be held yet: %s", tx.order_id, tx.connector_id, exc)
                continue
            tx.hold_taken = True
            self._count("holds_taken")
            self._persist_quietly(tx)

    async def _hold_loop(self) -> None:
        while True:
            await asyncio.sleep(HOLD_CHECK_S)
            try:
                await self.take_due_holds()
            except asyncio.CancelledError:
                raise
            except Exception:  # the next round tries again; answering buyers must go on
                log.exception("beckn: taking due connector holds failed")

    # ------------------------------------------------------------------ signing

    def _current_signer(self):
        return signer_at(self._signer)(self.clock())

    def _outgoing(self, doc: dict, receiver_id: str | None, receiver_uri: str | None, *,
                  message_json: bytes | None = None) -> Outgoing:
        """Sign ``doc`` afresh (created/expires from now). ``message_json``, when given, is
        ``m.encode(doc["message"])`` already made: compact JSON nests, so the body is the same
        bytes ``m.encode(doc)`` would give, without encoding the unchanged catalog again."""
        if message_json is None:
            body = m.encode(doc)
        else:
            body = b'{"context":' + m.encode(doc["context"]) + b',"message":' + message_json + b"}"
        ttl = doc["context"].get("ttl")
        return Outgoing(doc["context"]["action"], body, self.sign_headers(body), receiver_id, receiver_uri,
                        m.parse_duration(ttl, "context.ttl") if ttl is not None else None)

    def sign_headers(self, body: bytes) -> dict:
        """Fresh signed headers for ``body`` (a message queued while its receiver was away is
        signed again when it is finally sent, so its signature window is still open)."""
        created_s = int(self.clock())
        auth = sign_body(body, self._current_signer(), created_s=created_s,
                         expires_s=created_s + self.signature_ttl_s)
        return {AUTHORIZATION: auth, "Content-Type": "application/json"}

    def _sign_doc(self, doc: dict, signer=None) -> dict:
        return sign_object(doc, signer or self._current_signer())

    def _own_certificate_tag(self) -> dict | None:
        """The charger's certificate as a tag: canonical JSON computed once per certificate."""
        cert = self.certificate
        if cert is None:
            return None
        held = self._certificate_tag
        if held is None or held[0] is not cert:
            held = self._certificate_tag = (cert, m.signed_tag(m.TAG_CERTIFICATE, cert))
        return held[1]

    # ------------------------------------------------------------------ entry point

    async def receive(self, action: str, body: bytes, headers: dict) -> Reply:
        """Verify, read and act on one incoming request; never raises for bad input."""
        self._count("received")
        try:
            reply = await self._receive(action, body, headers)
        except BecknError as exc:
            reply = self._nack(exc)
        except SignatureError as exc:
            reply = self._nack(BecknError(INVALID_REQUEST, f"signature refused: {exc}", kind="signature",
                                          http_status=401))
        except asyncio.CancelledError:
            raise
        except Exception:  # a bug must end as a refusal, never as a crash of the binding
            log.exception("beckn %s: internal error", action)
            reply = self._nack(BecknError(BUSINESS_ERROR, "internal error while handling the request",
                                          kind="internal", http_status=500))
        if reply.acked:
            self._count("ack")
        return reply

    def _nack(self, exc: BecknError) -> Reply:
        self._count("nack")
        self._count(f"nack:{exc.code}")
        self._count(f"nack:{exc.kind}")
        headers = {}
        if exc.http_status == 401:
            headers["WWW-Authenticate"] = www_authenticate(self.bpp_id)
        return Reply(m.nack(exc.code, exc.reason, exc.path), [], exc.http_status, headers)

    async def _receive(self, action: str, body: bytes, headers: dict) -> Reply:
        if action not in self._handlers:
            raise BecknError("40001", f"action {action!r} is not served here (allowed: "
                                      f"{', '.join(m.REQUEST_ACTIONS)})", kind="unknown-action", http_status=404)
        if not isinstance(body, (bytes, bytearray)):
            raise BecknError(INVALID_REQUEST, "body must be bytes", kind="malformed")
        if len(body) > self.max_body_bytes:
            raise BecknError(INVALID_REQUEST, f"body is {len(body)} bytes, limit {self.max_body_bytes}",
                             kind="oversized", http_status=413)
        body = bytes(body)
        doc = m.decode(body, max_bytes=self.max_body_bytes)
        # A carried certificate is read from the raw document only to find the key; the
        # message itself is parsed into domain objects after its signature verified.
        carried_text = _peek_certificate_text(doc)
        record = None
        if self.agency_public_key is not None:
            self._follow_revocations()
        if carried_text is not None and self.agency_public_key is not None:
            now_s = self.clock()
            # the very certificate text verified before needs no parsing and no agency signature check
            record = self.certificate_cache.cached(carried_text, self.agency_public_key, self.revocations,
                                                   now_s=now_s)
            carried = _parse_certificate(carried_text) if record is None else None
            if carried is not None:
                try:
                    record = self.certificate_cache.verify(carried, self.agency_public_key, self.revocations,
                                                           now_s=now_s, text=carried_text)
                except SignatureError as exc:
                    raise BecknError(INVALID_REQUEST, f"sender certificate refused: {exc}", kind="uncertified",
                                     http_status=401) from None
        lookup_before = None
        if record is not None:
            lookup_before = self.certified_keys.known(record.subscriber_id, record.key_id)
            self.certified_keys.add(record)
        try:
            verified = await self._verifier.verify_message(body, _header(headers, AUTHORIZATION),
                                                     _header(headers, GATEWAY_AUTHORIZATION))
        except SignatureError as exc:
            if record is not None and not lookup_before:  # a refused message leaves no trace
                self.certified_keys.discard(record.subscriber_id, record.key_id)
            raise BecknError(INVALID_REQUEST, f"signature refused: {exc}", kind="signature",
                             http_status=401) from None
        req = m.parse_request(doc, action=action, domain=self.domain, currency=self._currency())
        ctx = req.context
        if verified.sender.subscriber_id != ctx.bap_id:
            raise BecknError(INVALID_REQUEST, f"signed by {verified.sender.subscriber_id!r} but context.bap_id "
                                              f"is {ctx.bap_id!r}", path="context.bap_id", kind="signature",
                             http_status=401)
        if action != "search" and ctx.bpp_id != self.bpp_id:
            raise BecknError(INVALID_REQUEST, f"{ctx.bpp_id!r} is not this charger ({self.bpp_id})",
                             path="context.bpp_id", kind="misaddressed")
        now_s = self.clock()
        if ctx.timestamp_s > now_s + self.verifier.clock_skew_s:
            raise BecknError(INVALID_REQUEST, "timestamp lies in the future", path="context.timestamp",
                             kind="stale")
        if ctx.ttl_s is not None and ctx.timestamp_s + ctx.ttl_s < now_s:
            raise BecknError(INVALID_REQUEST, "message expired (timestamp + ttl is past)", path="context.ttl",
                             kind="stale")
        certified = self.certified_keys.certified(verified.sender.subscriber_id, verified.sender.key_id, now_s)
        try:
            admission = self.replay.admit_verified(ctx.message_id, verified)
        except SignatureError as exc:
            raise BecknError(INVALID_REQUEST, str(exc), path="context.message_id", kind="replay") from None
        if not admission.fresh:
            self._count("duplicate")
            if admission.answer is None:
                raise BecknError(INVALID_REQUEST, "the same message is still being handled",
                                 path="context.message_id", kind="replay")
            return admission.answer
        try:
            reply = await self._handlers[action](req, certified, verified.digest)
        except BecknError as exc:
            reply = self._nack(exc)
            self.replay.settle(ctx.message_id, reply)
            return reply
        except BaseException:
            self.replay.forget(ctx.message_id)
            raise
        self.replay.settle(ctx.message_id, reply)
        return reply

    def _follow_revocations(self) -> None:
        """A new revocation list (assigned to ``self.revocations``, or re-signed in place) takes
        effect at once: cached certificate checks are dropped and revoked keys forgotten."""
        held, marker = self._revocations_seen
        if held is self.revocations and marker == revocations_marker(self.revocations):
            return
        self._revocations_seen = (self.revocations, revocations_marker(self.revocations))
        self.certificate_cache.clear()
        self.certified_keys.apply_revocations(self.revocations, self.agency_public_key)
        self._count("revocations_changed")

    # ------------------------------------------------------------------ shared pieces

    def _currency(self) -> str:
        try:
            return str(self.service.tariff().get("currency", "INR"))
        except Exception:
            return "INR"

    def _reply(self, req: m.Request, action: str, message: dict, *, message_id: str | None = None,
               message_json: bytes | None = None) -> Outgoing:
        ctx = m.reply_context(req.context.raw, action=action, timestamp_s=self.clock(), bpp_id=self.bpp_id,
                              bpp_uri=self.bpp_uri, message_id=message_id)
        return self._outgoing(m.callback(ctx, message), req.context.bap_id, req.context.bap_uri,
                              message_json=message_json)

    def _ack(self, *callbacks: Outgoing) -> Reply:
        return Reply(m.ack(), list(callbacks))

    @staticmethod
    def _tariff_digest(tariff: dict) -> str:
        """Same function as the receipt's tariff digest, so offer, quote and receipt can be matched."""
        return tariff_digest(tariff)

    def _offset(self, t_s: float) -> int:
        tz = getattr(self.site.place, "timezone", None) or "UTC"
        return utc_offset_s(tz, t_s)

    def _provider_descriptor(self) -> dict:
        d = {"name": self.site.name}
        if getattr(self.site, "operator", ""):
            d["short_desc"] = self.site.operator
        return d

    def _gps(self) -> str:
        return f"{self.site.place.lat:.6f},{self.site.place.lon:.6f}"

    def _connectors(self) -> dict:
        return {c.connector_id: c for c in self.service.connectors()}

    @staticmethod
    def _power_w(c) -> int:
        if c.max_power_w:
            return int(c.max_power_w)
        volts = c.max_voltage_v or 230
        return int(volts * (c.max_current_a or 16) * (c.phases or 1))

    def _fulfillment(self, c, *, state: str | None = None, start_s: float | None = None,
                     instructions: str | None = None) -> dict:
        avail = {"AVAILABLE": "Available", "CHARGING": "Occupied", "BLOCKED": "Occupied",
                 "RESERVED": "Reserved"}.get(c.status, "Unavailable")
        stop: dict = {"type": "start", "location": {"id": self.site.site_id, "gps": self._gps()}}
        if start_s is not None:
            stop["time"] = {"timestamp": m.format_timestamp(start_s)}
        if instructions:
            stop["instructions"] = {"name": "Charging instructions", "short_desc": instructions}
        ful = {
            "id": c.connector_id, "type": m.FULFILLMENT_TYPE, "stops": [stop],
            "tags": [m.tag_group(m.TAG_SPECS, {
                "charger-type": "DC" if str(c.power_type or "").startswith("DC") else "AC",
                "connector-type": c.standard or "UNKNOWN",
                "power-rating-kw": m.energy_text(self._power_w(c)),
                "availability": avail}, name="Charging Point Specifications")],
        }
        ful["state"] = {"descriptor": {"code": state or avail.lower()}}
        return ful

    def _energy_price_paise(self, tariff: dict) -> int | None:
        """Per-kWh price incl. VAT of the first ENERGY component, for display only."""
        for el in tariff.get("elements") or []:
            if (el.get("restrictions") or {}).get("reservation"):
                continue
            for pc in el.get("price_components") or []:
                if pc.get("type") == "ENERGY":
                    try:
                        u = parse_fixed(pc.get("price"), 4, "price")
                        vat = parse_fixed(pc.get("vat", 0), 2, "vat")
                    except TariffError:
                        return None
                    return _u_to_paise(u * (10000 + vat) // 10000)
        return None

    def _cancellation_fee_paise(self, tariff: dict) -> int:
        """The tariff's own price for a reservation not used, else the site policy's fee."""
        for el in tariff.get("elements") or []:
            if (el.get("restrictions") or {}).get("reservation") == "RESERVATION_EXPIRES":
                for pc in el.get("price_components") or []:
                    if pc.get("type") == "FLAT":
                        try:
                            u = parse_fixed(pc.get("price"), 4, "price")
                            vat = parse_fixed(pc.get("vat", 0), 2, "vat")
                        except TariffError:
                            break
                        return _u_to_paise(u * (10000 + vat) // 10000)
        return self.policy.cancellation_fee_paise

    def _cancellation_terms(self, fee_paise: int, currency: str) -> list:
        return [{"fulfillment_state": {"descriptor": {"code": m.STATE_CONFIRMED}}, "reason_required": False,
                 "cancellation_fee": {"amount": {"currency": currency, "value": m.money_text(fee_paise)}}}]

    # ------------------------------------------------------------------ catalog

    def _offer(self, tariff: dict, now_s: float, signer=None) -> dict:
        doc = {
            "kind": OFFER_KIND, "bpp_id": self.bpp_id, "location_id": self.site.site_id,
            "item_id": m.ITEM_ID, "tariff": tariff, "tariff_id": str(tariff.get("id", "")),
            "tariff_digest": self._tariff_digest(tariff), "currency": tariff.get("currency", "INR"),
            "valid_from": m.format_timestamp(now_s),
            "valid_until": m.format_timestamp(now_s + self.policy.quote_ttl_s),
            "payment": self.policy.payment,
        }
        price = self._energy_price_paise(tariff)
        if price is not None:
            doc["energy_price_paise_per_kwh"] = price
        signed = self._sign_doc(doc, signer)
        self._count("offers_signed")
        return {"id": f"tariff:{doc['tariff_id'] or 'default'}",
                "descriptor": {"code": "tariff", "name": f"Tariff {doc['tariff_id']}"},
                "item_ids": [m.ITEM_ID], "location_ids": [self.site.site_id],
                "time": {"range": {"start": doc["valid_from"], "end": doc["valid_until"]}},
                "tags": [m.signed_tag(m.TAG_OFFER, signed)]}

    def invalidate_catalog(self) -> None:
        """Drop the cached signed catalog (the next search or announcement builds a fresh one)."""
        self._catalog_cache = None

    def _catalog_key(self, tariff: dict, conns: list, signer) -> tuple:
        """Everything the catalog is made of, cheaply: the tariff's exact JSON, what each
        connector shows, the site, the policy, the certificate and the signing key."""
        place = self.site.place
        return (
            json.dumps(tariff, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False),
            tuple((c.connector_id, c.status, c.standard, c.power_type, c.max_power_w, c.max_voltage_v,
                   c.max_current_a, c.phases) for c in conns),
            (self.site.site_id, self.site.name, getattr(self.site, "operator", ""), self.site.upi_vpa,
             place.lat, place.lon, place.address, place.city, place.state, place.country, place.postal_code),
            self.policy, self.bpp_id, id(self.certificate),
            # by the key itself: a keyring hands out a new signer object for every call
            signer.subscriber_id, signer.key_id, getattr(signer, "public_key_bytes", None) or signer,
        )

    def _catalog(self, now_s: float, *, fresh: bool = False, tariff: dict | None = None,
                 conns: list | None = None) -> "_CatalogCache":
        """The catalog, signed offer included, reused while nothing it shows has changed.

        Why: building it means canonical JSON of the whole tariff and an Ed25519 signature,
        most of what a search costs; a charger answers many searches between changes. The
        offer is re-signed before half of its ``quote_ttl_s`` has run, so a buyer always gets
        at least half the window; the message around it is signed afresh for every reply.
        ``fresh`` signs a new offer regardless (a retained catalog is read long after it is
        published, so it starts with the whole window). ``tariff`` and ``conns`` (every
        connector) are the snapshots a caller already holds, so a search reads them once.
        """
        if tariff is None:
            tariff = self.service.tariff()
        if conns is None:
            conns = list(self._connectors().values())
        signer = self._current_signer()
        key = self._catalog_key(tariff, conns, signer)
        held = self._catalog_cache
        if not fresh and held is not None and held.key == key and held.signed_s <= now_s < held.refresh_s \
                and held.certificate is self.certificate:
            return held
        message = self._build_catalog_message(now_s, tariff, conns, signer)
        held = self._catalog_cache = _CatalogCache(
            key=key, signed_s=now_s, refresh_s=now_s + self.policy.quote_ttl_s / 2, message=message,
            message_json=m.encode(message), certificate=self.certificate)
        return held

    def _build_catalog_message(self, now_s: float, tariff: dict, conns: list, signer) -> dict:
        currency = tariff.get("currency", "INR")
        place = self.site.place
        location = {"id": self.site.site_id, "gps": self._gps(),
                    "descriptor": {"name": self.site.name}}
        if place.address:
            location["address"] = place.address
        if place.city:
            location["city"] = {"name": place.city}
        if place.state:
            location["state"] = {"name": place.state}
        if place.country:
            location["country"] = {"code": place.country}
        if place.postal_code:
            location["area_code"] = place.postal_code
        item = {"id": m.ITEM_ID, "descriptor": {"code": "energy", "name": "EV charging energy"},
                "fulfillment_ids": [c.connector_id for c in conns], "location_ids": [self.site.site_id]}
        price = self._energy_price_paise(tariff)
        if price is not None:
            item["price"] = {"currency": f"{currency}/kWh", "value": m.money_text(price)}
        provider = {
            "id": self.bpp_id, "descriptor": self._provider_descriptor(), "locations": [location],
            "fulfillments": [self._fulfillment(c) for c in conns], "items": [item],
            "offers": [self._offer(tariff, now_s, signer)],
            "payments": [{"collected_by": "BPP", "type": "PRE-ORDER" if self.policy.payment == "prepaid"
                          else "POST-FULFILLMENT", "params": {"currency": currency}}],
        }
        if self.site.upi_vpa:
            provider["payments"][0]["params"]["virtual_payment_address"] = self.site.upi_vpa
        if self.certificate is not None:
            provider["tags"] = [self._own_certificate_tag()]
        return {"catalog": {"descriptor": {"name": self.site.name}, "providers": [provider]}}

    def catalog(self) -> Outgoing:
        """The signed catalog as an unsolicited ``on_search`` (retained by pub/sub bindings)."""
        now_s = self.clock()
        ctx = {"domain": self.domain, "action": "on_search",
               "location": {"country": {"code": self.site.place.country or m.DEFAULT_COUNTRY},
                            "city": {"code": self.city_code}},
               "version": m.CORE_VERSION, "bpp_id": self.bpp_id, "bpp_uri": self.bpp_uri,
               "transaction_id": self.new_id(), "message_id": self.new_id(),
               "timestamp": m.format_timestamp(now_s), "ttl": m.duration_text(self.policy.quote_ttl_s)}
        held = self._catalog(now_s, fresh=True)
        return self._outgoing(m.callback(ctx, held.message), None, None, message_json=held.message_json)

    # ------------------------------------------------------------------ search

    async def _search(self, req: m.Request, certified: bool, digest: str = "") -> Reply:
        intent: m.SearchIntent = req.body
        tariff = self.service.tariff()
        if intent.gps is not None:
            dist = m.distance_m(intent.gps, (self.site.place.lat, self.site.place.lon))
            radius = intent.radius_m if intent.radius_m is not None else 5000
            if dist > radius:
                raise BecknError(BUSINESS_ERROR, f"charger is {dist / 1000:.1f} km away, beyond the "
                                                 f"{radius / 1000:g} km asked", kind="no-match", http_status=200)
        every_conn = conns = list(self._connectors().values())
        if intent.connector_type is not None:
            conns = [c for c in conns if (c.standard or "").lower() == intent.connector_type.lower()]
            if not conns:
                raise BecknError(BUSINESS_ERROR, f"no connector of type {intent.connector_type}",
                                 kind="no-match", http_status=200)
        if intent.min_power_w is not None:
            conns = [c for c in conns if self._power_w(c) >= intent.min_power_w]
            if not conns:
                raise BecknError(BUSINESS_ERROR, f"no connector of {intent.min_power_w / 1000:g} kW or more",
                                 kind="no-match", http_status=200)
        if intent.start_s is not None:
            # a time asked for: only connectors not booked by someone else then
            until_s = intent.end_s if intent.end_s is not None else intent.start_s + self.policy.reservation_grace_s
            conns = [c for c in conns if self._booked(c.connector_id, intent.start_s, until_s) is None]
            if not conns:
                raise BecknError(BUSINESS_ERROR, "every connector is booked at the time asked", kind="no-match",
                                 http_status=200)
        if intent.max_price_paise_per_kwh is not None:
            price = self._energy_price_paise(tariff)
            if price is None or price > intent.max_price_paise_per_kwh:
                raise BecknError(BUSINESS_ERROR, "energy price is above the ceiling asked", kind="no-match",
                                 http_status=200)
        held = self._catalog(self.clock(), tariff=tariff, conns=every_conn)
        return self._ack(self._reply(req, "on_search", held.message, message_json=held.message_json))

    # ------------------------------------------------------------------ select / init / confirm

    def _check_provider_item(self, ask: m.OrderAsk) -> None:
        if ask.provider_id != self.bpp_id:
            raise BecknError(PROVIDER_NOT_FOUND, f"provider {ask.provider_id!r} is not this charger "
                                                 f"({self.bpp_id})", path="message.order.provider.id",
                             kind="refused")
        if ask.item_id != m.ITEM_ID:
            raise BecknError(ITEM_NOT_FOUND, f"item {ask.item_id!r} (allowed: {m.ITEM_ID})",
                             path="message.order.items[0].id", kind="refused")

    def _pick_connector(self, ask: m.OrderAsk, reserve_ahead: bool):
        conns = self._connectors()
        if ask.fulfillment_id is not None:
            c = conns.get(ask.fulfillment_id)
            if c is None:
                raise BecknError(FULFILLMENT_UNAVAILABLE, f"no connector {ask.fulfillment_id!r} (allowed: "
                                                          f"{', '.join(conns)})",
                                 path="message.order.fulfillments[0].id", kind="refused")
            if c.status in _NOT_SERVICEABLE or (not reserve_ahead and c.status != "AVAILABLE"):
                raise BecknError(FULFILLMENT_UNAVAILABLE, f"connector {c.connector_id} is {c.status.lower()}",
                                 path="message.order.fulfillments[0].id", kind="refused")
            return c
        for c in conns.values():
            if c.status == "AVAILABLE" or (reserve_ahead and c.status not in _NOT_SERVICEABLE):
                return c
        raise BecknError(FULFILLMENT_UNAVAILABLE, "no connector is free", kind="refused")

    def _quote(self, req: m.Request, ask: m.OrderAsk, tx_id: str) -> dict:
        """Price the ask; returns the parts of a transaction (not stored yet)."""
        self._check_provider_item(ask)
        now_s = self.clock()
        start_s = now_s
        if ask.start_s is not None and ask.start_s > now_s + 60:
            if ask.start_s > now_s + self.policy.max_advance_s:
                raise BecknError(INVALID_REQUEST, f"start is more than {self.policy.max_advance_s} s ahead",
                                 path="message.order.fulfillments[0].stops", kind="refused")
            start_s = ask.start_s
        elif ask.start_s is not None and ask.start_s < now_s - 300:
            raise BecknError(INVALID_REQUEST, "start time lies in the past",
                             path="message.order.fulfillments[0].stops", kind="refused")
        c = self._pick_connector(ask, start_s > now_s)
        power_w = self._power_w(c)
        tariff = self.service.tariff()
        currency = tariff.get("currency", "INR")
        offset = self._offset(start_s)
        try:
            t = Tariff(tariff)
            if ask.energy_wh is not None:
                energy_wh, duration_s = ask.energy_wh, None
                cost = offers.quote_energy(t, energy_wh, int(start_s), power_w, offset)
            elif ask.duration_s is not None:
                duration_s = ask.duration_s
                energy_wh = power_w * duration_s // 3600
                cost = offers.quote_time(t, duration_s, int(start_s), power_w, offset)
            elif ask.budget_paise is not None:
                duration_s = None
                energy_wh = offers.energy_for_budget(t, ask.budget_paise, int(start_s), power_w, offset)
                if energy_wh is None or energy_wh == 0:
                    raise BecknError(QUANTITY_UNAVAILABLE, "the budget does not buy any energy here",
                                     path="message.order.items[0].price.maximum_value", kind="refused")
                cost = offers.quote_energy(t, energy_wh, int(start_s), power_w, offset)
            else:
                raise BecknError(INVALID_REQUEST, "ask for energy (kWh), time (minute) or a budget "
                                                  "(price.maximum_value)", path="message.order.items[0]",
                                 kind="schema")
        except TariffError as exc:
            raise BecknError(QUOTE_UNAVAILABLE, f"cannot price this: {exc}", kind="refused") from None
        price_paise = cost.paid_minor
        if ask.budget_paise is not None:
            price_paise = max(price_paise, 0)
        expires_s = now_s + self.policy.quote_ttl_s
        quote_id = self.new_id()
        doc = self._sign_doc({
            "kind": QUOTE_KIND, "quote_id": quote_id, "transaction_id": tx_id, "bap_id": req.context.bap_id,
            "bpp_id": self.bpp_id, "connector_id": c.connector_id, "start": m.format_timestamp(start_s),
            "energy_wh": energy_wh, "duration_s": duration_s, "budget_paise": ask.budget_paise,
            "power_w": power_w, "price_paise": price_paise,
            "tax_paise": _u_to_paise(cost.total_vat_u), "currency": currency,
            "tariff_id": str(tariff.get("id", "")), "tariff_digest": self._tariff_digest(tariff),
            "valid_until": m.format_timestamp(expires_s),
        })
        return dict(connector_id=c.connector_id, start_s=start_s, energy_wh=energy_wh, duration_s=duration_s,
                    budget_paise=ask.budget_paise, asked_energy_wh=ask.energy_wh, power_w=power_w,
                    price_paise=price_paise, tax_paise=_u_to_paise(cost.total_vat_u), currency=currency,
                    quote_id=quote_id, quote_doc=doc, quote_expires_s=expires_s,
                    reserve_ahead=start_s > now_s)

    def _order_body(self, tx: _Tx, *, state: str, status: str | None = None, live: dict | None = None,
                    extra_tags: list | None = None, instructions: str | None = None) -> dict:
        c = self._connectors().get(tx.connector_id)
        item: dict = {"id": m.ITEM_ID, "descriptor": {"code": "energy", "name": "EV charging energy"}}
        price = self._energy_price_paise(self.service.tariff())
        if price is not None:
            item["price"] = {"currency": f"{tx.currency}/kWh", "value": m.money_text(price)}
        if tx.energy_wh:
            item["quantity"] = {"selected": {"measure": {"value": m.energy_text(tx.energy_wh), "unit": "kWh"}}}
        if c is not None:
            ful = self._fulfillment(c, state=state, start_s=tx.start_s, instructions=instructions)
        else:
            ful = {"id": tx.connector_id, "type": m.FULFILLMENT_TYPE, "state": {"descriptor": {"code": state}}}
        if live:
            ful.setdefault("tags", []).append(m.tag_group(m.TAG_LIVE, live, name="Live charging data"))
        order: dict = {}
        if tx.order_id:
            order["id"] = tx.order_id
        if status:
            order["status"] = status
        order.update(provider={"id": self.bpp_id, "descriptor": self._provider_descriptor()},
                     items=[item], fulfillments=[ful])
        if tx.billing:
            order["billing"] = dict(tx.billing)
        breakup_item: dict = {"id": m.ITEM_ID, "descriptor": {"name": "Estimated energy"}}
        if tx.energy_wh:
            breakup_item["quantity"] = {"selected": {"measure": {"value": m.energy_text(tx.energy_wh),
                                                                 "unit": "kWh"}}}
        order["quote"] = {
            "id": tx.quote_id, "price": {"currency": tx.currency, "value": m.money_text(tx.price_paise)},
            "breakup": [
                {"item": breakup_item, "title": "Charging incl. GST",
                 "price": {"currency": tx.currency, "value": m.money_text(tx.price_paise)}},
                {"title": "of which GST", "price": {"currency": tx.currency, "value": m.money_text(tx.tax_paise)}},
            ],
            "ttl": m.duration_text(self.policy.quote_ttl_s),
        }
        tags = [m.signed_tag(m.TAG_QUOTE, tx.quote_doc)]
        if extra_tags:
            tags.extend(extra_tags)
        order["tags"] = tags
        return order

    def _payment(self, tx: _Tx, *, status: str | None = None) -> dict:
        amount = tx.paid_paise if status == "PAID" and tx.paid_paise else tx.price_paise
        params = {"amount": m.money_text(amount), "currency": tx.currency}
        pay = {"id": tx.payment_id, "collected_by": "BPP", "type": tx.payment_type,
               "status": status or tx.payment_status or "NOT-PAID", "params": params}
        if self.site.upi_vpa:
            params["virtual_payment_address"] = self.site.upi_vpa
            pay["url"] = (f"upi://pay?pa={_q(self.site.upi_vpa, safe='@')}&pn={_q(self.site.name)}"
                          f"&am={m.money_text(amount)}&cu={_q(tx.currency)}&tr={_q(tx.transaction_id)}"
                          f"&tn={_q('EV charging ' + tx.transaction_id[:8])}")
        if tx.payment_ref:
            params["transaction_id"] = tx.payment_ref
        return pay

    def _room_for(self, tx_id: str) -> None:
        if tx_id in self._txs or len(self._txs) < self.max_transactions:
            return
        now_s = self.clock()
        for tid, tx in self._txs.items():
            if self._evictable(tx, now_s):
                return
        raise BecknError(BUSINESS_ERROR, "too many open transactions; retry later", kind="busy", http_status=503)

    def _evict(self) -> None:
        if len(self._txs) < self.max_transactions:
            return
        now_s = self.clock()
        for tid, tx in list(self._txs.items()):
            if self._evictable(tx, now_s):
                self._drop(tid, tx)
                return

    def _evictable(self, tx: _Tx, now_s: float) -> bool:
        """Whether a transaction may make room for a new one (oldest first).

        Ended and cancelled orders, and quotes past their validity. A confirmed order that was
        never started (the buyer did not come) goes too, a day after its start window closed:
        otherwise, kept across restarts, abandoned orders would fill the table over months and
        lock new buyers out. The day leaves the buyer time to ask for its status.
        """
        if tx.stage in ("ended", "cancelled"):
            return True
        if tx.stage in ("quoted", "initiated"):
            return tx.quote_expires_s < now_s
        if tx.stage == "confirmed":
            window_end_s = tx.reservation_expires_s or (tx.start_s + self.policy.reservation_grace_s)
            return window_end_s + ABANDONED_AFTER_S < now_s
        return False

    def _tx_for(self, req: m.Request, stages: tuple, what: str) -> _Tx:
        tx = self._txs.get(req.context.transaction_id)
        if tx is None or tx.bap_id != req.context.bap_id:
            raise BecknError(ORDER_NOT_FOUND, f"unknown transaction {req.context.transaction_id!r}",
                             path="context.transaction_id", kind="unknown-transaction")
        if tx.stage not in stages:
            raise BecknError(POLICY_ERROR, f"{what} is out of order: the transaction is {tx.stage}",
                             kind="out-of-order")
        return tx

    async def _select(self, req: m.Request, certified: bool, digest: str = "") -> Reply:
        tx_id = req.context.transaction_id
        old = self._txs.get(tx_id)
        if old is not None and (old.bap_id != req.context.bap_id or old.stage not in ("quoted", "initiated")):
            raise BecknError(POLICY_ERROR, f"transaction {tx_id!r} already has a contract; start a new one",
                             path="context.transaction_id", kind="out-of-order")
        parts = self._quote(req, req.body, tx_id)
        self._room_for(tx_id)
        self._evict()
        tx = _Tx(transaction_id=tx_id, bap_id=req.context.bap_id, bap_uri=req.context.bap_uri,
                 ctx=req.context.raw, certified=certified, created_s=self.clock(), payment_id=self.new_id(),
                 payment_type="PRE-ORDER", payment_ref=None, **parts)
        self._txs[tx_id] = tx
        self._txs.move_to_end(tx_id)
        return self._ack(self._reply(req, "on_select", {"order": self._order_body(tx, state=m.STATE_QUOTED)}))

    def _check_same_ask(self, tx: _Tx, ask: m.OrderAsk) -> None:
        self._check_provider_item(ask)
        asked = (ask.energy_wh, ask.duration_s, ask.budget_paise)
        if any(a is not None for a in asked) and asked != (tx.asked_energy_wh, tx.duration_s, tx.budget_paise):
            raise BecknError(QUOTE_UNAVAILABLE, "the order differs from the quote; select again",
                             path="message.order.items[0]", kind="refused")
        if ask.fulfillment_id is not None and ask.fulfillment_id != tx.connector_id:
            raise BecknError(QUOTE_UNAVAILABLE, f"the quote is for connector {tx.connector_id}; select again",
                             path="message.order.fulfillments[0].id", kind="refused")
        if tx.quote_expires_s < self.clock():
            raise BecknError(QUOTE_UNAVAILABLE, "the quote has expired; select again", kind="refused")

    async def _init(self, req: m.Request, certified: bool, digest: str = "") -> Reply:
        tx = self._tx_for(req, ("quoted", "initiated"), "init")
        ask: m.OrderAsk = req.body
        self._check_same_ask(tx, ask)
        postpaid = self.policy.payment == "postpaid_certified" and (certified or tx.certified)
        if not self.site.upi_vpa and not postpaid:
            raise BecknError(PAYMENT_NOT_SUPPORTED, "this site has no UPI address for prepayment",
                             kind="refused")
        tx.stage = "initiated"
        tx.certified = tx.certified or certified
        tx.billing = ask.billing or tx.billing
        tx.payment_type = "POST-FULFILLMENT" if postpaid else "PRE-ORDER"
        order = self._order_body(tx, state=m.STATE_INITIATED)
        order["payments"] = [self._payment(tx)]
        order["cancellation_terms"] = self._cancellation_terms(
            self._cancellation_fee_paise(self.service.tariff()), tx.currency)
        return self._ack(self._reply(req, "on_init", {"order": order}))

    def _booked(self, connector_id: str, from_s: float, until_s: float, *, besides: _Tx | None = None):
        """The confirmed order that holds (or will hold) ``connector_id`` within [from_s, until_s)."""
        for tx in self._by_order.values():
            if tx is besides or tx.stage != "confirmed" or tx.reservation_id is None \
                    or tx.connector_id != connector_id:
                continue
            start_s = tx.hold_from_s if tx.hold_from_s is not None else tx.created_s
            if start_s < until_s and from_s < (tx.reservation_expires_s or 0):
                return tx
        return None

    def _check_no_overlap(self, tx: _Tx, hold_from_s: float, hold_until_s: float) -> None:
        """One connector, one booking at a time: refuse a window that meets another's."""
        other = self._booked(tx.connector_id, hold_from_s, hold_until_s, besides=tx)
        if other is not None:
            start_s = other.hold_from_s if other.hold_from_s is not None else other.created_s
            raise BecknError(FULFILLMENT_UNAVAILABLE,
                             f"connector {tx.connector_id} is booked from {m.format_timestamp(start_s)} to "
                             f"{m.format_timestamp(other.reservation_expires_s)}; choose another time",
                             path="message.order.fulfillments[0].stops", kind="refused")

    async def _confirm(self, req: m.Request, certified: bool, digest: str = "") -> Reply:
        tx = self._tx_for(req, ("initiated",), "confirm")
        ask: m.OrderAsk = req.body
        self._check_same_ask(tx, ask)
        pay = ask.payment
        certified = certified or tx.certified
        if pay.status == "PAID":
            if not pay.amount_paise:
                raise BecknError(PAYMENT_NOT_SUPPORTED, "a PAID payment must state its amount",
                                 path="message.order.payments[0].params.amount", kind="refused")
        elif self.policy.payment != "postpaid_certified":
            raise BecknError(PAYMENT_NOT_SUPPORTED, "this site charges prepaid: pay the UPI intent from on_init, "
                                                    "then confirm with status PAID",
                             path="message.order.payments[0].status", kind="refused")
        elif not certified:
            raise BecknError(PAYMENT_NOT_SUPPORTED, "paying after charging needs an agency-certified buyer",
                             path="message.order.payments[0].status", kind="uncertified")
        order_id = self.new_id()
        now_s = self.clock()
        reservation_id = None
        hold_until_s = max(tx.start_s, now_s) + self.policy.reservation_grace_s
        hold_from_s = tx.start_s - self.policy.hold_lead_s
        deferred = tx.reserve_ahead and hold_from_s > now_s
        if deferred:
            # booked for later: the connector stays free until the hold is due (take_due_holds)
            self._check_no_overlap(tx, hold_from_s, hold_until_s)
            reservation_id = order_id
        else:
            hold_from_s = now_s
            try:
                await self.service.reserve(reservation_id=order_id, connector_id=tx.connector_id,
                                           expires_s=hold_until_s, token=tx.bap_id)
                reservation_id = order_id
            except ServiceError as exc:
                if exc.code == ServiceError.NOT_SUPPORTED and not tx.reserve_ahead:
                    reservation_id = None
                else:
                    raise _service_nack(exc, "message.order.fulfillments[0].id") from None
        before = dict(tx.__dict__)
        tx.order_id = order_id
        tx.reservation_id = reservation_id
        tx.reservation_expires_s = hold_until_s if reservation_id is not None else None
        tx.hold_from_s = hold_from_s if reservation_id is not None else None
        tx.hold_taken = reservation_id is not None and not deferred
        tx.stage = "confirmed"
        tx.payment_status = pay.status
        tx.paid_paise = pay.amount_paise or 0
        tx.payment_ref = pay.reference
        tx.billing = ask.billing or tx.billing
        tx.ctx = req.context.raw
        tx.acceptance_digest = "BLAKE-512=" + digest
        try:
            self._persist(tx)
        except Exception:
            # A yes the charger would forget at the next power cut is worse than a no now.
            self._count("store_failed")
            log.exception("beckn: order %s for transaction %s could not be written; confirm refused",
                          order_id, tx.transaction_id)
            tx.__dict__.clear()
            tx.__dict__.update(before)
            if reservation_id is not None and not deferred:
                try:
                    await self.service.cancel_reservation(reservation_id)
                except ServiceError:
                    pass
            raise BecknError(AGENT_UNAVAILABLE, "the charger could not record the order; nothing is held, "
                                                "confirm again later", kind="storage", http_status=503) from None
        self._by_order[order_id] = tx
        state = m.STATE_RESERVED if tx.reserve_ahead else m.STATE_CONFIRMED
        order = self._order_body(tx, state=state, status="ACTIVE",
                                 instructions=f"Plug in at connector {tx.connector_id}, then start charging "
                                              "from your app",
                                 extra_tags=[self._own_certificate_tag()] if self.certificate else None)
        order["payments"] = [self._payment(tx, status=pay.status)]
        order["cancellation_terms"] = self._cancellation_terms(
            self._cancellation_fee_paise(self.service.tariff()), tx.currency)
        return self._ack(self._reply(req, "on_confirm", {"order": order}))

    # ------------------------------------------------------------------ after the contract

    def _order_tx(self, req: m.Request, order_id: str | None, path: str) -> _Tx:
        tx = self._by_order.get(order_id) if order_id else None
        if tx is None and order_id is None:
            tx = self._txs.get(req.context.transaction_id)
            tx = tx if tx is not None and tx.order_id else None
        if tx is None or tx.bap_id != req.context.bap_id:
            raise BecknError(ORDER_NOT_FOUND, f"no order {order_id or req.context.transaction_id!r} for this buyer",
                             path=path, kind="unknown-transaction")
        return tx

    def _limits(self, tx: _Tx) -> dict:
        money = tx.paid_paise if tx.payment_status == "PAID" else tx.budget_paise
        return dict(energy_limit_wh=tx.asked_energy_wh, money_limit_minor=money or None,
                    time_limit_s=tx.duration_s)

    def _receipt_facts(self, tx: _Tx) -> dict:
        """What the receipt needs from the contract, for services whose ``start_session`` takes it.

        ``paid_minor`` and ``acceptance_digest`` are not (yet) part of ``ChargerService``; the
        runtime accepts them, other implementations need not.
        """
        if self._start_kwargs is None:
            try:
                params = inspect.signature(self.service.start_session).parameters
                self._start_kwargs = {n for n in ("paid_minor", "acceptance_digest") if n in params}
            except (TypeError, ValueError):
                self._start_kwargs = set()
        facts = {"paid_minor": tx.paid_paise if tx.payment_status == "PAID" else None,
                 "acceptance_digest": tx.acceptance_digest}
        return {k: v for k, v in facts.items() if k in self._start_kwargs}

    def _live(self, tx: _Tx) -> tuple[dict, Any]:
        s = self.service.session(tx.session_id) if tx.session_id else None
        if s is None:
            return {}, None
        live = {"session-id": s.session_id, "session-status": s.status or "", "state": s.state or "",
                "energy-wh": s.energy_wh or 0, "power-w": s.power_w or 0,
                "updated-at": m.format_timestamp(s.last_updated_s or self.clock())}
        if s.cost is not None:
            live["cost"] = m.money_text(s.cost.paid_minor)
            live["currency"] = s.cost.currency
        return live, s

    @staticmethod
    def _state_of(s) -> str:
        if s is None:
            return m.STATE_CONFIRMED
        st = (s.state or "").lower()
        if s.status in ("COMPLETED", "INVALID"):
            return m.STATE_ENDED
        if "fault" in st or "error" in st:
            return m.STATE_FAULT
        if "pause" in st or "suspend" in st:
            return m.STATE_PAUSED
        if s.status == "PENDING":
            return m.STATE_PENDING
        return m.STATE_STARTED

    def _status_order(self, tx: _Tx) -> dict:
        live, s = self._live(tx)
        if tx.stage == "cancelled":
            state, status = m.STATE_CANCELLED, "CANCELLED"
        elif tx.stage == "confirmed":
            state, status = (m.STATE_RESERVED if tx.reserve_ahead else m.STATE_CONFIRMED), "ACTIVE"
        else:
            state = self._state_of(s)
            status = "COMPLETE" if tx.receipt is not None else "ACTIVE"
        extra = [m.signed_tag(m.TAG_RECEIPT, tx.receipt)] if tx.receipt is not None else None
        order = self._order_body(tx, state=state, status=status, live=live, extra_tags=extra)
        order["payments"] = [self._payment(tx, status=tx.payment_status)]
        return order

    async def _update(self, req: m.Request, certified: bool, digest: str = "") -> Reply:
        ask: m.UpdateAsk = req.body
        tx = self._order_tx(req, ask.order_id, "message.order.id")
        if ask.fulfillment_id is not None and ask.fulfillment_id != tx.connector_id:
            raise BecknError(FULFILLMENT_UNAVAILABLE, f"the order is for connector {tx.connector_id}",
                             path="message.order.fulfillments[0].id", kind="refused")
        if ask.command == m.START_CHARGING:
            if tx.stage != "confirmed":
                raise BecknError(UPDATE_NOT_POSSIBLE, f"cannot start: the order is {tx.stage}", kind="out-of-order")
            if tx.reserve_ahead and self.clock() < tx.start_s - 600:
                raise BecknError(UPDATE_NOT_POSSIBLE, "the reservation starts at "
                                                      f"{m.format_timestamp(tx.start_s)}", kind="refused")
            try:
                view = await self.service.start_session(
                    source="contract", reference=tx.order_id, token=tx.bap_id, connector_id=tx.connector_id,
                    reservation_id=tx.reservation_id, **self._limits(tx), **self._receipt_facts(tx))
            except ServiceError as exc:
                raise _service_nack(exc, "message.order.fulfillments[0].state") from None
            tx.session_id = view.session_id
            tx.stage = "charging"
            self._by_session[view.session_id] = tx
            tx.last_sent = (view.status, view.state)
            self._persist_quietly(tx)
        else:
            if tx.stage != "charging":
                raise BecknError(UPDATE_NOT_POSSIBLE, f"not charging (the order is {tx.stage}); "
                                                      "use cancel before charging starts", kind="out-of-order")
            try:
                await self.service.stop_session(tx.session_id, reason="remote")
            except ServiceError as exc:
                raise _service_nack(exc, "message.order.fulfillments[0].state") from None
            if tx.stage == "charging":  # the end may already have been told while the stop ran
                tx.stage = "stopping"
                self._persist_quietly(tx)
        return self._ack(self._reply(req, "on_update", {"order": self._status_order(tx)}))

    async def _status(self, req: m.Request, certified: bool, digest: str = "") -> Reply:
        tx = self._order_tx(req, req.body, "message.order_id")
        return self._ack(self._reply(req, "on_status", {"order": self._status_order(tx)}))

    async def _track(self, req: m.Request, certified: bool, digest: str = "") -> Reply:
        tx = self._order_tx(req, req.body, "message.order_id")
        live, s = self._live(tx)
        active = tx.stage in ("charging", "stopping") and s is not None and s.status not in ("COMPLETED", "INVALID")
        tracking = {"id": tx.order_id, "status": "active" if active else "inactive",
                    "location": {"gps": self._gps()}}
        if live:
            tracking["tags"] = [m.tag_group(m.TAG_LIVE, live, name="Live charging data")]
        return self._ack(self._reply(req, "on_track", {"tracking": tracking}))

    async def _cancel(self, req: m.Request, certified: bool, digest: str = "") -> Reply:
        ask: m.CancelAsk = req.body
        tx = self._order_tx(req, ask.order_id, "message.order_id")
        if tx.stage != "confirmed":
            raise BecknError(CANCELLATION_NOT_POSSIBLE, f"the order is {tx.stage}; "
                                                        + ("stop charging with update end-charging"
                                                           if tx.stage == "charging" else "nothing to cancel"),
                             kind="out-of-order")
        if tx.reservation_id is not None:
            try:
                await self.service.cancel_reservation(tx.reservation_id)
            except ServiceError as exc:
                if exc.code != ServiceError.UNKNOWN_RESERVATION:  # already lapsed: nothing held
                    raise _service_nack(exc, "message.order_id", code=CANCELLATION_NOT_POSSIBLE) from None
        fee = min(self._cancellation_fee_paise(self.service.tariff()), tx.paid_paise) \
            if tx.payment_status == "PAID" else self._cancellation_fee_paise(self.service.tariff())
        refund = max(0, tx.paid_paise - fee) if tx.payment_status == "PAID" else 0
        tx.stage = "cancelled"
        tx.cancel_fee_paise, tx.refund_paise = fee, refund
        self._persist_quietly(tx)
        order = self._order_body(tx, state=m.STATE_CANCELLED, status="CANCELLED")
        order["quote"]["price"] = {"currency": tx.currency, "value": m.money_text(-refund)}
        order["quote"]["breakup"] = [
            {"title": "payment refund", "price": {"currency": tx.currency, "value": m.money_text(-refund)}},
            {"title": "cancellation fee", "price": {"currency": tx.currency, "value": m.money_text(fee)}}]
        order["payments"] = [self._payment(tx, status=tx.payment_status)]
        order["cancellation_terms"] = self._cancellation_terms(fee, tx.currency)
        order["cancellation"] = {"time": m.format_timestamp(self.clock()), "cancelled_by": "CONSUMER"}
        return self._ack(self._reply(req, "on_cancel", {"order": order}))

    async def _rating(self, req: m.Request, certified: bool, digest: str = "") -> Reply:
        txs = []
        for i, r in enumerate(req.body):
            tx = self._by_order.get(r.ref_id)
            if tx is None or tx.bap_id != req.context.bap_id:
                raise BecknError(RATING_ENTITY_NOT_FOUND, f"no order {r.ref_id!r} to rate",
                                 path=f"message.ratings[{i}].id", kind="unknown-transaction")
            txs.append((tx, r))
        for tx, r in txs:
            tx.ratings.append((r.category, r.value))
        for tx in {id(tx): tx for tx, _ in txs}.values():
            self._persist_quietly(tx)
        return self._ack(self._reply(req, "on_rating", {"feedback_form": {"required": False}}))

    async def _support(self, req: m.Request, certified: bool, digest: str = "") -> Reply:
        sup = {k: v for k, v in (("ref_id", req.body.ref_id), ("phone", self.site.phone),
                                 ("email", self.site.email)) if v}
        if not (self.site.phone or self.site.email):
            raise BecknError("50004", "the site owner has not published a contact", kind="refused")
        return self._ack(self._reply(req, "on_support", {"support": sup}))

    # ------------------------------------------------------------------ unsolicited messages

    def _unsolicited(self, tx: _Tx, action: str, message: dict) -> None:
        ctx = m.reply_context(tx.ctx, action=action, timestamp_s=self.clock(), bpp_id=self.bpp_id,
                              bpp_uri=self.bpp_uri, message_id=self.new_id())
        self._enqueue(self._outgoing(m.callback(ctx, message), tx.bap_id, tx.bap_uri))

    def _enqueue(self, out: Outgoing) -> None:
        if len(self._outbox) >= MAX_OUTBOX:
            self._outbox.popleft()
            self._count("outbox_dropped")
        self._outbox.append(out)
        self._wake.set()

    def _on_event(self, kind: str, obj: Any) -> None:
        """Service listener: must not raise into the charger, whatever goes wrong here."""
        try:
            if kind == "session":
                tx = self._by_session.get(obj.session_id)
                if tx is None:
                    return
                key = (obj.status, obj.state)
                if key == tx.last_sent:
                    return
                tx.last_sent = key
                if obj.status in ("COMPLETED", "INVALID") and tx.stage in ("charging", "stopping"):
                    tx.stage = "ended"
                    self._persist_quietly(tx)
                self._unsolicited(tx, "on_status", {"order": self._status_order(tx)})
            elif kind == "receipt":
                session_id, receipt = obj
                tx = self._by_session.get(session_id)
                if tx is None or tx.receipt is not None:
                    return
                tx.receipt = receipt
                if tx.stage != "ended":
                    tx.stage = "ended"
                    self._persist_quietly(tx)
                self._unsolicited(tx, "on_status", {"order": self._status_order(tx)})
            elif kind == "connector":
                key = (obj.connector_id, obj.status)
                if self._connector_states.get(obj.connector_id) == obj.status:
                    return
                self._connector_states[key[0]] = key[1]
                self.invalidate_catalog()
                self._enqueue(self.catalog())
            elif kind == "tariff":
                self.invalidate_catalog()
                self._enqueue(self.catalog())
        except Exception:
            self._count("listener_error")
            log.exception("beckn: could not prepare a %s notification", kind)

    async def _pump(self) -> None:
        while True:
            while not self._outbox or self.send is None:
                self._wake.clear()
                await self._wake.wait()
            out = self._outbox.popleft()
            try:
                await self.send(out)
                self._count("unsolicited_sent")
            except asyncio.CancelledError:
                raise
            except Exception as exc:
                self._count("unsolicited_failed")
                log.warning("beckn: could not deliver %s to %s: %s", out.action, out.receiver_id, exc)


def _peek_certificate_text(doc: dict) -> str | None:
    """A carried certificate's text, if any, without trusting anything else in the document."""
    msg = doc.get("message")
    if not isinstance(msg, dict):
        return None
    holder = msg.get("order") if isinstance(msg.get("order"), dict) else msg.get("intent")
    if not isinstance(holder, dict) or not isinstance(holder.get("tags"), list):
        return None
    values = m.tag_values(holder["tags"], m.TAG_CERTIFICATE)
    text = values.get(m.SIGNED_VALUE) if values else None
    return text if isinstance(text, str) else None


def _parse_certificate(text: str) -> dict | None:
    """The carried certificate as an object; None when it is not a JSON object (the strict read
    of the message then refuses it with the path)."""
    try:
        doc = load_json(text)
    except SignatureError:
        return None
    return doc if isinstance(doc, dict) else None



_SERVICE_CODES = {
    ServiceError.OCCUPIED: FULFILLMENT_UNAVAILABLE,
    ServiceError.INOPERATIVE: AGENT_UNAVAILABLE,
    ServiceError.UNKNOWN_CONNECTOR: FULFILLMENT_UNAVAILABLE,
    ServiceError.UNKNOWN_SESSION: ORDER_NOT_FOUND,
    ServiceError.UNKNOWN_RESERVATION: QUOTE_UNAVAILABLE,
    ServiceError.REJECTED: POLICY_ERROR,
    ServiceError.NOT_SUPPORTED: "40001",
}


def _service_nack(exc: ServiceError, path: str | None, *, code: str | None = None) -> BecknError:
    return BecknError(code or _SERVICE_CODES.get(exc.code, BUSINESS_ERROR), f"charger refused: {exc}",
                      path=path, kind="refused")
