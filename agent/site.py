"""A board with several connectors: one runtime per connector, one facade and one load manager.

Why one ``Runtime`` per connector rather than one runtime with several sessions: each connector
is a charger of its own to the portable core (its session, its safety gate, its relay, pilot and
meter) and to billing (its meter's register, its receipts), and the runtime that drives one is
tested and trusted; what a site adds is shared (the journal, the keys, the tariff, the site's
limit, the protocols). So ``SiteBoards`` builds one ``board.build.Board`` per ``[[connector]]``,
``Site`` runs one runtime per board over the shared journal, answers the ``ChargerService``
facade for all of them (connectors, sessions and listeners merged; an action goes to the
connector it names, or to the first free one), and runs one ``agent.load.runner.LoadRunner``
over every connector with the site's grid meter. The sessions each runtime journals carry its
connector id; the receipts are each connector's own meter's.
"""
from __future__ import annotations

import asyncio
import dataclasses
import logging

from agent.aio import cancel_and_wait
from agent.load.facade import LoadFacade
from agent.load.manager import ConnectorSpec
from agent.service import ChargerService, ServiceError, SessionView

log = logging.getLogger("urja.site")


class SiteBoards:
    """``async with SiteBoards(profile, ...) as boards``: each connector's board, built in order."""

    def __init__(self, profile, **build_kwargs):
        self.profile = profile
        self._kwargs = build_kwargs
        self._contexts: list = []
        self.boards: list = []

    async def __aenter__(self) -> list:
        from board.build import build_board

        try:
            for index, conn in enumerate(self.profile.connectors):
                board_profile = conn.board
                if index == 0 and self.profile.grid_meter is not None:  # the grid meter may share its bus
                    board_profile = dataclasses.replace(board_profile, grid_meter=self.profile.grid_meter)
                ctx = build_board(board_profile, **self._kwargs)
                board = await ctx.__aenter__()
                self._contexts.append(ctx)
                self.boards.append(board)
        except BaseException:
            await self.__aexit__(None, None, None)
            raise
        grid_sim = self.boards[0].grid_sim
        if grid_sim is not None:
            grid_sim._draws = self._draws
        return self.boards

    def _draws(self) -> list[float]:
        """What the simulated connectors draw, on the supply phases they are wired to."""
        total = [0.0] * self.profile.phases
        for conn, board in zip(self.profile.connectors, self.boards, strict=False):
            server = getattr(board, "_sim_server", None)
            if server is None:
                continue
            for index, phase in enumerate(conn.supply_phases):
                current = server.current_a
                total[phase] += current[index] if index < len(current) else 0.0
        return total

    async def __aexit__(self, *exc) -> None:
        while self._contexts:
            ctx = self._contexts.pop()
            try:
                await ctx.__aexit__(*exc)
            except Exception:  # every other board must still open its relay
                log.exception("closing a connector's board failed")


