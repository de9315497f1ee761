"""Making the contract: ``search``, ``select``, ``init`` and ``confirm`` (codes are BECKN-005).

* ``search``   -> ``on_search``: the catalog (``catalog``). A search that does not match (too
  far, wrong connector, every connector booked at the time asked, too dear) is a NACK
  ``40000`` with the reason; nothing is sent back.
* ``select``   -> ``on_select``: a signed quote for the energy, time or budget asked, priced by
  ``agent.core.offers`` exactly as the receipt will price it; valid ``Policy.quote_ttl_s``.
* ``init``     -> ``on_init``: payment terms: amount and a UPI intent
  (``upi://pay?pa=<vpa>&pn=<name>&am=<amount>&cu=INR&tr=<transaction id>&tn=...``).
* ``confirm``  -> ``on_confirm``: the contract. The connector is held until the start time
  plus ``Policy.reservation_grace_s`` (a booking's hold begins ``Policy.hold_lead_s`` before
  its start: ``holds``). Prepaid sites need ``payments[0].status = PAID`` with exactly the
  amount ``on_init`` asked (else ``40004``, nothing held); that amount, the charger's own
  quote, becomes the session's money limit and the receipt's ``paid_paise`` (the receipt
  states the refund due). ``postpaid_certified`` sites also accept ``NOT-PAID`` from
  agency-certified buyers. What ``init`` and ``confirm`` repeat of the ask (quantity, budget,
  connector, start) must be what was quoted (else ``40003``).
  (Without a back-end the charger cannot see the UPI payment itself; the ``tr`` reference lets
  the site owner reconcile.) The order is written to the store before the yes (``orders``).
"""
from __future__ import annotations

import logging

from agent.core import offers
from agent.core.tariff import Tariff, TariffError
from agent.service import ServiceError
from protocols.beckn import messages as m
from protocols.beckn.errors import (
    AGENT_UNAVAILABLE,
    BUSINESS_ERROR,
    FULFILLMENT_UNAVAILABLE,
    INVALID_REQUEST,
    ITEM_NOT_FOUND,
    PAYMENT_NOT_SUPPORTED,
    POLICY_ERROR,
    PROVIDER_NOT_FOUND,
    QUANTITY_UNAVAILABLE,
    QUOTE_UNAVAILABLE,
    BecknError,
)
from protocols.beckn.order_record import Transaction
from protocols.beckn.presentation import u_to_paise
from protocols.beckn.refusals import service_nack
from protocols.beckn.render import Reply

log = logging.getLogger("urja.beckn")

QUOTE_KIND = "urja.quote"

_NOT_SERVICEABLE = ("INOPERATIVE", "OUTOFORDER", "UNKNOWN")


