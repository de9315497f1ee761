"""Booking holds: when the charger holds a connector for a confirmed order.

Why not at ``confirm``: holding a connector from confirm on shut it for up to a day for an
evening booking. A booking's hold starts ``Policy.hold_lead_s`` before its start (at once for
a start within that lead) and ends ``Policy.reservation_grace_s`` after it; one connector has
one booking at a time, and a window that meets another's is refused.
"""
from __future__ import annotations

import asyncio
import logging

from agent.service import ServiceError
from protocols.beckn import messages as m
from protocols.beckn.errors import FULFILLMENT_UNAVAILABLE, BecknError
from protocols.beckn.order_record import Transaction

log = logging.getLogger("urja.beckn")

HOLD_CHECK_S = 1.0  # how often booked orders whose hold is due are looked at (real seconds)


class HoldsMixin:
    """Takes the holds that are due, on ``start()`` and then every ``HOLD_CHECK_S``."""

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

    def _booked(self, connector_id: str, from_s: float, until_s: float, *, besides: Transaction | None = None):
        """The confirmed order that holds (or will hold) ``connector_id`` within [from_s, until_s)."""
        for tx in self._by_order.values():
            if tx is besides or tx.stage != "confirmed" or tx.reservation_id is None \
                    or tx.connector_id != connector_id:
                continue
            start_s = tx.hold_from_s if tx.hold_from_s is not None else tx.created_s
            if start_s < until_s and from_s < (tx.reservation_expires_s or 0):
                return tx
        return None

    def _check_no_overlap(self, tx: Transaction, hold_from_s: float, hold_until_s: float) -> None:
        """One connector, one booking at a time: refuse a window that meets another's."""
        other = self._booked(tx.connector_id, hold_from_s, hold_until_s, besides=tx)
        if other is not None:
            start_s = other.hold_from_s if other.hold_from_s is not None else other.created_s
            raise BecknError(FULFILLMENT_UNAVAILABLE,
                             f"connector {tx.connector_id} is booked from {m.format_timestamp(start_s)} to "
                             f"{m.format_timestamp(other.reservation_expires_s)}; choose another time",
                             path="message.order.fulfillments[0].stops", kind="refused")
