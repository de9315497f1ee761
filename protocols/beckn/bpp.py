"""The charger as a Beckn provider (BPP): each charge is a small contract made on the spot.

Why transport-agnostic: the same contract logic answers over HTTP (``protocols.http``) and
over MQTT, and tests drive it directly. A binding hands over the action, the exact body bytes
and the headers; it gets back the ACK/NACK body and the signed callbacks to deliver. Nothing
reaches the charger (``agent.service.ChargerService``) before the message's signature, its
sender and its freshness are checked and it has been read strictly (``messages.parse_request``);
every message that leaves is signed.

``Bpp`` is the one class callers use; it is composed of one part per concern, each in its own
module with the description of what it does:

    admission          inbound checks: size, certificate, signature, strict read, freshness, replay
    contract_handlers  search, select, init, confirm (the contract, action by action)
    order_handlers     update, status, track, cancel, rating, support
    catalog            the catalog and its signed offer, cached
    holds              when a booking holds its connector
    orders             the order book and the durable order store ("Durable orders")
    order_record       one transaction as a typed record, and the JSON stored of it
    presentation       the site, connectors, prices and orders as Beckn documents
    render             Outgoing, Reply and the signing of everything that leaves
    notify             unsolicited messages and the pump that delivers them
    policy             Policy, the site owner's ``[network]`` choices

Public API::

    Policy(*, payment="prepaid", reservation_grace_s=900, cancellation_fee_paise=0,
           quote_ttl_s=300, max_advance_s=86400, hold_lead_s=900)     Policy.from_site(site)
    Outgoing(action, body: bytes, headers: dict, receiver_id: str | None, receiver_uri: str | None,
             ttl_s: int | None = None)
    Reply(ack: dict, callbacks: list[Outgoing], http_status: int = 200, headers: dict = {},
          refusal: Outgoing | None = None)   the signed error callback of a NACK, for a verified sender
    Bpp(*, service, signer, verifier, bpp_uri, domain=DEFAULT_DOMAIN, clock=None, new_id=uuid4 text,
        bpp_id=None, policy=None, certificate=None, agency_public_key=None, revocations=None,
        replay=None, send=None, max_body_bytes=65536, signature_ttl_s=60, max_transactions=1000,
        city_code=DEFAULT_CITY, store=None, binding=None, profile=None)
      await bpp.receive(action, body, headers) -> Reply
      bpp.catalog() -> Outgoing          the retained, signed catalog (an unsolicited on_search)
      await bpp.start() / await bpp.close()   the unsolicited-message pump (uses bpp.send) and the
                                          booking holds (``await bpp.take_due_holds()`` runs one round)
      bpp.pending() -> list[Outgoing]     unsolicited messages not yet handed to ``send``
      bpp.sign_headers(body) -> dict      fresh signed headers for a body sent again later
      bpp.counters: dict[str, int]        received, ack, nack, nack:<code>, nack:<kind>, offers_signed, ...
      bpp.transactions() -> dict          a read-only snapshot for tests and the status page
      bpp.invalidate_catalog()            drop the cached signed catalog (also done on "connector"
                                          and "tariff" service events)
      bpp.certificate_cache               buyer certificates already verified (trust.CertificateCache)
      bpp.revocations = new_list          takes effect with the next message
      bpp.store, bpp.binding              the order store and this binding's name in it (None: memory only)
      bpp.profile                         the wire protocol: Beckn 1.1 (default) or a
                                          ``protocols.beckn2.profile.Beckn2Profile``
      bpp.wire_ack(reply, body) -> dict   the synchronous answer as the profile sends it

``signer`` is an ``Ed25519Signer`` or anything with ``signer(now_s) -> Ed25519Signer`` (a
``Keyring``, so key rotation applies); ``verifier`` a ``protocols.signing.beckn.Verifier``.
"""
from __future__ import annotations

import asyncio
import uuid
from collections import OrderedDict, deque
from typing import Any, Awaitable, Callable

