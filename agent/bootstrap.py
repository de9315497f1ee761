"""Bring a charger up and down in the one safe order: ``async with open_runtime(config) as rt``.

Up: every file is read and checked first (the configuration with every binding's table, the
tariff, the keys and certificate, the revocation list); then the journal is opened, which takes
its exclusive lock, so a second agent is refused before it opens a serial port or says a word
on the meter's bus; then the board (relay acquired and forced open first), the runtime (boot
open, latched faults, reconcile), and last the bindings, each from the registry
(``agent.bindings``) with a small context. Down, in reverse: the running session closed with its
receipt (while the bindings can still tell the buyer), bindings closed, relay opened,
tasks stopped, board released, journal closed, whatever failed on the way.
"""
from __future__ import annotations

import logging
from pathlib import Path
from typing import Callable

from agent import bindings as registry
from agent.clock import Clock
from agent.config import SiteConfig
from agent.core.errors import AgentError
from agent.core.safety import SafetySettings
from agent.core.session import SessionSettings
from agent.identity import Identity, load_identity, load_revocations
from agent.journal import FaultStore, Journal, fault_store_path
from agent.journal.errors import JournalHeld, StorageError
from agent.runtime import Runtime
from drivers.configfile import ConfigError, check_writable_path, pointed_by
from protocols.errors import ProtocolError

log = logging.getLogger("urja.runtime")


def _check_room(folder: Path) -> None:
    """A charger that cannot record a session must not start one: refuse before anything opens."""
    from agent.journal import slot

    free = slot.free_bytes(folder)
    if free < slot.MIN_FREE_BYTES:
        raise StorageError(f"{folder} has {free} bytes free, the journal needs at least {slot.MIN_FREE_BYTES}: "
                           f"free space on that file system and start again", path=str(folder))


