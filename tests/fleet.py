"""Fleet mode: many chargers' network stacks in one process, for tests, load and benchmarks.

Each charger runs the real thing from the network's point of view: its own MQTT connection,
its own ``ChargerLink``, its own ``Bpp`` with its own agency-certified key. Only the hardware
behind it is light: ``FleetCharger`` is the reference in-memory charger (one 7.4 kW Type 2
socket) instead of a runtime with a Modbus meter per charger, so a thousand chargers fit on one
machine. It lives with the tests (``bench/`` imports it from here) because it reads the
checkout's ``examples/`` and is no part of what a charger runs.
"""
from __future__ import annotations

import asyncio
import random as _random
from collections.abc import Callable, Iterable
from pathlib import Path

from agent.config import Place, SiteConfig
from protocols.mqtt.identity import make_identity
from protocols.mqtt.stack import ChargerNetwork
from protocols.mqtt.topics import Topics
from protocols.mqtt.transport import MqttSettings
from tests.memory_charger import MemoryCharger

EXAMPLE_TARIFF = Path(__file__).resolve().parents[1] / "examples" / "tariffs" / "flat.toml"


def fleet_site(site_id: str, lat: float, lon: float, *, name: str | None = None) -> SiteConfig:
    place = Place(lat=lat, lon=lon, address="", city="Bengaluru", state="", postal_code="", country="IND",
                  timezone="Asia/Kolkata")
    return SiteConfig(path="<fleet>", site_id=site_id, name=name or f"Fleet charger {site_id}", operator="Fleet",
                      phone="", email="", place=place, upi_vpa="fleet@okaxis", extra={})


class FleetCharger(MemoryCharger):
    """The reference charger on a fleet site: one 7.4 kW Type 2 socket ``{site_id}-1``."""

    def __init__(self, site: SiteConfig, *, tariff: dict, clock: Callable[[], float]):
        super().__init__(site=site, clock=clock, tariff=tariff)


class Fleet:
    """``sites`` are ``(subscriber_id, lat, lon)``; every charger gets a fresh certified key."""

    def __init__(self, *, brokers: Iterable[str], agency, sites: Iterable[tuple[str, float, float]], tariff: dict,
                 clock: Callable[[], float], protocol: str = "5", topics: Topics | None = None,
                 rng: _random.Random | None = None, connect_batch: int = 100, publish=None, **link_options):
        """``publish``: a ``NetworkConfig`` whose Beckn 2.0 catalog publishing every member does
        (``ChargerNetwork.publish_catalog``: its services, its ``bridge_url``)."""
        self.brokers = tuple(brokers)
        self.agency = agency
        self.clock = clock
        self.topics = topics or Topics()
        self.connect_batch = connect_batch
        rng = rng or _random.Random()
        self.members: list[ChargerNetwork] = []
        now = clock()
        for sid, lat, lon in sites:
            ident = make_identity(agency, sid, lat=lat, lon=lon, now_s=now)
            service = FleetCharger(fleet_site(sid, lat, lon), tariff=tariff, clock=clock)
            settings = MqttSettings(brokers=self.brokers, client_id=sid, protocol=protocol,
                                    backoff_initial_s=0.2, backoff_max_s=5.0)
            member = ChargerNetwork(service=service, signer=ident.signer, certificate=ident.certificate,
                                    agency_public_key=agency.public_key, settings=settings, topics=self.topics,
                                    clock=clock, rng=_random.Random(rng.random()), **link_options)
            member.identity = ident
            if publish is not None:
                member.publish_catalog(publish)
            self.members.append(member)

    async def start(self, *, connect_timeout_s: float = 60.0) -> None:
        """Start in batches so the broker's accept queue is not flooded, then wait for all."""
        for i in range(0, len(self.members), self.connect_batch):
            batch = self.members[i:i + self.connect_batch]
            for member in batch:
                await member.start()
            await asyncio.gather(*(m.transport.wait_connected(connect_timeout_s) for m in batch))

    async def close(self) -> None:
        await asyncio.gather(*(m.close() for m in self.members), return_exceptions=True)

    async def __aenter__(self):
        await self.start()
        return self

    async def __aexit__(self, *exc):
        await self.close()

    def received_outside(self, inside: set[str]) -> int:
        """Messages that reached chargers not in ``inside`` (a far charger should see none)."""
        return sum(m.link.stats["received"] for m in self.members if m.service.site.site_id not in inside)
