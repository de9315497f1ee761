"""Fleet mode: many chargers' network stacks in one process, for tests, load and benchmarks.

Each charger runs the real thing from the network's point of view: its own MQTT connection,
its own ``ChargerLink``, its own ``Bpp`` with its own agency-certified key. Only the hardware
behind it is light: ``FleetCharger`` is a small honest ``ChargerService`` (one 7.4 kW Type 2
connector, energy that grows with the clock while a session runs) instead of a runtime with a
Modbus meter per charger, so a thousand chargers fit on one machine.
"""
from __future__ import annotations

import asyncio
import random as _random
import uuid
from pathlib import Path
from typing import Callable, Iterable

from agent.config import Place, SiteConfig
from agent.service import ChargerService, ConnectorView, ServiceError, SessionView
from protocols.mqtt.identity import make_identity
from protocols.mqtt.stack import ChargerNetwork
from protocols.mqtt.topics import Topics
from protocols.mqtt.transport import MqttSettings

EXAMPLE_TARIFF = Path(__file__).resolve().parents[2] / "examples" / "tariffs" / "flat.toml"
POWER_W = 7400


def fleet_site(site_id: str, lat: float, lon: float, *, name: str | None = None) -> SiteConfig:
    place = Place(lat=lat, lon=lon, address="", city="Bengaluru", state="", postal_code="", country="IND",
                  timezone="Asia/Kolkata")
    return SiteConfig(path="<fleet>", site_id=site_id, name=name or f"Fleet charger {site_id}", operator="Fleet",
                      phone="", email="", place=place, upi_vpa="fleet@okaxis", extra={})


class FleetCharger(ChargerService):
    """One connector, energy from the clock at a constant power; honest about refusals."""

    def __init__(self, site: SiteConfig, *, tariff: dict, clock: Callable[[], float],
                 new_id: Callable[[], str] = lambda: uuid.uuid4().hex[:16]):
        self._site, self._tariff, self._clock, self._new_id = site, tariff, clock, new_id
        self._listeners: list = []
        self._sessions: dict[str, dict] = {}
        self._reservation: tuple[str, float] | None = None
        self._active: str | None = None

    @property
    def site(self):
        return self._site

    def now_s(self) -> float:
        return self._clock()

    def tariff(self) -> dict:
        return self._tariff

    def _status(self) -> str:
        if self._active is not None:
            return "CHARGING"
        if self._reservation is not None and self._reservation[1] > self._clock():
            return "RESERVED"
        return "AVAILABLE"

    def connectors(self) -> list[ConnectorView]:
        return [ConnectorView(connector_id="1", evse_uid=f"{self._site.site_id}-1", standard="IEC_62196_T2",
                              format="SOCKET", power_type="AC_1_PHASE", max_voltage_v=230, max_current_a=32,
                              max_power_w=POWER_W, phases=1, status=self._status(), last_updated_s=self._clock(),
                              session_id=self._active, reservation_id=None, pilot_state=None)]

    def _view(self, s: dict) -> SessionView:
        now = self._clock()
        end = s["stop_s"] if s["stop_s"] is not None else now
        energy = int(POWER_W * (end - s["start_s"]) / 3600)
        if s["limit_wh"]:
            energy = min(energy, s["limit_wh"])
        return SessionView(session_id=s["id"], connector_id="1", status="COMPLETED" if s["stop_s"] else "ACTIVE",
                           state="ended" if s["stop_s"] else "charging", start_s=s["start_s"], stop_s=s["stop_s"],
                           energy_wh=energy, power_w=0 if s["stop_s"] else POWER_W, reference=s["reference"],
                           source=s["source"], token=s["token"], last_updated_s=now, currency="INR")

    async def start_session(self, *, source, reference, token=None, connector_id=None, energy_limit_wh=None,
                            money_limit_minor=None, time_limit_s=None, departure_s=None, reservation_id=None,
                            **_receipt_facts) -> SessionView:
        if connector_id not in (None, "1"):
            raise ServiceError(f"no connector {connector_id!r}", code=ServiceError.UNKNOWN_CONNECTOR)
        if self._active is not None:
            raise ServiceError("connector busy", code=ServiceError.OCCUPIED)
        if self._reservation is not None and self._reservation[0] != reservation_id \
                and self._reservation[1] > self._clock():
            raise ServiceError("connector reserved for someone else", code=ServiceError.OCCUPIED)
        self._reservation = None
        s = {"id": self._new_id(), "start_s": self._clock(), "stop_s": None, "limit_wh": energy_limit_wh,
             "reference": reference, "source": source, "token": token}
        self._sessions[s["id"]] = s
        self._active = s["id"]
        view = self._view(s)
        self._notify("session", view)
        self._notify("connector", self.connectors()[0])
        return view

    async def stop_session(self, session_id: str, *, reason: str = "remote") -> SessionView:
        s = self._sessions.get(session_id)
        if s is None:
            raise ServiceError(f"no session {session_id!r}", code=ServiceError.UNKNOWN_SESSION)
        if s["stop_s"] is None:
            s["stop_s"] = self._clock()
            self._active = None
        view = self._view(s)
        self._notify("session", view)
        self._notify("connector", self.connectors()[0])
        return view

    async def reserve(self, *, reservation_id, connector_id, expires_s, token=None) -> ConnectorView:
        if self._status() != "AVAILABLE":
            raise ServiceError("connector not available", code=ServiceError.OCCUPIED)
        self._reservation = (reservation_id, float(expires_s))
        view = self.connectors()[0]
        self._notify("connector", view)
        return view

    async def cancel_reservation(self, reservation_id: str) -> None:
        if self._reservation is None or self._reservation[0] != reservation_id:
            raise ServiceError(f"no reservation {reservation_id!r}", code=ServiceError.UNKNOWN_RESERVATION)
        self._reservation = None
        self._notify("connector", self.connectors()[0])

    async def unlock(self, connector_id: str) -> None:
        raise ServiceError("socket outlet without a lock", code=ServiceError.NOT_SUPPORTED)

    def session(self, session_id):
        s = self._sessions.get(session_id)
        return None if s is None else self._view(s)

    def sessions(self, *, since_s=None, until_s=None):
        return [self._view(s) for s in self._sessions.values()]

    def receipt(self, session_id):
        return None

    def add_listener(self, listener) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def _notify(self, kind, obj) -> None:
        for listener in list(self._listeners):
            listener(kind, obj)


class Fleet:
    """``sites`` are ``(subscriber_id, lat, lon)``; every charger gets a fresh certified key."""

    def __init__(self, *, brokers: Iterable[str], agency, sites: Iterable[tuple[str, float, float]], tariff: dict,
                 clock: Callable[[], float], protocol: str = "5", topics: Topics | None = None,
                 rng: _random.Random | None = None, connect_batch: int = 100):
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
                                    clock=clock, rng=_random.Random(rng.random()))
            member.identity = ident
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