class open_runtime:
    """``async with open_runtime(config) as rt``: board up, relay open, journal reconciled, bindings running.

    On the way out (normal exit, exception or cancellation) the bindings stop, the relay is
    opened, the tasks stopped, the board released and the journal closed. ``rt.bindings``
    maps each started binding's table name to the binding.
    """

    def __init__(self, config: SiteConfig, *, clock: Clock | None = None, board_profile=None,
                 new_id: Callable[[], str] | None = None, identity: Identity | None = None,
                 session_settings: SessionSettings | None = None,
                 safety_settings: SafetySettings | None = None, bindings: bool = True, clock_trust=None):
        self.config = config
        self.bindings = bindings
        self._started: list = []
        self.clock = clock or Clock()
        self.board_profile = board_profile or config.board_profile
        self.new_id = new_id
        self.identity = identity
        self.session_settings = session_settings
        self.safety_settings = safety_settings
        self.clock_trust = clock_trust
        self._board_ctx = None
        self._journal: Journal | None = None
        self._faults: FaultStore | None = None
        self.runtime: Runtime | None = None

    async def __aenter__(self) -> Runtime:
        from agent.tariff_file import load_tariff_file
        from board.build import build_board

        cfg = self.config
        if cfg.tariff_file is None:
            raise ConfigError(cfg.path, "tariff.file", "missing: the charger needs the site owner's tariff")
        with pointed_by(cfg.path, "tariff.file"):
            tariff = load_tariff_file(cfg.tariff_file)
        identity = self.identity or load_identity(cfg)
        revocations = load_revocations(cfg, identity)
        profile = self._profile()
        journal_path = Path(cfg.journal_path)
        # Another agent holding the journal is no fault of the configuration: said as itself.
        with pointed_by(cfg.path, "journal.path", also=(StorageError,), keep=(JournalHeld,)):
            check_writable_path(journal_path)
            journal_path.parent.mkdir(parents=True, exist_ok=True)
            _check_room(journal_path.parent)
            self._journal = Journal.open(journal_path, clock=self.clock.wall_s)
            self._journal.keep_reserve()  # room for a session's end when the disk fills
        try:
            with pointed_by(cfg.path, "journal.path", also=(StorageError,)):
                self._faults = FaultStore.open(fault_store_path(journal_path))
            if profile.connectors:  # several connectors: a board and a runtime each (``agent.site``)
                from agent.site import SiteBoards

                self._board_ctx = SiteBoards(profile, clock=self.clock.monotonic_s, sleep=self.clock.sleep)
            else:
                self._board_ctx = build_board(profile, clock=self.clock.monotonic_s, sleep=self.clock.sleep)
            board = await self._board_ctx.__aenter__()
        except BaseException:
            self._close_stores()
            raise
        try:
            def make(board, connector_id: str = "1") -> Runtime:
                return Runtime(config=cfg, board=board, journal=self._journal, tariff=tariff, identity=identity,
                               clock=self.clock, new_id=self.new_id, session_settings=self.session_settings,
                               safety_settings=self.safety_settings, faults=self._faults,
                               revocations=revocations, connector_id=connector_id,
                               clock_trust=self.clock_trust,
                               manage_load=not profile.connectors)

            if profile.connectors:
                from agent.site import Site

                self.runtime = Site(runtimes=[make(b, c.connector_id) for b, c in zip(board, profile.connectors,
                                                                                       strict=True)],
                                    profile=profile, config=cfg)
            else:
                self.runtime = make(board)
            await self.runtime.start()
            if self.bindings:
                await self._start_bindings(self.runtime)
        except BaseException:
            await self._shut_down(None, None, None)
            raise
        return self.runtime

    def _profile(self):
        """The board profile, read before anything is opened; a bad one names the key that chose it."""
        from board.profile import BoardProfile, load_profile

        if isinstance(self.board_profile, BoardProfile):
            return self.board_profile
        if self.board_profile == self.config.board_profile:
            with pointed_by(self.config.path, "board.profile"):
                return load_profile(self.board_profile)
        return load_profile(self.board_profile)

    async def _start_bindings(self, rt: Runtime) -> None:
        """The bindings the configuration has tables for, in registry order.

        They start after the runtime (the charger is safe and reconciled before anyone can
        reach it) and stop before it; a broker or partner that is down does not stop the
        charger, each binding reconnects by itself.
        """
        ctx = rt.binding_context()
        for table, settings in (getattr(self.config, "bindings", None) or {}).items():
            # A port in use, an unknown host or a store that cannot be opened is the table's
            # fault, said in one line with its key, not a traceback from deep in a server.
            with pointed_by(self.config.path, table, also=(AgentError, ProtocolError)):
                binding = registry.spec(table).build(ctx, settings)
            if binding is None:  # present but switched off
                continue
            self._started.append(binding)
            with pointed_by(self.config.path, f"{table}.listen", also=(AgentError, ProtocolError)):
                await binding.start()
            rt.bindings[table] = binding
            log.info("[%s] %s", table, binding.describe())

    async def _stop_bindings(self) -> None:
        while self._started:
            binding = self._started.pop()
            try:
                await binding.close()
            except Exception:  # the relay must still open below
                log.exception("closing %r failed", binding)

    def _close_stores(self) -> None:
        try:
            if self._faults is not None:
                self._faults.close()
        finally:
            if self._journal is not None:
                self._journal.close()

    async def _shut_down(self, *exc) -> None:
        try:
            if self.runtime is not None:
                # While the bindings still run, so the buyer is told of the receipt.
                try:
                    await self.runtime.end_sessions("shutdown")
                except Exception:  # the bindings must still stop and the relay open below
                    log.exception("closing the running session at shutdown failed")
            await self._stop_bindings()
            if self.runtime is not None:
                await self.runtime.close()
        finally:
            try:
                if self._board_ctx is not None:
                    await self._board_ctx.__aexit__(*exc)
            finally:
                self._close_stores()

    async def __aexit__(self, *exc) -> None:
        await self._shut_down(*exc)


def _profile(profile):
    from board.profile import BoardProfile, load_profile

    return profile if isinstance(profile, BoardProfile) else load_profile(profile)
