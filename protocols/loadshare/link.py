"""The load-sharing link: a follower's reports and the manager's shares over MQTT.

Why its own MQTT client and not the network's: the site's broker is on the LAN and this traffic
must flow whatever the public network does; one small client with QoS 0 messages (a lost report
or share is replaced by the next one a period later) and the charger's own clock for its periods
(a simulated charger runs faster than real time, and so do its shares and their timeout).
"""
from __future__ import annotations

import asyncio
import json
import logging

from agent.aio import cancel_and_wait
from agent.load.federation import FollowerShares
from agent.service import ServiceError
from protocols.errors import ProtocolError
from protocols.mqtt.transport import MqttSettings, MqttTransport

log = logging.getLogger("urja.loadshare")

TOPIC = "urja/v1/load/{site}/{board}/{kind}"


class LoadShareLink:
    def __init__(self, ctx, settings):
        self.service = ctx.service
        self.now_s = ctx.now_s
        self.settings = settings
        self.transport = MqttTransport(MqttSettings(brokers=(settings.broker,),
                                                    client_id=f"urja-load-{settings.site}-{settings.board}"),
                                       on_message=self._on_message)
        self.follower = FollowerShares(safe_share_a=settings.safe_share_a, timeout_ms=settings.timeout_ms) \
            if settings.role == "follower" else None
        self._applied: dict[str, float] | None = None
        self._fresh: bool | None = None
        self._inbox: list[tuple[str, bytes]] = []
        self._task: asyncio.Task | None = None

    def _topic(self, board: str, kind: str) -> str:
        return TOPIC.format(site=self.settings.site, board=board, kind=kind)

    def _now_ms(self) -> int:
        return int(self.now_s() * 1000)

    async def start(self) -> None:
        s = self.settings
        if s.role == "follower":
            self.transport.subscribe(self._topic(s.board, "shares"), qos=0)
        else:
            self.transport.subscribe(self._topic("+", "state"), qos=0)
        await self.transport.start()
        self._task = asyncio.get_running_loop().create_task(self._loop(), name="urja-loadshare")

    def describe(self) -> str:
        s = self.settings
        return f"load sharing: {s.role} board {s.board} of site {s.site} on {s.broker}"

    async def close(self) -> None:
        if self._task is not None:
            await cancel_and_wait([self._task])
        await self.transport.close()

    def _on_message(self, topic: str, payload: bytes, retained: bool) -> None:
        self._inbox.append((topic, payload))

    async def _loop(self) -> None:
        period_ms = self.settings.period_ms
        while True:
            started_ms = self._now_ms()
            await self._handle_inbox()
            if self.follower is not None:
                await self._follow()
            else:
                self._answer()
            # Periods on the charger's clock; the wait polls it (a simulated clock runs fast).
            while self._now_ms() - started_ms < period_ms and not self._inbox:
                await asyncio.sleep(0.01)

    async def _handle_inbox(self) -> None:
        inbox, self._inbox = self._inbox, []
        for topic, payload in inbox:
            parts = topic.split("/")
            try:
                body = json.loads(payload)
                if self.follower is not None:
                    shares = {str(k): float(v) for k, v in body["shares"].items()}
                    self.follower.received(shares, self._now_ms())
                else:
                    self.service.load_remote_state(parts[4], list(body["connectors"]),
                                                   timeout_ms=self.settings.timeout_ms)
            except (ValueError, KeyError, TypeError, AttributeError, IndexError, ServiceError) as exc:
                log.warning("load sharing: %s refused: %s", topic, exc)

    def _send(self, topic: str, body: dict) -> None:
        """QoS 0 and never waited for: while the broker is away the next period sends again."""
        try:
            self.transport.publish_nowait(topic, json.dumps(body).encode(), qos=0)
        except ProtocolError as exc:
            log.debug("load sharing: %s not sent: %s", topic, exc)

    async def _follow(self) -> None:
        """Apply the share in force (the manager's, or the safe one), then report."""
        s = self.settings
        state = {"board": s.board, "connectors": self.service.load_connectors()}
        now_ms = self._now_ms()
        ids = [c["id"] for c in state["connectors"]]
        shares = self.follower.current(ids, now_ms)
        fresh = self.follower.fresh(now_ms)
        if fresh != self._fresh:
            self._fresh = fresh
            if fresh:
                log.info("load sharing: following the site's manager")
            else:
                log.warning("load sharing: no share from the site's manager: safe share %.1f A", s.safe_share_a)
        if shares != self._applied:
            self._applied = shares
            await self.service.apply_load_shares(shares)
        self._send(self._topic(s.board, "state"), state)

    def _answer(self) -> None:
        status = self.service.load_status() or {}
        for board in status.get("followers", []):
            self._send(self._topic(board, "shares"), {"shares": self.service.load_remote_shares(board)})
