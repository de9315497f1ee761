"""The load manager in the runtime: grid meter in, each connector's share out, the log told.

Why a loop of its own: the grid meter is another device (often on the same RS-485 line, whose
bus serialises the two), read every ``meter_poll_ms``; each reading is handed to the pure
``LoadManager`` at once and a changed share is queued to the connector's session as a
``CurrentLimit`` in the same turn, so the reaction to a step in the house's load is one read plus
one dispatch. A grid meter that stops answering leaves the manager without readings, and after
``grid_timeout_ms`` it gives the configured safe current. The loop runs as a runtime task: if it
dies the runtime opens the relay and latches a fault, since nothing would then hold the site
within its limit.
"""
from __future__ import annotations

import dataclasses
import logging
from datetime import datetime, timezone

from agent.load.federation import RemoteBoards
from agent.load.manager import ConnectorSpec, LoadManager, Shares
from agent.load.settings import LoadSettings

log = logging.getLogger("urja.load")

LOG_EVERY_S = 60  # the shares are logged on every change and at least this often (clock time)


def runtime_specs(rt) -> list[ConnectorSpec]:
    """A one-connector runtime's connector as the load manager sees it."""
    board = rt.board
    pilot = bool(getattr(board.pilot, "has_pilot", False))
    return [ConnectorSpec(connector_id=cid, kind="pilot" if pilot else "socket", max_current_a=rt.max_current_a,
                          phases=tuple(range(board.profile.phases))) for cid in rt.connector_ids()]


class LoadRunner:
    """One runtime's connectors under one site limit; ``status()`` for views and the CLI."""

    def __init__(self, rt, settings: LoadSettings, *, connectors: list[ConnectorSpec] | None = None,
                 grid_meter=None, phases: int | None = None):
        """``rt`` is a runtime (one connector) or an ``agent.site.Site`` (several, which names them)."""
        self.rt = rt
        if connectors is None:  # one runtime: its own board is the site's
            phases = rt.board.profile.phases
            grid_meter = rt.board.grid_meter
            connectors = runtime_specs(rt)
        if grid_meter is None:
            from drivers.configfile import ConfigError

            raise ConfigError(rt.config.path, "load", "load management needs the site's draw: the board profile "
                                                      "has no [grid_meter]", allowed="a board with a [grid_meter] "
                                                                                    "table, e.g. sim-grid")
        if settings.phases is None:
            settings = dataclasses.replace(settings, phases=phases)
        self.settings = settings
        self.grid_meter = grid_meter
        self.connectors = connectors
        self.manager = LoadManager(settings=settings, connectors=self.connectors, minute_of_day=self._minute)
        self._wants: dict[str, bool] = {c.connector_id: False for c in self.connectors}
        self._sent: dict[str, float | None] = {c.connector_id: None for c in self.connectors}
        self._logged_s = -LOG_EVERY_S
        self._grid_ok: bool | None = None
        self.remote: RemoteBoards | None = None

    def _minute(self, now_ms: int) -> int:
        from agent.config import utc_offset_s

        wall_s = self.rt.clock.wall_s()
        local = wall_s + utc_offset_s(self.rt.config.place.timezone, wall_s)
        moment = datetime.fromtimestamp(local, timezone.utc)
        return moment.hour * 60 + moment.minute

    def status(self) -> dict | None:
        last = self.manager.last
        if last is None:
            return None
        return {"mode": last.mode, "site_limit_a": list(last.site_limit_a), "house_a": list(last.house_a),
                "budget_a": list(last.budget_a), "shares_a": dict(last.limits_a),
                "limit_kw": self.settings.limit_kw, "limit_a": self.settings.limit_a,
                "followers": [] if self.remote is None else self.remote.boards()}

    async def run(self) -> None:
        rt = self.rt
        period_s = rt.config.meter_poll_ms / 1000
        await self._apply(self.manager.tick(rt.clock.monotonic_ms()))
        while not rt._stopping:
            await self._round()
            await rt.clock.sleep(period_s)

    async def _round(self) -> None:
        from drivers.meter.base import MeterFault

        rt = self.rt
        now_ms = rt.clock.monotonic_ms()
        for cid in self._wants:
            wants = rt.connector_wants_power(cid)
            if wants != self._wants[cid]:
                self._wants[cid] = wants
                self.manager.demand(cid, wants, now_ms)
            seen = rt.connector_current_a(cid)
            if seen is not None:
                current, read_ms = seen
                self.manager.connector_reading(cid, current, min(read_ms, now_ms))
        if self.remote is not None:
            for board_id in self.remote.expire(now_ms):
                log.warning("board %s stopped reporting: its connectors leave the budget", board_id)
        grid = self.grid_meter
        shares = None
        if grid is not None:
            try:
                reading = await grid.read()
            except MeterFault as exc:
                if self._grid_ok is not False:
                    log.warning("grid meter: %s: %s", exc.code, exc)
                self._grid_ok = False
            else:
                if self._grid_ok is False:
                    log.info("grid meter answers again")
                self._grid_ok = True
                shares = self.manager.grid_reading(reading.current_a, reading.power_w, rt.clock.monotonic_ms())
        if shares is None:
            shares = self.manager.tick(rt.clock.monotonic_ms())
        await self._apply(shares)

    # --- followers on other boards (``agent.load.federation``, over ``protocols/loadshare``) ----

    def remote_state(self, board_id: str, connectors: list[dict], timeout_ms: int) -> None:
        if self.remote is None:
            self.remote = RemoteBoards(self.manager, timeout_ms=timeout_ms)
        self.remote.state(board_id, connectors, self.rt.clock.monotonic_ms())

    def remote_shares(self, board_id: str) -> dict[str, float]:
        return {} if self.remote is None else self.remote.shares(board_id)

    async def _apply(self, shares: Shares) -> None:
        rt = self.rt
        changed = False
        for cid in self._sent:  # this board's connectors; a follower's are sent by the binding
            share = shares.limits_a[cid]
            if share != self._sent[cid]:
                self._sent[cid] = share
                changed = True
                await rt.set_current_limit(share, connector_id=cid)
        now_s = rt.clock.monotonic_s()
        if changed or now_s - self._logged_s >= LOG_EVERY_S:
            self._logged_s = now_s
            log.info("%s", shares.line())
