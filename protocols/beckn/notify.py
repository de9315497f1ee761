"""Unsolicited messages and the pump that delivers them.

Session changes (start, stop, pause, fault) become ``on_status``, the signed receipt of a
finished session an ``on_status`` with order status ``COMPLETE``, and a connector or tariff
change a fresh signed catalog; they are queued (at most ``MAX_OUTBOX``, the oldest dropped)
and delivered by a named background task through the injected ``send`` coroutine
(``start()`` / ``close()``).
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any

from protocols.beckn import messages as m
from protocols.beckn.order_record import Transaction
from protocols.beckn.render import Outgoing

log = logging.getLogger("urja.beckn")

MAX_OUTBOX = 256


class NotifyMixin:
    """The ``Bpp``'s outbox (``_outbox``, woken through ``_wake``) and its service listener."""

    def _unsolicited(self, tx: Transaction, action: str, message: dict) -> None:
        ctx = self._callback_context(tx.ctx, action, message_id=self.new_id())
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