class Site(LoadFacade, ChargerService):
    """The facade over one runtime per connector."""

    def __init__(self, *, runtimes: list, profile, config):
        self.runtimes = runtimes
        self.profile = profile
        self.config = config
        self.clock = runtimes[0].clock
        self.bindings: dict = {}
        self.load = None
        self._load_task: asyncio.Task | None = None
        self._stopping = False
        for rt in runtimes:
            rt.load = None  # the site's one load manager shares the limit between them
            rt.several_connectors = True  # receipts and OCMF name the connector
        if getattr(config, "load", None) is not None:
            from agent.load.runner import LoadRunner

            self.load = LoadRunner(self, config.load, connectors=self._load_specs(),
                                   grid_meter=runtimes[0].board.grid_meter, phases=profile.phases)

    def _load_specs(self) -> list[ConnectorSpec]:
        specs = []
        for conn, rt in zip(self.profile.connectors, self.runtimes, strict=True):
            pilot = bool(getattr(rt.board.pilot, "has_pilot", False))
            specs.append(ConnectorSpec(connector_id=conn.connector_id, kind="pilot" if pilot else "socket",
                                       max_current_a=rt.max_current_a, phases=conn.supply_phases))
        return specs

    # --- life cycle ----------------------------------------------------------------------------

    async def start(self) -> None:
        for rt in self.runtimes:
            await rt.start()
        if self.load is not None:
            self._load_task = asyncio.get_running_loop().create_task(self.load.run(), name="urja-load")
            self._load_task.add_done_callback(self._load_done)
        log.info("site %s: %d connectors on %s", self.config.site_id, len(self.runtimes), self.profile.name)

    def _load_done(self, task: asyncio.Task) -> None:
        if task.cancelled() or self._stopping or task.exception() is None:
            return
        # Nothing holds the site within its limit any more: every connector opens and latches.
        exc = task.exception()
        log.critical("load manager died: %r; opening every relay", exc)
        from agent.core.session import Fault

        for rt in self.runtimes:
            rt.post(lambda t, d=f"load manager died: {exc!r}": Fault("task_died", t, latch=True, detail=d))

    async def end_sessions(self, reason: str = "shutdown") -> None:
        for rt in self.runtimes:
            await rt.end_sessions(reason)

    async def close(self) -> None:
        self._stopping = True
        if self._load_task is not None:
            await cancel_and_wait([self._load_task])
        for rt in self.runtimes:
            await rt.close()

    def binding_context(self):
        ctx = self.runtimes[0].binding_context()
        return dataclasses.replace(ctx, service=self)

    # --- what the load manager reads -----------------------------------------------------------

    def _by_connector(self, connector_id: str | None):
        for rt in self.runtimes:
            if rt.connector_id == connector_id:
                return rt
        raise ServiceError(f"unknown connector {connector_id!r} (this charger has "
                           f"{', '.join(rt.connector_id for rt in self.runtimes)})",
                           code=ServiceError.UNKNOWN_CONNECTOR)

    def connector_ids(self) -> list[str]:
        return [rt.connector_id for rt in self.runtimes]

    def connector_wants_power(self, connector_id: str) -> bool:
        return self._by_connector(connector_id).connector_wants_power(connector_id)

    def connector_current_a(self, connector_id: str):
        return self._by_connector(connector_id).connector_current_a(connector_id)

    async def set_current_limit(self, limit_a: float, *, connector_id: str | None = None) -> None:
        await self._by_connector(connector_id).set_current_limit(limit_a, connector_id=connector_id)

    def load_status(self) -> dict | None:
        return None if self.load is None else self.load.status()

    # --- the facade ----------------------------------------------------------------------------

    @property
    def site(self):
        return self.config

    def connectors(self):
        return [view for rt in self.runtimes for view in rt.connectors()]

    def tariff(self) -> dict:
        return self.runtimes[0].tariff()

    def now_s(self) -> float:
        return self.runtimes[0].now_s()

    def _free(self, connector_id: str | None):
        """The connector an action names, else the first one free for a new session."""
        if connector_id is not None:
            return self._by_connector(connector_id)
        for rt in self.runtimes:
            view = rt.connectors()[0]
            if view.status in ("AVAILABLE", "PREPARING") and view.session_id is None and view.reservation_id is None:
                return rt
        return self.runtimes[0]  # which refuses as occupied, in its own words

    async def start_session(self, *, connector_id: str | None = None, **kwargs) -> SessionView:
        return await self._free(connector_id).start_session(connector_id=connector_id, **kwargs)

    async def present_token(self, uid: str, *, connector_id: str | None = None, **kwargs) -> SessionView:
        return await self._free(connector_id).present_token(uid, connector_id=connector_id, **kwargs)

    def add_token_authority(self, authority) -> None:
        for rt in self.runtimes:
            rt.add_token_authority(authority)

    def remove_token_authority(self, authority) -> None:
        for rt in self.runtimes:
            rt.remove_token_authority(authority)

    def _owner(self, session_id: str):
        for rt in self.runtimes:
            if session_id in rt._views or rt.core.session_id == session_id:
                return rt
        return None

    async def stop_session(self, session_id: str, *, reason: str = "remote") -> SessionView:
        owner = self._owner(session_id)
        if owner is None:
            view = self.session(session_id)
            owner = self._by_connector(view.connector_id) if view is not None else self.runtimes[0]
        return await owner.stop_session(session_id, reason=reason)

    async def reserve(self, *, reservation_id: str, connector_id: str | None, expires_s: float, **kwargs) -> None:
        return await self._free(connector_id).reserve(reservation_id=reservation_id, connector_id=connector_id,
                                                      expires_s=expires_s, **kwargs)

    async def cancel_reservation(self, reservation_id: str) -> None:
        for rt in self.runtimes:
            if rt._reservation is not None and rt._reservation[0] == reservation_id:
                return await rt.cancel_reservation(reservation_id)
        return await self.runtimes[0].cancel_reservation(reservation_id)

    async def unlock(self, connector_id: str) -> None:
        return await self._by_connector(connector_id).unlock(connector_id)

    def session(self, session_id: str) -> SessionView | None:
        owner = self._owner(session_id) or self.runtimes[0]
        return owner.session(session_id)

    def sessions(self, *, since_s: float | None = None, until_s: float | None = None) -> list[SessionView]:
        out: dict[str, SessionView] = {}
        for view in self.runtimes[0].sessions(since_s=since_s, until_s=until_s):  # the journal's, all connectors
            out[view.session_id] = view
        for rt in self.runtimes:
            for sid in list(rt._views):
                view = rt.session(sid)
                if view is not None and (since_s is None or (view.last_updated_s or 0) >= since_s) \
                        and (until_s is None or (view.last_updated_s or 0) < until_s):
                    out[sid] = view
        return sorted(out.values(), key=lambda v: (v.last_updated_s or 0, v.session_id))

    def receipt(self, session_id: str) -> dict | None:
        return self.runtimes[0].receipt(session_id)

    # --- the site's own upkeep (the owner's page) -----------------------------------------------

    def set_tariff(self, tariff: dict) -> None:
        for rt in self.runtimes:
            rt.set_tariff(tariff)

    def latched_fault(self):
        """The first connector's latched fault (each connector latches its own)."""
        return next((f for f in (rt.latched_fault() for rt in self.runtimes) if f is not None), None)

    async def reset_fault(self, *, by: str) -> None:
        for rt in self.runtimes:
            await rt.reset_fault(by=by)

    def health(self):
        from agent.service import HealthView

        out = []
        for rt in self.runtimes:  # each connector's meter, relay and pilot; the one clock once
            for h in rt.health():
                if h.part == "clock" and rt is not self.runtimes[0]:
                    continue
                if h.part != "clock":
                    h.detail = f"connector {rt.connector_id}: {h.detail}"
                out.append(h)
        for table, binding in self.bindings.items():  # the site's bindings (a connector's runtime has none)
            check = getattr(binding, "healthy", None)
            out.append(HealthView(part=table, ok=check() if callable(check) else None, detail=binding.describe()))
        return out

    async def run_selftest(self, *, by: str, connector_id: str | None = None) -> list:
        """Every connector in turn (or the one named); refused before any is touched if one is in use."""
        chosen = [self._by_connector(connector_id)] if connector_id is not None else self.runtimes
        for rt in chosen:
            rt.check_selftest_allowed()
        results = []
        for rt in chosen:
            results += await rt.run_selftest(by=by)
        return results

    def clock_status(self):
        """One clock for the board; the receipts held on every connector."""
        views = [rt.clock_status() for rt in self.runtimes]
        views[0].held_receipts = sum(v.held_receipts for v in views)
        return views[0]

    def add_listener(self, listener) -> None:
        for rt in self.runtimes:
            rt.add_listener(listener)

    def remove_listener(self, listener) -> None:
        for rt in self.runtimes:
            rt.remove_listener(listener)
