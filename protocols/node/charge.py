"""Buying one charge as a user would: select, init, pay, confirm, start, follow, stop, receipt.

Kept apart from the client so an app can drive the same steps with its own screens; the
``urja charge`` command is this flow plus printing. Payment is the simulated UPI flow: the
node "pays" the intent from ``on_init`` (amount and ``upi://pay`` URL) and reports PAID with
its own reference, which is what a UPI app hands back after a real payment.
"""
from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass, field
from typing import Callable

from agent.aio import cancel_and_wait
from protocols.beckn import messages
from protocols.mqtt.transport import TransportError
from protocols.node.client import Answer, NetworkNode, NodeError
from protocols.signing.errors import SignatureError
from protocols.signing.receipt import ReceiptCheck

log = logging.getLogger("urja.node")


@dataclass
class Progress:
    state: str | None = None
    order_status: str | None = None
    session_status: str | None = None
    energy_wh: int = 0
    power_w: int = 0
    cost: str | None = None
    currency: str | None = None

    def as_dict(self) -> dict:
        return dict(self.__dict__)


@dataclass
class ChargeResult:
    transaction_id: str
    order_id: str | None = None
    quote_price: str | None = None
    paid_paise: int = 0
    payment_ref: str | None = None
    payment_url: str | None = None
    progress: Progress = field(default_factory=Progress)
    receipt: dict | None = None
    receipt_check: ReceiptCheck | None = None
    stopped_by_user: bool = False

    def as_dict(self) -> dict:
        check = self.receipt_check
        return {"transaction_id": self.transaction_id, "order_id": self.order_id, "quote_price": self.quote_price,
                "paid_paise": self.paid_paise, "payment_ref": self.payment_ref, "payment_url": self.payment_url,
                "progress": self.progress.as_dict(), "stopped_by_user": self.stopped_by_user,
                "receipt": self.receipt,
                "receipt_verified": None if check is None else {
                    "receipt_id": check.receipt_id, "subscriber_id": check.subscriber_id,
                    "energy_wh": check.energy_wh, "total_paise": check.total_paise,
                    "refund_due_paise": check.refund_due_paise, "currency": check.currency,
                    "ocmf_verified": check.ocmf_verified}}


def simulated_upi_payment(order: dict, new_id: Callable[[], str]) -> tuple[int, str, str | None]:
    """Pay the UPI intent of ``on_init``: returns (amount paid in paise, payment reference, intent URL)."""
    payments = order.get("payments") or []
    pay = payments[0] if payments and isinstance(payments[0], dict) else {}
    params = pay.get("params") or {}
    amount = params.get("amount")
    if amount is None:
        raise NodeError("on_init carries no payment amount", code="refused")
    amount_paise = messages.parse_money(amount, "message.order.payments[0].params.amount")
    return amount_paise, "UPI-" + new_id().replace("-", "")[:16].upper(), pay.get("url")


def progress_of(order: dict, previous: Progress | None = None) -> Progress:
    p = Progress(**(previous.as_dict() if previous else {}))
    p.order_status = order.get("status", p.order_status)
    fulfillments = order.get("fulfillments") or [{}]
    ful = fulfillments[0] if isinstance(fulfillments[0], dict) else {}
    p.state = ((ful.get("state") or {}).get("descriptor") or {}).get("code", p.state)
    live = messages.tag_values(ful.get("tags"), messages.TAG_LIVE)
    if live:
        p.session_status = live.get("session-status") or p.session_status
        try:
            p.energy_wh = int(live.get("energy-wh", p.energy_wh))
            p.power_w = int(float(live.get("power-w", p.power_w)))
        except ValueError:
            pass
        p.cost = live.get("cost", p.cost)
        p.currency = live.get("currency", p.currency)
    return p


