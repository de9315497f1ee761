"""A simulated site for the load manager: house, connectors, cars that follow offers late.

Pure and stepped by the caller's clock (``step(now_ms)``), for the property test and the
benchmark. It models what matters to the site's limit: a pilot car draws
``min(its maximum, offer)`` as offered ``reaction_ms`` ago (IEC 61851-1 gives it up to 5 s), so a
lower offer shows at the grid meter only after that; a socket outlet's vehicle draws its own
current at once when switched on and nothing when off. The grid meter and the connectors'
meters are read every ``poll_ms`` and handed to the manager, whose shares take effect at once
(the runtime's reaction is measured in the runtime, not here).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from agent.core.session_current import offer_for
from agent.load.manager import ConnectorSpec, LoadManager


@dataclass(kw_only=True)
class SimCar:
    """A vehicle at a connector: when it comes, what it can draw, how much it wants."""

    arrive_ms: int
    max_current_a: float
    need_wh: float
    reaction_ms: int = 3000
    leave_ms: int | None = None  # it drives off then, charged or not
    delivered_wh: float = 0.0
    offers: list[tuple[int, float]] = field(default_factory=list)  # (time_ms, offered_a)

    def done(self, now_ms: int | None = None) -> bool:
        if self.leave_ms is not None and now_ms is not None and now_ms >= self.leave_ms:
            return True
        return self.delivered_wh >= self.need_wh


class SimSite:
    """Steps the house, the cars and the meters; records how far above its limit the site went."""

    def __init__(self, *, manager: LoadManager, connectors: list[ConnectorSpec], house, cars: dict[str, SimCar],
                 poll_ms: int = 1000, voltage_v: float = 230.0, start_s: float = 0.0):
        self.manager = manager
        self.specs = {c.connector_id: c for c in connectors}
        self.house = house
        self.cars = cars
        self.poll_ms = poll_ms
        self.voltage_v = voltage_v
        self.start_s = start_s
        self.shares = {cid: 0.0 for cid in self.specs}
        self.draw_a = {cid: 0.0 for cid in self.specs}
        self.wanting = {cid: False for cid in self.specs}
        self._next_poll_ms = 0
        self._last_ms: int | None = None
        self.over_ms = 0  # time above the limit with the chargers drawing
        self.over_runs_ms: list[int] = []  # each continuous stretch above it
        self._run_ms = 0
        self.delivered_wh = 0.0
        self.site_a: tuple[float, ...] = ()

    def _car_draw(self, cid: str, now_ms: int) -> float:
        car = self.cars.get(cid)
        spec = self.specs[cid]
        if car is None or now_ms < car.arrive_ms or car.done(now_ms) or not self.wanting[cid]:
            return 0.0
        share = self.shares[cid]
        if spec.kind == "socket":
            return min(car.max_current_a, spec.max_current_a) if share > 0 else 0.0
        seen_ms = now_ms - car.reaction_ms
        offers = car.offers
        while len(offers) >= 2 and offers[1][0] <= seen_ms:
            offers.pop(0)
        offered = offers[0][1] if offers and offers[0][0] <= seen_ms else 0.0
        return min(car.max_current_a, offered)

    def step(self, now_ms: int) -> None:
        dt_ms = 0 if self._last_ms is None else now_ms - self._last_ms
        self._last_ms = now_ms
        for cid, car in self.cars.items():
            car.delivered_wh += self.draw_a[cid] * self.voltage_v * len(self.specs[cid].phases) * dt_ms / 3_600_000
            wants = now_ms >= car.arrive_ms and not car.done(now_ms)
            if wants != self.wanting[cid]:
                self.wanting[cid] = wants
                self._apply(self.manager.demand(cid, wants, now_ms).limits_a, now_ms)
        self.delivered_wh = sum(car.delivered_wh for car in self.cars.values())
        for cid in self.specs:
            self.draw_a[cid] = self._car_draw(cid, now_ms)
        site = list(self.house.current_a(self.start_s + now_ms / 1000))
        for cid, spec in self.specs.items():
            for p in spec.phases:
                site[p] += self.draw_a[cid]
        self.site_a = tuple(site)
        self._judge(dt_ms, now_ms)
        if now_ms >= self._next_poll_ms:
            self._next_poll_ms = now_ms + self.poll_ms
            for cid in self.specs:
                self.manager.connector_reading(cid, (self.draw_a[cid],), now_ms)
            shares = self.manager.grid_reading(self.site_a, sum(self.site_a) * self.voltage_v, now_ms)
            self._apply(shares.limits_a, now_ms)
        else:
            self._apply(self.manager.tick(now_ms).limits_a, now_ms)

    def _judge(self, dt_ms: int, now_ms: int) -> None:
        """Above the limit in force (no margin) while a charger draws: how long, in runs."""
        limit_kw, limit_a = self.manager.limits_at(now_ms)
        over = limit_a is not None and any(a > limit_a + 1e-6 for a in self.site_a)
        if limit_kw is not None:
            over = over or sum(self.site_a) * self.voltage_v > limit_kw * 1000 + 1e-3
        if over and any(self.draw_a.values()):
            self.over_ms += dt_ms
            self._run_ms += dt_ms
        elif self._run_ms:
            self.over_runs_ms.append(self._run_ms)
            self._run_ms = 0

    def longest_over_ms(self) -> int:
        return max(self.over_runs_ms + [self._run_ms])

    def _apply(self, limits: dict[str, float], now_ms: int) -> None:
        for cid, share in limits.items():
            if share != self.shares[cid]:
                self.shares[cid] = share
                car = self.cars.get(cid)
                if car is not None and self.specs[cid].kind == "pilot":
                    car.offers.append((now_ms, float(offer_for(share, self.specs[cid].max_current_a))))
