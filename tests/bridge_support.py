"""Helpers for the bridge's tests: a bridge in this process, a buyer on HTTP only, a catalog sink
that records what the bridge told it."""
from __future__ import annotations

import asyncio
import time

from protocols.bridge.buyer import HttpBuyerLink
from protocols.bridge.settings import BridgeSettings
from protocols.mqtt.identity import make_identity
from protocols.mqtt.stack import NetworkConfig
from protocols.mqtt.topics import Topics
from protocols.node.client import NetworkNode


class RecordingSink:
    """The catalog seam as a test sees it: every publish and withdraw, in order."""

    def __init__(self):
        self.events: list[tuple[str, str]] = []
        self.catalogs: dict[str, bytes] = {}
        self.changed = asyncio.Event()

    async def publish(self, charger_id: str, catalog: bytes | None, request: bytes | None = None) -> None:
        self.events.append(("publish", charger_id))
        self.catalogs[charger_id] = catalog
        self.changed.set()

    async def withdraw(self, charger_id: str, request: bytes | None = None) -> None:
        self.events.append(("withdraw", charger_id))
        self.catalogs.pop(charger_id, None)
        self.changed.set()

    async def wait_for(self, event: tuple[str, str], timeout_s: float = 10.0) -> None:
        async def wait():
            while event not in self.events:
                self.changed.clear()
                await self.changed.wait()
        await asyncio.wait_for(wait(), timeout_s)


def bridge_settings(bridge_id: str, broker_url: str, **overrides) -> BridgeSettings:
    values = dict(bridge_id=bridge_id, public_url=f"https://{bridge_id}.example",
                  network=NetworkConfig(brokers=(broker_url,)))
    values.update(overrides)
    return BridgeSettings(**values)


async def http_buyer(agency, bridges: list[str], *, sid: str = "buyer-http", lat: float = 12.97,
                     lon: float = 77.59, clock=time.time, **node_options) -> NetworkNode:
    """The reference node with no MQTT at all: requests to the bridges, callbacks over HTTP
    (``node_options`` go to ``NetworkNode``)."""
    ident = make_identity(agency, sid, lat=lat, lon=lon, now_s=clock(), kind="BAP")
    link = HttpBuyerLink(bridges=bridges, inbox_topic=Topics().inbox(sid))
    uri = await link.listen()
    node = NetworkNode(transport=link, subscriber_id=sid, signer=ident.signer, agency_public_key=agency.public_key,
                       clock=clock, certificate=ident.certificate, uri=uri, **node_options)
    node.identity = ident
    return node