class ChargeFlow:
    """One purchase at one charger. ``on_progress(Progress)`` is called on every update."""

    def __init__(self, node: NetworkNode, bpp_id: str, *, energy_wh: int | None = None,
                 budget_paise: int | None = None, on_progress: Callable[[Progress], None] | None = None,
                 on_step: Callable[[str, Answer], None] | None = None, poll_s: float = 1.0,
                 request_timeout_s: float = 15.0, receipt_timeout_s: float = 30.0, outage_s: float = 120.0):
        if (energy_wh is None) == (budget_paise is None):
            raise ValueError("ask for exactly one of energy_wh or budget_paise")
        self.node, self.bpp_id = node, bpp_id
        self.energy_wh, self.budget_paise = energy_wh, budget_paise
        self.on_progress, self.on_step = on_progress, on_step
        self.poll_s, self.request_timeout_s, self.receipt_timeout_s = poll_s, request_timeout_s, receipt_timeout_s
        self.outage_s = outage_s
        self.result = ChargeResult(transaction_id=node.new_id())
        self._changed = asyncio.Event()

    def _ctx(self, action: str) -> dict:
        return self.node.context(action, transaction_id=self.result.transaction_id, bpp_id=self.bpp_id)

    async def _ask(self, doc: dict) -> Answer:
        """One request, sent again while the broker is away (for up to ``outage_s``).

        The same message is sent again, so the charger answers a repeat with its first answer
        (its replay guard keys on the message id) and a paid order is never made twice; a
        refusal (NACK) is not retried.
        """
        action = doc["context"]["action"]
        loop = asyncio.get_running_loop()  # an outage lasts in real time, whatever the node's clock
        deadline_s = loop.time() + self.outage_s
        while True:
            try:
                answer = await self.node.request(doc, timeout_s=self.request_timeout_s)
                break
            except (TransportError, NodeError) as exc:
                if isinstance(exc, NodeError) and exc.code != "timeout":
                    raise
                left_s = deadline_s - loop.time()
                if left_s <= 0:
                    raise
                log.warning("%s to %s not answered (%s); sending it again when the network is back",
                            action, self.bpp_id, exc)
                await self.node.transport.wait_connected(left_s)
                # Same message id (a repeat the charger has seen gets its first answer), a fresh
                # timestamp: a request older than its ttl is dropped unread.
                fresh = self._ctx(action)["timestamp"]
                doc = {**doc, "context": {**doc["context"], "timestamp": fresh}}
        if self.on_step is not None:
            self.on_step(doc["context"]["action"], answer)
        return answer

    def _absorb(self, answer: Answer) -> None:
        order = answer.message.get("order") if isinstance(answer.message, dict) else None
        if not isinstance(order, dict):
            return
        self.result.progress = progress_of(order, self.result.progress)
        receipts = messages.signed_documents(order, messages.TAG_RECEIPT)
        if receipts and self.result.receipt is None:
            self.result.receipt = receipts[0]
        if self.on_progress is not None:
            self.on_progress(self.result.progress)
        self._changed.set()

    def _ended(self) -> bool:
        p = self.result.progress
        return self.result.receipt is not None or p.state in (messages.STATE_ENDED, messages.STATE_CANCELLED) \
            and p.order_status in ("COMPLETE", "CANCELLED")

    async def run(self, stop: asyncio.Event | None = None) -> ChargeResult:
        node, r = self.node, self.result
        ask = dict(provider_id=self.bpp_id, energy_wh=self.energy_wh, budget_paise=self.budget_paise,
                   certificate=node.certificate)
        unlisten = node.listen(r.transaction_id, self._absorb)
        try:
            selected = await self._ask(messages.select(self._ctx("select"), **ask))
            r.quote_price = ((selected.message.get("order") or {}).get("quote") or {}).get("price", {}).get("value")
            initiated = await self._ask(messages.init(self._ctx("init"), **ask))
            r.paid_paise, r.payment_ref, r.payment_url = simulated_upi_payment(
                initiated.message.get("order") or {}, node.new_id)
            confirmed = await self._ask(messages.confirm(self._ctx("confirm"), **ask, payment_status="PAID",
                                                         amount_paise=r.paid_paise, payment_ref=r.payment_ref))
            r.order_id = (confirmed.message.get("order") or {}).get("id")
            if not r.order_id:
                raise NodeError("on_confirm carries no order id", code="refused")
            await self._ask(messages.update(self._ctx("update"), order_id=r.order_id,
                                            command=messages.START_CHARGING))
            await self._follow(stop)
            if r.receipt is not None:
                try:
                    r.receipt_check = node.verify_receipt(r.receipt)
                except SignatureError as exc:
                    raise NodeError(f"the receipt does not verify: {exc}", code="refused") from None
            return r
        finally:
            unlisten()

    async def _follow(self, stop: asyncio.Event | None) -> None:
        r = self.result
        watcher = None
        if stop is not None:
            async def relay_stop():
                await stop.wait()
                self._changed.set()
            watcher = asyncio.create_task(relay_stop(), name=f"charge-stop:{r.transaction_id}")
        try:
            while not self._ended():
                if stop is not None and stop.is_set():
                    r.stopped_by_user = True
                    await self._ask(messages.update(self._ctx("update"), order_id=r.order_id,
                                                    command=messages.END_CHARGING))
                    break
                self._changed.clear()
                try:
                    await asyncio.wait_for(self._changed.wait(), self.poll_s)
                except asyncio.TimeoutError:
                    await self._ask(messages.status(self._ctx("status"), order_id=r.order_id))
            # the receipt follows the end of the session as an unsolicited on_status
            deadline_s = self.node.clock() + self.receipt_timeout_s
            while r.receipt is None:
                if self.node.clock() > deadline_s:
                    raise NodeError(f"no receipt within {self.receipt_timeout_s} s", code="timeout")
                self._changed.clear()
                try:
                    await asyncio.wait_for(self._changed.wait(), self.poll_s)
                except asyncio.TimeoutError:
                    await self._ask(messages.status(self._ctx("status"), order_id=r.order_id))
        finally:
            if watcher is not None:
                await cancel_and_wait([watcher])
