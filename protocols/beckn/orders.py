"""The order book: every transaction in memory, indexed by transaction, order and session,
bounded, and kept in the durable order store from ``confirm`` on.

Durable orders (``store``): chargers lose power without warning, and a buyer who paid and got
an order id must still find the order afterwards. With a ``store`` (the runtime's journal:
``save_order`` / ``orders`` / ``delete_order``, see ``agent.journal``) and a ``binding`` name
(``"mqtt"``, ``"http"``: each binding reads only its own rows) a transaction is written when it
is confirmed and whenever its stage changes (started, stopping, ended, cancelled) or it is
rated, and read back when the ``Bpp`` is built. Quotes before confirm are not written: they
live minutes and the buyer simply selects again. Without a store (the default; fleet mode and
most tests) transactions live in memory only, as before.

* What is written: ``order_record`` (``Transaction.stored_json``).
* After a restart each order is tied to the charger again. An order that was charging is
  tied to its session, which the runtime's boot reconciliation closed and gave a receipt: the
  order is ended, the receipt attached and the buyer told (``on_status`` ``COMPLETE``), as a
  live end would be. A start that never reached the journal (the car had not drawn power) died
  with the process: the order is confirmed again and may be started or cancelled. A confirmed
  order's connector hold is taken again through ``service.reserve`` in ``start()`` while it has
  not expired (a hold that cannot be taken is logged; the order may still start). A row that
  cannot be read is skipped with an error naming the order, and left in the store.
* Bound: the store follows the memory bound. ``max_transactions`` and the same eviction (ended
  and cancelled orders, oldest first; see ``_evictable`` for expired quotes and abandoned
  bookings) delete the row with the transaction, and a restore that finds more rows drops the
  oldest finished ones. A finished order is kept until then rather than after a time-out, so a
  buyer whose receipt was lost in the power cut can still ask ``status`` for it; the table
  keeps no more rows than memory keeps orders (at most ``max_transactions``, about 2 KB each),
  plus any row it could not read.
* Refusals: ``confirm`` is refused, with nothing held, when its order cannot be written: the
  charger must not say yes and then forget. A write that fails after the charger acted (a
  start, a stop, a cancel) is logged and counted (``store_failed``) instead; the action stands
  and the next change writes the order again.
"""
from __future__ import annotations

import logging

from protocols.beckn import messages as m
from protocols.beckn.errors import BUSINESS_ERROR, ORDER_NOT_FOUND, POLICY_ERROR, BecknError
from protocols.beckn.order_record import Transaction

log = logging.getLogger("urja.beckn")

ABANDONED_AFTER_S = 86_400  # a confirmed order never started may be evicted this long after its window


class OrderBookMixin:
    """The ``Bpp``'s transactions. Its ``__init__`` sets ``_txs`` (by transaction id, oldest
    first), ``_by_order``, ``_by_session``, ``store``, ``binding`` and ``max_transactions``."""

    def transactions(self) -> dict:
        return {tid: tx.snapshot() for tid, tx in self._txs.items()}

    def _persist(self, tx: Transaction) -> None:
        """Write an order now (one fsync); raises what the store raises."""
        if self.store is None or not tx.order_id:
            return
        self.store.save_order(self.binding, tx.transaction_id, tx.stored_json(), self.clock())
        self._count("orders_saved")

    def _persist_quietly(self, tx: Transaction) -> None:
        """Write an order after the charger acted: a failure is logged, never refused."""
        try:
            self._persist(tx)
        except Exception:
            self._count("store_failed")
            log.exception("beckn: order %s (%s) could not be written; it is held in memory until its next change",
                          tx.order_id, tx.stage)

    def _drop(self, tx_id: str, tx: Transaction) -> None:
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
                restored.append(Transaction.from_stored(rec.tx_id, rec.snapshot))
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

    def _reattach(self, tx: Transaction, by_reference: dict) -> None:
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

    def _room_for(self, tx_id: str) -> None:
        if tx_id in self._txs or len(self._txs) < self.max_transactions:
            return
        now_s = self.clock()
        for tx in self._txs.values():
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

    def _evictable(self, tx: Transaction, now_s: float) -> bool:
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

    def _tx_for(self, req: m.Request, stages: tuple, what: str) -> Transaction:
        tx = self._txs.get(req.context.transaction_id)
        if tx is None or tx.bap_id != req.context.bap_id:
            raise BecknError(ORDER_NOT_FOUND, f"unknown transaction {req.context.transaction_id!r}",
                             path="context.transaction_id", kind="unknown-transaction")
        if tx.stage not in stages:
            raise BecknError(POLICY_ERROR, f"{what} is out of order: the transaction is {tx.stage}",
                             kind="out-of-order")
        return tx

    def _order_tx(self, req: m.Request, order_id: str | None, path: str) -> Transaction:
        tx = self._by_order.get(order_id) if order_id else None
        if tx is None and order_id is None:
            tx = self._txs.get(req.context.transaction_id)
            tx = tx if tx is not None and tx.order_id else None
        if tx is None or tx.bap_id != req.context.bap_id:
            raise BecknError(ORDER_NOT_FOUND, f"no order {order_id or req.context.transaction_id!r} for this buyer",
                             path=path, kind="unknown-transaction")
        return tx