class ContractHandlersMixin:
    """The ``Bpp``'s handlers from ``search`` to ``confirm``."""

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

    def _check_provider_item(self, ask: m.OrderAsk) -> None:
        if ask.provider_id != self.bpp_id:
            raise BecknError(PROVIDER_NOT_FOUND, f"provider {ask.provider_id!r} is not this charger "
                                                 f"({self.bpp_id})", path="message.order.provider.id",
                             kind="refused")
        if ask.item_id != m.ITEM_ID:
            raise BecknError(ITEM_NOT_FOUND, f"item {ask.item_id!r} (allowed: {m.ITEM_ID})",
                             path="message.order.items[0].id", kind="refused")

    def _check_open(self, start_s: float) -> None:
        """Refuse a charge that would start while the site is closed (``[site] opening_hours``):
        the runtime refuses that start, so a quote, an order or a payment for it would promise
        what the charger will not do."""
        hours = getattr(self.site, "opening_hours", None)
        timezone = getattr(self.site.place, "timezone", None) or "UTC"
        if hours is not None and not hours.is_open(start_s, timezone):
            raise BecknError(FULFILLMENT_UNAVAILABLE, f"the site is closed at {m.format_timestamp(start_s)} "
                                                      f"(open {hours.text}, {timezone} time)",
                             path="message.order.fulfillments[0].stops", kind="refused")

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
        self._check_open(start_s)
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
        price_paise = cost.total_paise
        if ask.budget_paise is not None:
            price_paise = max(price_paise, 0)
        expires_s = now_s + self.policy.quote_ttl_s
        quote_id = self.new_id()
        doc = self._sign_doc({
            "kind": QUOTE_KIND, "quote_id": quote_id, "transaction_id": tx_id, "bap_id": req.context.bap_id,
            "bpp_id": self.bpp_id, "connector_id": c.connector_id, "start": m.format_timestamp(start_s),
            "energy_wh": energy_wh, "duration_s": duration_s, "budget_paise": ask.budget_paise,
            "power_w": power_w, "price_paise": price_paise,
            "tax_paise": u_to_paise(cost.total_vat_u), "currency": currency,
            "tariff_id": str(tariff.get("id", "")), "tariff_digest": self._tariff_digest(tariff),
            "valid_until": m.format_timestamp(expires_s),
        })
        return dict(connector_id=c.connector_id, start_s=start_s, energy_wh=energy_wh, duration_s=duration_s,
                    budget_paise=ask.budget_paise, asked_energy_wh=ask.energy_wh, power_w=power_w,
                    price_paise=price_paise, tax_paise=u_to_paise(cost.total_vat_u), currency=currency,
                    quote_id=quote_id, quote_doc=doc, quote_expires_s=expires_s,
                    reserve_ahead=start_s > now_s)

    async def _select(self, req: m.Request, certified: bool, digest: str = "") -> Reply:
        tx_id = req.context.transaction_id
        old = self._txs.get(tx_id)
        if old is not None and (old.bap_id != req.context.bap_id or old.stage not in ("quoted", "initiated")):
            raise BecknError(POLICY_ERROR, f"transaction {tx_id!r} already has a contract; start a new one",
                             path="context.transaction_id", kind="out-of-order")
        parts = self._quote(req, req.body, tx_id)
        self._room_for(tx_id)
        self._evict()
        tx = Transaction(transaction_id=tx_id, bap_id=req.context.bap_id, bap_uri=req.context.bap_uri,
                 ctx=req.context.raw, certified=certified, created_s=self.clock(), payment_id=self.new_id(),
                 buyer_certificate=req.certificate if certified else None,
                 payment_type="PRE-ORDER", payment_ref=None, **parts)
        self._txs[tx_id] = tx
        self._txs.move_to_end(tx_id)
        return self._ack(self._reply(req, "on_select", {"order": self._order_body(tx, state=m.STATE_QUOTED)}))

    def _check_same_ask(self, tx: Transaction, ask: m.OrderAsk) -> None:
        self._check_provider_item(ask)
        asked = (ask.energy_wh, ask.duration_s, ask.budget_paise)
        if any(a is not None for a in asked) and asked != (tx.asked_energy_wh, tx.duration_s, tx.budget_paise):
            raise BecknError(QUOTE_UNAVAILABLE, "the order differs from the quote; select again",
                             path="message.order.items[0]", kind="refused")
        if ask.fulfillment_id is not None and ask.fulfillment_id != tx.connector_id:
            raise BecknError(QUOTE_UNAVAILABLE, f"the quote is for connector {tx.connector_id}; select again",
                             path="message.order.fulfillments[0].id", kind="refused")
        if ask.start_s is not None and self._booked_start_s(ask.start_s, tx.created_s) != \
                (tx.start_s if tx.reserve_ahead else None):
            quoted = m.format_timestamp(tx.start_s) if tx.reserve_ahead else "now"
            raise BecknError(QUOTE_UNAVAILABLE, f"the quote starts {quoted}; select again for another start",
                             path="message.order.fulfillments[0].stops", kind="refused")
        if tx.quote_expires_s < self.clock():
            raise BecknError(QUOTE_UNAVAILABLE, "the quote has expired; select again", kind="refused")

    @staticmethod
    def _keep_certificate(tx: Transaction, req: m.Request, certified: bool) -> None:
        """Keep the latest certificate the buyer showed: after a restart it is what verifies the
        buyer of the order (``admission``). One the admission refused never gets here."""
        tx.certified = tx.certified or certified
        if certified and req.certificate is not None:
            tx.buyer_certificate = req.certificate

    @staticmethod
    def _booked_start_s(asked_s: float, selected_s: float) -> float | None:
        """The booking a start asks for, read as ``_quote`` read it at ``select``: None for now."""
        return asked_s if asked_s > selected_s + 60 else None

    def _check_paid(self, tx: Transaction, pay: m.Payment) -> None:
        """A PAID confirm states exactly the amount ``on_init`` asked (``_payment``).

        Why exactly: the charger cannot see the payment, and every later figure (the session's
        money limit, the receipt's ``paid_paise``, a cancellation's refund) is taken from the
        contract; an amount the buyer claims but the charger did not ask for must not become one.
        """
        path = "message.order.payments[0].params"
        if pay.amount_paise is None:
            raise BecknError(PAYMENT_NOT_SUPPORTED, "a PAID payment must state its amount",
                             path=path + ".amount", kind="refused")
        if pay.currency is not None and pay.currency != tx.currency:
            raise BecknError(PAYMENT_NOT_SUPPORTED, f"paid in {pay.currency}, but the quote is in {tx.currency}",
                             path=path + ".currency", kind="payment")
        if pay.amount_paise != tx.price_paise:
            raise BecknError(PAYMENT_NOT_SUPPORTED,
                             f"paid {m.money_text(pay.amount_paise)} {tx.currency}, but this order asks "
                             f"{m.money_text(tx.price_paise)} {tx.currency} (the amount in on_init); "
                             "nothing is held", path=path + ".amount", kind="payment")

    async def _init(self, req: m.Request, certified: bool, digest: str = "") -> Reply:
        tx = self._tx_for(req, ("quoted", "initiated"), "init")
        ask: m.OrderAsk = req.body
        self._check_same_ask(tx, ask)
        postpaid = self.policy.payment == "postpaid_certified" and (certified or tx.certified)
        if not self.site.upi_vpa and not postpaid:
            raise BecknError(PAYMENT_NOT_SUPPORTED, "this site has no UPI address for prepayment",
                             kind="refused")
        tx.stage = "initiated"
        self._keep_certificate(tx, req, certified)
        tx.billing = ask.billing or tx.billing
        tx.payment_type = "POST-FULFILLMENT" if postpaid else "PRE-ORDER"
        order = self._order_body(tx, state=m.STATE_INITIATED)
        order["payments"] = [self._payment(tx)]
        order["cancellation_terms"] = self._cancellation_terms(
            self._cancellation_fee_paise(self.service.tariff()), tx.currency)
        return self._ack(self._reply(req, "on_init", {"order": order}))

    async def _confirm(self, req: m.Request, certified: bool, digest: str = "") -> Reply:
        tx = self._tx_for(req, ("initiated",), "confirm")
        ask: m.OrderAsk = req.body
        self._check_same_ask(tx, ask)
        self._check_open(max(tx.start_s, self.clock()))
        pay = ask.payment
        shown = certified  # this message's own sender check; the order may be certified from before
        certified = certified or tx.certified
        if pay.status == "PAID":
            self._check_paid(tx, pay)
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
                    raise service_nack(exc, "message.order.fulfillments[0].id") from None
        before = tx.copy()
        tx.order_id = order_id
        tx.reservation_id = reservation_id
        tx.reservation_expires_s = hold_until_s if reservation_id is not None else None
        tx.hold_from_s = hold_from_s if reservation_id is not None else None
        tx.hold_taken = reservation_id is not None and not deferred
        tx.stage = "confirmed"
        tx.payment_status = pay.status
        tx.paid_paise = tx.price_paise if pay.status == "PAID" else 0  # the charger's figure (_check_paid)
        tx.payment_ref = pay.reference
        tx.billing = ask.billing or tx.billing
        tx.ctx = req.context.raw
        self._keep_certificate(tx, req, shown)
        tx.acceptance_digest = "BLAKE-512=" + digest
        try:
            self._persist(tx)
        except Exception:
            # A yes the charger would forget at the next power cut is worse than a no now.
            self._count("store_failed")
            log.exception("beckn: order %s for transaction %s could not be written; confirm refused",
                          order_id, tx.transaction_id)
            tx.restore(before)
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
