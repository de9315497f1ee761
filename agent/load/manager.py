"""Each connector's share of the site's supply, from the grid meter's readings.

Pure and clock-injected: every input carries ``now_ms`` and nothing here reads a clock, sleeps
or touches hardware, so the same object runs in the runtime, in property tests and in the
benchmark's simulated day.

How a share is found, on every grid reading (so the reaction to a step in the house's load is
the time to handle one reading) and on every tick:

* The limit in force is the lower of the site's own and any time-of-day window's, less the
  margin; a kW limit and an amps-per-phase limit may both hold.
* The house is what the grid meter shows less what the connectors' own meters show (never
  below zero), so a car that has not yet followed a lower offer is not mistaken for house load.
  A connector switched on or off since its own meter was last read (or within
  ``SWITCH_SETTLE_MS`` before: the contactor and the meter's own averaging take time) draws an
  unknown current (for at most ``SWITCH_HOLD_MS``: a connector meter that stops answering must
  not freeze the house's figure):
  on its phases the house is taken as it was until that meter has been read again (else the
  grid meter, read later, would show the new draw as house load and switch it off again).
  What remains under the limit is the chargers' budget. With no grid reading for
  ``grid_timeout_ms`` the budget is the configured ``safe_current_a`` per phase. In solar mode
  the budget is also held to the surplus the meter shows as export (plus ``solar_min_a``).
* Connectors that want power are taken in order: by priority, then first come or, for equal
  share, the one served least so far (a socket outlet switched on recently keeps its turn for
  ``rotation_s``). A socket outlet cannot be modulated: it is on if its draw fits, else off (a
  vehicle not yet seen is assumed to draw ``socket_start_a``; what it draws is learned, and one
  that draws more than fits is switched off within one reading and not tried again until its
  draw fits); a
  pilot connector is given its 6 A minimum if that fits, else paused. What is left is shared
  among the pilot connectors: in order (first come) or level (equal share, water-filling).
* Hysteresis: a paused pilot resumes, and a socket outlet switches on, only when
  ``hysteresis_a`` more than it needs fits; a share grows only by at least ``hysteresis_a``.
  Lowering is never delayed. A socket outlet is switched on only while its contactor operations
  in the last hour leave room for the matching off (``max_switches_per_hour``); switching off
  for the limit is never refused.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from agent.load.settings import LoadSettings

MIN_PILOT_A = 6.0  # IEC 61851: the lowest current PWM can offer
SWITCH_SETTLE_MS = 1000  # a connector's meter read this soon after a switch may not show it yet
SWITCH_HOLD_MS = 3000  # the longest the house's figure is held for a connector's unknown draw
SOCKET_SETTLE_MS = 5000  # a socket outlet just switched on is budgeted at its expected draw this long
HOUR_MS = 3_600_000
KINDS = ("pilot", "socket")


@dataclass(frozen=True, kw_only=True)
class ConnectorSpec:
    """One connector as the load manager sees it: which site phases it draws from, and how much."""

    connector_id: str
    kind: str
    max_current_a: float
    phases: tuple[int, ...] = (0,)
    priority: int = 0

    def __post_init__(self):
        if self.kind not in KINDS:
            raise ValueError(f"connector kind {self.kind!r} unknown; allowed: {', '.join(KINDS)}")


@dataclass(kw_only=True)
class Shares:
    """One decision: what each connector may draw (amps per phase; 0 is paused or off) and why."""

    time_ms: int
    limits_a: dict[str, float]
    mode: str  # "grid", "solar" or "fallback" (no grid reading: the safe current)
    site_limit_a: tuple[float, ...]
    house_a: tuple[float, ...]
    budget_a: tuple[float, ...]
    changed: bool = False

    def line(self) -> str:
        """One log line: the limit, the house and each connector's share."""
        shares = " ".join(f"{cid}={a:g}A" for cid, a in sorted(self.limits_a.items()))
        return (f"load {self.mode}: limit {_amps(self.site_limit_a)} house {_amps(self.house_a)} "
                f"budget {_amps(self.budget_a)} shares {shares}")


def _amps(values) -> str:
    return "/".join(f"{v:.1f}" for v in values) + "A"