from agent.aio import cancel_and_wait
from agent.service import ChargerService
from protocols.beckn import messages as m
from protocols.beckn.admission import AdmissionMixin
from protocols.beckn.catalog import OFFER_KIND, CatalogCache, CatalogMixin
from protocols.beckn.contract_handlers import QUOTE_KIND, ContractHandlersMixin
from protocols.beckn.holds import HOLD_CHECK_S, HoldsMixin
from protocols.beckn.notify import MAX_OUTBOX, NotifyMixin
from protocols.beckn.order_handlers import OrderHandlersMixin
from protocols.beckn.order_record import ORDER_FORMAT, ORDER_STAGES, Transaction
from protocols.beckn.orders import ABANDONED_AFTER_S, OrderBookMixin
from protocols.beckn.policy import PAYMENT_POLICIES, Policy
from protocols.beckn.presentation import PresentationMixin
from protocols.beckn.profile import BECKN_11
from protocols.beckn.render import Outgoing, Reply, SignedRepliesMixin
from protocols.beckn.trust import CertificateCache, CertifiedKeys, revocations_marker
from protocols.signing.beckn import Verifier
from protocols.signing.replay import ReplayGuard

# Importable from here as they always were (bindings and tests import them from this module).
__all__ = [
    "ABANDONED_AFTER_S", "HOLD_CHECK_S", "MAX_OUTBOX", "OFFER_KIND", "ORDER_FORMAT",
    "ORDER_STAGES", "PAYMENT_POLICIES", "QUOTE_KIND", "Bpp", "Outgoing", "Policy", "Reply",
    "Transaction",
]


class Bpp(AdmissionMixin, ContractHandlersMixin, OrderHandlersMixin, CatalogMixin, HoldsMixin, OrderBookMixin,
          NotifyMixin, PresentationMixin, SignedRepliesMixin):
    """The provider logic of one binding: the parts share this object's state, set up here."""

    def __init__(self, *, service: ChargerService, signer, verifier: Verifier, bpp_uri: str,
                 domain: str = m.DEFAULT_DOMAIN, clock: Callable[[], float] | None = None,
                 new_id: Callable[[], str] = lambda: str(uuid.uuid4()), bpp_id: str | None = None,
                 policy: Policy | None = None, certificate: dict | None = None,
                 agency_public_key: bytes | None = None, revocations: Any = None,
                 replay: ReplayGuard | None = None,
                 send: Callable[[Outgoing], Awaitable[None]] | None = None,
                 max_body_bytes: int = m.MAX_BODY_BYTES, signature_ttl_s: int = 60,
                 max_transactions: int = 1000, city_code: str = m.DEFAULT_CITY,
                 store: Any = None, binding: str | None = None, profile: Any = None):
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
        self._catalog_cache: CatalogCache | None = None
        self._certificate_tag: tuple[Any, dict] | None = None
        self.replay = replay or ReplayGuard(clock=self.clock)
        self.send = send
        self.max_body_bytes = max_body_bytes
        self.signature_ttl_s = signature_ttl_s
        self.max_transactions = max_transactions
        self.city_code = city_code
        self.counters: dict[str, int] = {}
        self._txs: OrderedDict[str, Transaction] = OrderedDict()
        self._by_order: dict[str, Transaction] = {}
        self._by_session: dict[str, Transaction] = {}
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
        self.profile = profile or BECKN_11  # the wire protocol (protocols.beckn.profile)
        self._hold_task = None
        if store is not None:
            self._restore()
        self.service.add_listener(self._on_event)
        self._listening = True

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

    def wire_ack(self, reply: Reply, body: bytes) -> dict:
        """The synchronous answer to ``body`` as this profile sends it (2.0: counter-signed)."""
        return self.profile.wire_ack(self, reply, body)

    def pending(self) -> list[Outgoing]:
        """Unsolicited messages not yet handed to ``send``."""
        return list(self._outbox)

    def _count(self, name: str) -> None:
        self.counters[name] = self.counters.get(name, 0) + 1
