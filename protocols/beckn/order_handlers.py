"""Serving a confirmed order: ``update``, ``status``, ``track``, ``cancel``, ``rating`` and
``support`` (codes are BECKN-005).

* ``update``   (``start-charging`` / ``end-charging``) -> ``on_update``. A booking may start
  from ten minutes before its start time.
* ``status``, ``track`` -> live energy, power and cost.
* ``cancel``   -> ``on_cancel`` before charging starts (reservation released; fee from the
  tariff's ``RESERVATION_EXPIRES`` flat price, else ``Policy.cancellation_fee_paise``; a paid
  order is refunded the rest).
* ``rating``, ``support`` (the site owner's contact).
"""
from __future__ import annotations

import inspect

from agent.service import ServiceError
from protocols.beckn import messages as m
from protocols.beckn.errors import (
    CANCELLATION_NOT_POSSIBLE,
    FULFILLMENT_UNAVAILABLE,
    RATING_ENTITY_NOT_FOUND,
    UPDATE_NOT_POSSIBLE,
    BecknError,
)
from protocols.beckn.order_record import Transaction
from protocols.beckn.refusals import service_nack
from protocols.beckn.render import Reply


class OrderHandlersMixin:
    """The ``Bpp``'s handlers after ``confirm``."""

    def _limits(self, tx: Transaction) -> dict:
        money = tx.paid_paise if tx.payment_status == "PAID" else tx.budget_paise
        return dict(energy_limit_wh=tx.asked_energy_wh, money_limit_paise=money or None,
                    time_limit_s=tx.duration_s)

    def _receipt_facts(self, tx: Transaction) -> dict:
        """What the receipt needs from the contract, for services whose ``start_session`` takes it.

        ``paid_paise`` and ``acceptance_digest`` are not (yet) part of ``ChargerService``; the
        runtime accepts them, other implementations need not.
        """
        if self._start_kwargs is None:
            try:
                params = inspect.signature(self.service.start_session).parameters
                self._start_kwargs = {n for n in ("paid_paise", "acceptance_digest") if n in params}
            except (TypeError, ValueError):
                self._start_kwargs = set()
        facts = {"paid_paise": tx.paid_paise if tx.payment_status == "PAID" else None,
                 "acceptance_digest": tx.acceptance_digest}
        return {k: v for k, v in facts.items() if k in self._start_kwargs}

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
                raise service_nack(exc, "message.order.fulfillments[0].state") from None
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
                raise service_nack(exc, "message.order.fulfillments[0].state") from None
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
                    raise service_nack(exc, "message.order_id", code=CANCELLATION_NOT_POSSIBLE) from None
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