@dataclass
class _Conn:
    spec: ConnectorSpec
    wants: bool = False
    since_ms: int = 0
    draw_a: float = 0.0  # highest of its phases, from its own meter
    share_a: float = 0.0
    draw_ms: int | None = None  # when its meter was last read
    switched_ms: int | None = None  # when its power was last switched on or off
    on_since_ms: int | None = None  # while it has power (share > 0)
    served_ms: int = 0
    expected_a: float | None = None  # a socket outlet's vehicle's draw, once seen
    switches_ms: list[int] = field(default_factory=list)


class LoadManager:
    """Decides each connector's share; ``grid_reading``, ``tick`` and ``demand`` return ``Shares``."""

    def __init__(self, *, settings: LoadSettings, connectors: list[ConnectorSpec], minute_of_day=None):
        if settings.phases is None:
            raise ValueError("the site's phases must be known (LoadSettings.phases)")
        self.settings = settings
        self._minute_of_day = minute_of_day  # now_ms -> local minute of the day, for windows
        self._conns: dict[str, _Conn] = {}
        for spec in connectors:
            self.add_connector(spec)
        self._grid_a: tuple[float, ...] = ()
        self._grid_w = 0.0
        self._grid_ms: int | None = None
        self._house_a: list[float] = []
        self._last_ms: int | None = None
        self.last: Shares | None = None

    def add_connector(self, spec: ConnectorSpec) -> None:
        """A connector of another board that follows this one (``agent.load.federation``)."""
        if spec.connector_id in self._conns:
            raise ValueError(f"connector {spec.connector_id!r} named twice")
        if not spec.phases or any(p < 0 or p >= self.settings.phases for p in spec.phases):
            raise ValueError(f"connector {spec.connector_id}: phases {spec.phases} not on a "
                             f"{self.settings.phases}-phase site")
        self._conns[spec.connector_id] = _Conn(spec=spec)

    def has(self, connector_id: str) -> bool:
        return connector_id in self._conns

    def wants(self, connector_id: str) -> bool:
        return self._conns[connector_id].wants

    # --- inputs --------------------------------------------------------------------------------

    def demand(self, connector_id: str, wants: bool, now_ms: int) -> Shares:
        """A session began (``wants``) or ended on a connector."""
        conn = self._conns[connector_id]
        if wants and not conn.wants:
            conn.since_ms = now_ms
            conn.served_ms = 0
            conn.expected_a = None
        conn.wants = wants
        return self.decide(now_ms)

    def connector_reading(self, connector_id: str, current_a, now_ms: int) -> None:
        """What a connector's own meter shows (amps on each of its phases)."""
        conn = self._conns[connector_id]
        values = tuple(current_a) if isinstance(current_a, (tuple, list)) else (current_a,)
        conn.draw_a = max(values) if values else 0.0
        conn.draw_ms = now_ms
        if conn.spec.kind == "socket" and conn.on_since_ms is not None:
            if now_ms - conn.on_since_ms >= SOCKET_SETTLE_MS:
                conn.expected_a = max(conn.draw_a, 1.0)
            elif conn.draw_a > (conn.expected_a or 0.0):  # still ramping up: the most it has shown
                conn.expected_a = conn.draw_a

    def grid_reading(self, current_a, power_w: float, now_ms: int) -> Shares:
        """The site's total draw per phase (and signed power: negative is export); decides at once."""
        values = tuple(float(a) for a in current_a)
        self._grid_a = (values + (0.0,) * 3)[: self.settings.phases]
        self._grid_w = float(power_w)
        self._grid_ms = now_ms
        return self.decide(now_ms)

    def tick(self, now_ms: int) -> Shares:
        return self.decide(now_ms)

    # --- the decision --------------------------------------------------------------------------

    def decide(self, now_ms: int) -> Shares:
        s = self.settings
        self._account(now_ms)
        mode, site_a, house_a, budget_a, budget_w = self._budget(now_ms)
        remaining_a = list(budget_a)
        remaining = [remaining_a, budget_w]
        order = sorted((c for c in self._conns.values() if c.wants), key=lambda c: self._order_key(c, now_ms))
        shares = {cid: 0.0 for cid in self._conns}
        pilots = []
        for conn in order:
            if conn.spec.kind == "socket":
                need = self._socket_need(conn, now_ms)
                if self._fits(remaining, conn, need) and (conn.share_a > 0 or self._may_switch_on(conn, now_ms)):
                    self._take(remaining, conn, self._socket_load(conn, now_ms))
                    shares[conn.spec.connector_id] = conn.spec.max_current_a
            else:
                need = MIN_PILOT_A if conn.share_a >= MIN_PILOT_A else MIN_PILOT_A + s.hysteresis_a
                if self._fits(remaining, conn, need):
                    self._take(remaining, conn, MIN_PILOT_A)
                    shares[conn.spec.connector_id] = MIN_PILOT_A
                    pilots.append(conn)
        if s.fairness == "equal_share":
            self._level(remaining, pilots, shares)
        else:
            for conn in pilots:
                extra = min(conn.spec.max_current_a - MIN_PILOT_A, self._headroom(remaining, conn))
                self._take(remaining, conn, extra)
                shares[conn.spec.connector_id] += extra
        changed = self._apply(shares, now_ms)
        self.last = Shares(time_ms=now_ms, limits_a={cid: c.share_a for cid, c in self._conns.items()}, mode=mode,
                           site_limit_a=site_a, house_a=house_a, budget_a=tuple(budget_a), changed=changed)
        return self.last

    def limits_at(self, now_ms: int) -> tuple[float | None, float | None]:
        """The site's limit in force (kW, amps per phase; either may be None), before the margin."""
        s = self.settings
        limit_kw, limit_a = s.limit_kw, s.limit_a
        if s.windows and self._minute_of_day is not None:
            minute = self._minute_of_day(now_ms)
            for win in s.windows:
                if win.covers(minute):
                    limit_kw = _lower(limit_kw, win.limit_kw)
                    limit_a = _lower(limit_a, win.limit_a)
        return limit_kw, limit_a

    def _budget(self, now_ms: int):
        s = self.settings
        keep = (100.0 - s.margin_pct) / 100.0
        limit_kw, limit_a = self.limits_at(now_ms)
        phases = s.phases
        # A kW limit is the whole site's (any phase may carry it); amps are per phase.
        if limit_a is not None:
            site_a = tuple(limit_a * keep for _ in range(phases))
        else:
            site_a = tuple(limit_kw * 1000.0 * keep / s.voltage_v for _ in range(phases))
        grid_ok = self._grid_ms is not None and now_ms - self._grid_ms <= s.grid_timeout_ms
        if not grid_ok:
            budget = [min(s.safe_current_a, site_a[p]) for p in range(phases)]
            return "fallback", site_a, tuple(0.0 for _ in range(phases)), budget, None
        chargers_a = [0.0] * phases
        unknown = set()
        for conn in self._conns.values():
            for p in conn.spec.phases:
                chargers_a[p] += conn.draw_a
                switched = conn.switched_ms
                if switched is not None and now_ms - switched < SWITCH_HOLD_MS and (
                        conn.draw_ms is None or conn.draw_ms < switched + SWITCH_SETTLE_MS):
                    unknown.add(p)
        held = self._house_a
        house_a = tuple(held[p] if p in unknown and len(held) == phases else max(0.0, self._grid_a[p] - chargers_a[p])
                        for p in range(phases))
        self._house_a = list(house_a)
        budget = [max(0.0, site_a[p] - house_a[p]) for p in range(phases)]
        budget_w = None
        if limit_kw is not None:
            budget_w = max(0.0, limit_kw * 1000.0 * keep - s.voltage_v * sum(house_a))
        mode = "grid"
        if s.solar:
            mode = "solar"
            surplus_w = s.voltage_v * sum(chargers_a) - self._grid_w
            solar_w = max(surplus_w, s.solar_min_a * s.voltage_v * phases, 0.0)
            budget_w = solar_w if budget_w is None else min(budget_w, solar_w)
        return mode, site_a, house_a, budget, budget_w

    def _order_key(self, conn: _Conn, now_ms: int):
        powered = conn.on_since_ms is not None
        if self.settings.fairness == "first_come":
            return (-conn.spec.priority, 0 if powered else 1, conn.since_ms, conn.spec.connector_id)
        keeps_turn = powered and now_ms - conn.on_since_ms < self.settings.rotation_s * 1000
        return (-conn.spec.priority, 0 if keeps_turn else 1, conn.served_ms, conn.since_ms, conn.spec.connector_id)

    def _expected_a(self, conn: _Conn) -> float:
        if conn.expected_a is None:
            return min(self.settings.socket_start_a, conn.spec.max_current_a)
        return conn.expected_a

    def _socket_load(self, conn: _Conn, now_ms: int) -> float:
        """What a socket outlet that is on takes from the budget: its draw, or its expected one
        while it has just been switched on (the vehicle may still be ramping up)."""
        if conn.on_since_ms is not None and now_ms - conn.on_since_ms >= SOCKET_SETTLE_MS:
            return conn.draw_a
        return max(conn.draw_a, self._expected_a(conn))

    def _socket_need(self, conn: _Conn, now_ms: int) -> float:
        if conn.share_a > 0:
            return self._socket_load(conn, now_ms)
        return self._expected_a(conn) + self.settings.hysteresis_a

    def _may_switch_on(self, conn: _Conn, now_ms: int) -> bool:
        recent = [t for t in conn.switches_ms if now_ms - t < HOUR_MS]
        conn.switches_ms = recent
        return len(recent) + 2 <= self.settings.max_switches_per_hour

    def _headroom(self, remaining, conn: _Conn) -> float:
        phases_a, budget_w = remaining
        room = min(phases_a[p] for p in conn.spec.phases)
        if budget_w is not None:
            room = min(room, budget_w / (self.settings.voltage_v * len(conn.spec.phases)))
        return max(0.0, room)

    def _fits(self, remaining, conn: _Conn, need_a: float) -> bool:
        return self._headroom(remaining, conn) >= need_a

    def _take(self, remaining, conn: _Conn, amps: float) -> None:
        for p in conn.spec.phases:
            remaining[0][p] -= amps
        if remaining[1] is not None:
            remaining[1] -= amps * self.settings.voltage_v * len(conn.spec.phases)

    def _level(self, remaining, pilots: list[_Conn], shares: dict[str, float]) -> None:
        """Equal share: the highest common level every pilot connector can be raised to (water-filling)."""
        if not pilots:
            return

        def fits(level: float) -> bool:
            trial = [list(remaining[0]), remaining[1]]
            for conn in pilots:
                extra = max(0.0, min(conn.spec.max_current_a, level) - MIN_PILOT_A)
                if not self._fits(trial, conn, extra - 1e-9):
                    return False
                self._take(trial, conn, extra)
            return True

        low, high = MIN_PILOT_A, max(c.spec.max_current_a for c in pilots)
        if fits(high):
            low = high
        else:
            for _ in range(30):
                mid = (low + high) / 2
                if fits(mid):
                    low = mid
                else:
                    high = mid
        for conn in pilots:
            extra = max(0.0, min(conn.spec.max_current_a, low) - MIN_PILOT_A)
            self._take(remaining, conn, extra)
            shares[conn.spec.connector_id] += extra

    def _apply(self, shares: dict[str, float], now_ms: int) -> bool:
        """Hysteresis on raises, whole amps for pilots, switch counting; True if anything changed."""
        changed = False
        for cid, conn in self._conns.items():
            new = shares[cid]
            if conn.spec.kind == "pilot":
                new = float(int(new + 1e-6))  # the level is found by bisection
                if 0 < conn.share_a < new < conn.share_a + self.settings.hysteresis_a:
                    new = conn.share_a
            if new == conn.share_a:
                continue
            changed = True
            if (new > 0) != (conn.share_a > 0):
                conn.switched_ms = now_ms
                if conn.spec.kind == "socket":
                    conn.switches_ms.append(now_ms)
                conn.on_since_ms = now_ms if new > 0 else None
            conn.share_a = new
        return changed

    def _account(self, now_ms: int) -> None:
        """Time served: how long each connector has had power, for equal share's turns."""
        last = self._last_ms
        if last is not None and now_ms > last:
            for conn in self._conns.values():
                if conn.on_since_ms is not None:
                    conn.served_ms += now_ms - last
        self._last_ms = now_ms


def _lower(a: float | None, b: float | None) -> float | None:
    if a is None:
        return b
    if b is None:
        return a
    return min(a, b)
