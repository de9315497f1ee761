"""The runtime: the only place that knows every layer, and the owner of every task.

It turns driver observations into core events and core commands into driver calls:

    meter poll ---------\\
    pilot listener -----+--> event list --> dispatcher --> SafetySupervisor.handle / tick
    relay feedback -----+                                   |
    timers, API calls --/                                   v
                                 commands: OpenRelay first, journal records, offered current,
                                 status, timers, CloseRelay last (after the durable start)

Why a single dispatcher: the portable core is a pure state machine that must see events in
time order, one at a time; all sources only append to a list and wake the dispatcher (an
``asyncio.Event``, no ``Queue``, so the same shape runs under MicroPython's asyncio).

Durability follows ``agent.journal``'s contract: the session's start reading is committed
before the relay closes, the stop reading is taken after it opened, and receipts are stored
exactly once. On boot the relay is forced open before anything else, then a latched fault
recorded before the restart is latched again, then unfinished sessions are reconciled from the
journal with the meter's own register.

It also implements ``agent.service.ChargerService`` for the protocols. The class is one
object split by concern into sibling files (mixins sharing its state): ``agent.views``
(reads and notifications), ``agent.actions`` (start, stop, reserve, reset), ``agent.billing``
(prices and receipts), ``agent.session_end`` (the stop reading, the receipt, the end at
shutdown) and ``agent.latch`` (faults that outlive restarts). This file keeps
what must stay together: the life cycle, the dispatcher and the commands it carries out.
``agent.bootstrap.open_runtime`` builds it; ``agent.identity`` loads the keys it signs with.
"""
from __future__ import annotations

import asyncio
import json
import logging
import uuid
from pathlib import Path
from typing import Any, Callable

from agent.actions import RuntimeActions
from agent.aio import cancel_and_wait
from agent.billing import RuntimeBilling
from agent.bindings import BindingContext
from agent.clock import Clock
from agent.clock_hold import RuntimeClockHold
from agent.config import SiteConfig, utc_offset_s
from agent.core.auth import Authorizer
from agent.core.errors import AgentError
from agent.core.safety import SafetySettings, SafetySupervisor
from agent.core.session import (
    CancelTimer,
    CloseRelay,
    Fault,
    JournalRecord,
    OpenRelay,
    PilotChanged,
    PublishStatus,
    RelayFeedback,
    ScheduleTimer,
    Session,
    SessionSettings,
    SetOfferedCurrent,
    TimerFired,
)
from agent.core.tariff import LivePricer, Tariff
from agent.identity import Identity
from agent.journal import FaultStore, Journal
from agent.latch import RuntimeLatch
from agent.load.facade import LoadFacade
from agent.metering import RuntimeMetering
from agent.service import ChargerService, ReceiptSigned, SessionView
from agent.session_end import RuntimeSessionEnd
from agent.session_meta import CONNECTOR_ID, SessionMeta
from agent.tariff_file import tariff_digest
from agent.timesync import ClockTrust, RuntimeClockTrust
from agent.upkeep import RuntimeUpkeep
from agent.views import RuntimeViews

log = logging.getLogger("urja.runtime")

TICK_S = 0.05  # safety supervision period (real time): well inside IEC 61851's 100 ms


class RuntimeError_(AgentError):
    code = "runtime-error"


class Runtime(RuntimeViews, RuntimeActions, RuntimeBilling, RuntimeSessionEnd, RuntimeLatch, RuntimeUpkeep,
              RuntimeClockTrust, RuntimeClockHold, RuntimeMetering, LoadFacade,
              ChargerService):
    """One charger: a board, the core, the journal, the tariff and the identity."""

    # --- lifecycle -----------------------------------------------------------------------------

    def __init__(self, *, config: SiteConfig, board, journal: Journal, tariff: dict, identity: Identity,
                 clock: Clock, new_id: Callable[[], str] | None = None,
                 session_settings: SessionSettings | None = None,
                 safety_settings: SafetySettings | None = None, faults: FaultStore | None = None,
                 revocations: dict | None = None, connector_id: str = CONNECTOR_ID, manage_load: bool = True,
                 clock_trust: ClockTrust | None = None):
        self.config = config
        self.connector_id = connector_id  # one runtime per connector; a board with one has "1"
        # A simulated board keeps simulated time; a real one sells only on a synchronised clock.
        self.clock_trust = clock_trust or ClockTrust(required=board.profile.meter.backend != "sim")
        self.clock_trusted, self.clock_reason = False, "not checked yet"
        self.revocations = revocations  # the agency's checked list, for the bindings
        self.board = board
        self.journal = journal
        # Where latched faults are kept across restarts; None keeps them in memory only.
        self.faults = faults
        self._latch_record_id: int | None = None
        self.identity = identity
        self.clock = clock
        self._new_id = new_id or (lambda: uuid.uuid4().hex[:20])
        self._tariff_dict = tariff
        self._tariff = Tariff(tariff)
        self._tariff_digest = tariff_digest(tariff)
        pilot_mode = bool(getattr(board.pilot, "has_pilot", False))
        max_a = board.profile.max_current_a
        if config.max_current_a is not None:
            max_a = min(max_a, config.max_current_a)
        self.max_current_a = max_a
        settings = session_settings or SessionSettings(mode="pilot" if pilot_mode else "socket",
                                                       max_current_a=max_a,
                                                       plug_timeout_ms=getattr(config, "plug_timeout_s", 180) * 1000,
                                                       **getattr(config, "socket_settings", {}))
        self.core = Session(settings=settings, cost=self._cost_paise, new_session_id=self._new_id)
        self.safety = SafetySupervisor(session=self.core, settings=safety_settings or SafetySettings(
            meter_timeout_ms=config.meter_timeout_ms, **getattr(config, "safety_settings", {})))
        limits = {"energy_limit_wh": config.default_limit_wh} if config.default_limit_wh else None
        allow = {tok: None for tok in config.allow_tokens}
        self.authorizer = Authorizer(new_id=self._new_id, allow_list=allow,
                                     free_vend=config.auth_mode == "free_vend", free_vend_limits=limits)
        self._events: list[Callable[[int], Any]] = []
        self._waiters: list[tuple[int, asyncio.Future]] = []
        self._posted = 0
        self._handled = 0
        self._wake = asyncio.Event()
        self._tasks: dict[str, asyncio.Task] = {}
        self._timers: dict[str, asyncio.Task] = {}
        self._listeners: list[Callable[[str, Any], None]] = []
        self._meta: dict[str, SessionMeta] = {}
        # (auth_id, meta) of the grant being dispatched: the core names its session only when it
        # takes the grant, and a refused grant's entry is simply replaced by the next one.
        self._granting: tuple[str, SessionMeta] | None = None
        self._views: dict[str, SessionView] = {}
        self._last_reading = None
        self._last_event_ms = 0
        self._feedback = None
        self._reservation = None  # (reservation_id, expires_s, token)
        self._connector_updated_s = clock.wall_s()
        self._connector_status = None
        self._relay_lock = asyncio.Lock()
        self._progress_s = 0.0
        self.bindings: dict[str, Any] = {}  # table name -> running binding (``agent.bootstrap``)
        self._token_authorities: list = []
        self._reconcile_pending = False  # unfinished sessions wait for the meter's first answer
        self._bill_until_wh: int | None = None  # the session's last trustworthy register (after a jump)
        self._stopping = False
        self._shutting_down = False  # set when the running session is closed for a shutdown: no new one starts
        self.relay_commands = 0
        self.load = None  # the site's load manager (``[load]``), built once the board is known
        if manage_load and getattr(config, "load", None) is not None:  # a site's connectors share one
            from agent.load.runner import LoadRunner

            self.load = LoadRunner(self, config.load)
        self.on_relay_command: Callable[[Any, int], None] | None = None
        # Watchdog pings ride on the dispatcher (``agent.notify``): a stuck loop stops them.
        self.heartbeat: Callable[[], None] | None = None

    async def start(self) -> None:
        """Relay open first; then reconcile the journal; then the tasks."""
        for cmd in self.safety.boot(self.clock.monotonic_ms()):
            await self._execute(cmd)
        await self.board.relay.open()
        await self._restore_latch()
        self.journal.space_listeners.append(self._journal_space_low)
        reading = await self._read_meter_for_boot()
        if reading is not None:
            self._reconcile_with(reading, notify=False)
        elif any(r.connector_id == int(self.connector_id) for r in self.journal.open_sessions()):
            log.error("meter unreadable at boot: unfinished sessions stay open until it answers")
            self._reconcile_pending = True
        pilot = self.board.pilot
        if getattr(pilot, "has_pilot", False):
            pilot.add_listener(self._on_pilot)
            if pilot.state and pilot.state != "A":
                self._on_pilot_state(pilot.state, pilot.diode_fault)
        self._spawn("urja-dispatch", self._dispatch_loop())
        self._spawn("urja-meter-poll", self._meter_loop())
        self._spawn("urja-safety-tick", self._tick_loop())
        self._spawn("urja-housekeeping", self._housekeeping_loop())
        self._check_clock()
        self._spawn("urja-clock-trust", self._clock_loop())
        if self.faults is not None:
            self._spawn("urja-fault-reset", self._fault_reset_loop())
        if self.load is not None:
            self._spawn("urja-load", self.load.run())
        self._refresh_connector()
        log.info("started: site %s, board %s, %s mode, max %s A, tariff %s", self.config.site_id,
                 self.board.profile.name, self.core.settings.mode, self.max_current_a,
                 self._tariff_dict.get("id"))

    def _reconcile_with(self, reading, *, notify: bool) -> None:
        """Close what the last run left open at the meter's register now, with receipts.

        At boot nobody listens yet (the bindings start after); when the meter only answers
        later, the bindings are running and are told of each receipt as of a live end.
        """
        closed = self.journal.reconcile(reading.energy_import_wh, self.clock.wall_s(),
                                        make_receipt=self._receipt_for_record, connector_id=int(self.connector_id),
                                        meter_serial=reading.serial or self._meter_serial())
        for rec in closed:
            log.warning("recovered session %s after restart: %s Wh billed (reason %s)",
                        rec.session_id, rec.energy_wh, rec.stop_reason)
            receipt = self.journal.receipt(rec.session_id) if notify else None
            if receipt is not None:
                self._notify("receipt", ReceiptSigned(rec.session_id, json.loads(receipt)))

    async def close(self) -> None:
        """Open the relay, stop every task, close the journal; safe to call twice."""
        if self._stopping:
            return
        self._stopping = True
        try:
            async with self._relay_lock:
                await self.board.relay.open()
        finally:
            await cancel_and_wait(list(self._tasks.values()) + list(self._timers.values()))
            self._tasks.clear()
            self._timers.clear()
            for _, fut in self._waiters:
                if not fut.done():
                    fut.cancel()
            pilot = self.board.pilot
            if getattr(pilot, "has_pilot", False):
                pilot.remove_listener(self._on_pilot)
            log.info("stopped: relay open")

    async def _housekeeping_loop(self) -> None:
        """Keep the journal from growing for ever on the board's flash: delivered messages and
        the checkpoints of billed sessions go after ``JOURNAL_KEEP_S`` (sessions and receipts,
        the billing record, stay). The week kept outlasts every catch-up that relies on a
        delivered message being remembered (OCPI re-queues CDRs of the last two days)."""
        while not self._stopping:
            try:
                removed = self.journal.prune(before_s=self.clock.wall_s() - JOURNAL_KEEP_S)
                if any(removed.values()):
                    log.info("journal housekeeping: removed %s", removed)
            except AgentError as exc:  # the charger charges on; the next round tries again
                log.error("journal housekeeping failed: %s", exc)
            await self.clock.sleep(HOUSEKEEPING_EVERY_S)

    def _spawn(self, name: str, coro) -> None:
        task = asyncio.get_running_loop().create_task(coro, name=name)
        self._tasks[name] = task
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task) -> None:
        if task.cancelled() or self._stopping:
            return
        exc = task.exception()
        if exc is not None:
            # A dead loop means nobody supervises the relay: open it now (the dispatcher may be
            # the one that died) and latch a fault, so the gate does not close it again without
            # its ticks, polls or events.
            name = task.get_name()
            log.critical("task %s died: %r; opening the relay", name, exc)
            self.post(lambda t, d=f"task {name} died: {exc!r}": Fault("task_died", t, latch=True, detail=d))
            opener = "urja-emergency-open-" + name
            self._tasks[opener] = asyncio.get_running_loop().create_task(self.board.relay.open(), name=opener)

    async def _emergency_open(self) -> None:
        """Open the relay outside the normal command path; a failure here is logged, not raised,
        because the caller is already handling a failure and the hardware fail-safe remains."""
        try:
            async with self._relay_lock:
                await self.board.relay.open()
        except Exception:
            log.exception("emergency relay open failed; relying on the hardware fail-safe")

    def binding_context(self) -> BindingContext:
        """What a binding is handed (``agent.bindings``): the facade and the shared services."""
        return BindingContext(service=self, site=self.config, identity=self.identity, outbox=self.journal,
                              orders=self.journal, now_s=self.now_s, data_dir=Path(self.config.journal_path).parent,
                              revocations=self.revocations)

    # --- events in -----------------------------------------------------------------------------

    def post(self, make_event: Callable[[int], Any]) -> int:
        """Queue an event; ``make_event(time_ms)`` builds it when its turn comes (time stays ordered)."""
        self._events.append(make_event)
        self._posted += 1
        self._wake.set()
        return self._posted

    async def post_and_wait(self, make_event: Callable[[int], Any]):
        """Queue an event and wait until it (and everything before it) has been carried out."""
        seq = self.post(make_event)
        fut = asyncio.get_running_loop().create_future()
        self._waiters.append((seq, fut))
        self._wake.set()
        return await fut

    def _now_ms(self) -> int:
        now = self.clock.monotonic_ms()
        if now < self._last_event_ms:
            now = self._last_event_ms
        self._last_event_ms = now
        return now

    async def _dispatch_loop(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            if self.heartbeat is not None:
                self.heartbeat()
            while self._events:
                make = self._events.pop(0)
                self._handled += 1
                seq = self._handled
                error = None
                try:
                    now = self._now_ms()
                    event = make(now)
                    if event is _TICK:
                        commands = self.safety.tick(now)
                    else:
                        commands = self.safety.handle(event)
                except AgentError as exc:
                    error = exc
                    commands = []
                    log.warning("event refused: %s", exc)
                try:
                    await self._execute_all(commands)
                except Exception as exc:  # a relay or journal failure: open, latch, tell the caller
                    error = error or exc
                    log.critical("carrying out %s failed: %r; opening the relay", commands, exc)
                    await self._emergency_open()
                    detail = f"carrying out {', '.join(c.kind for c in commands)} failed: {exc!r}"
                    self.post(lambda t, d=detail: Fault("command_failed", t, latch=True, detail=d))
                self._resolve_waiters(seq, error)
            self._resolve_waiters(self._handled, None)

    def _resolve_waiters(self, seq: int, error) -> None:
        keep = []
        for wseq, fut in self._waiters:
            if wseq <= seq:
                if not fut.done():
                    if error is not None and wseq == seq:
                        fut.set_exception(error)
                    else:
                        fut.set_result(None)
            else:
                keep.append((wseq, fut))
        self._waiters = keep

    async def _tick_loop(self) -> None:
        while True:
            await asyncio.sleep(TICK_S)
            feedback = self.board.relay.feedback
            if feedback is not None and feedback != self._feedback:
                self._post_contact()
            self.post(_tick)  # through the dispatcher, so ticks and events never interleave
            self._expire_reservation()

    def _post_contact(self) -> None:
        """Queue a look at the mirror contact, taken when the gate handles it, not now.

        The weld check measures the time since the relay opened on the runtime's clock, which
        runs many times faster than real time in a simulation. A contact sampled on the 50 ms
        real-time tick was up to ``50 ms x speed`` old there (3 s at 60x, past the 2 s weld
        settle time), so a contactor that had opened was latched as welded. Read at handling
        time, the gate never judges a reading or a tick against an older contact.
        """
        if self.board.relay.feedback is not None:
            self.post(self._contact_event)

    def _contact_event(self, time_ms: int) -> RelayFeedback:
        feedback = self.board.relay.feedback
        if feedback is None:  # a relay cannot lose its mirror contact; keep the gate's view
            feedback = bool(self._feedback)
        self._feedback = feedback
        return RelayFeedback(feedback, time_ms)

    def _on_pilot(self, event) -> None:
        self._on_pilot_state(event.state, event.diode_fault)

    def _on_pilot_state(self, state, diode_fault) -> None:
        if diode_fault:
            state = "diode_fault"
        if state is None:
            return
        self.post(lambda t, s=state: PilotChanged(s, t))
        if state in ("B", "C", "D") and not self.core.busy and self.authorizer.free_vend and not self._shutting_down \
                and self._reservation is None and not getattr(self, "_selftest_running", False) \
                and self._closed_reason() is None:
            auth = self.authorizer.from_free_vend()
            self.post(lambda t, a=auth: self._grant(a, SessionMeta(source="free_vend", reference="free-vend"), t))
        self._refresh_connector()

    # --- commands out --------------------------------------------------------------------------

    async def _execute_all(self, commands) -> None:
        if not commands:
            return
        opens = [c for c in commands if isinstance(c, OpenRelay)]
        closes = [c for c in commands if isinstance(c, CloseRelay)]
        records = [c for c in commands if isinstance(c, JournalRecord)]
        rest = [c for c in commands if not isinstance(c, (OpenRelay, CloseRelay, JournalRecord))]
        for cmd in opens + records + rest + closes:
            await self._execute(cmd)

    async def _execute(self, cmd) -> None:
        if isinstance(cmd, (OpenRelay, CloseRelay)):
            self.relay_commands += 1
            if self.on_relay_command is not None:
                self.on_relay_command(cmd, self.clock.monotonic_ms())
            async with self._relay_lock:
                if self._stopping and isinstance(cmd, CloseRelay):
                    return
                if isinstance(cmd, OpenRelay):
                    await self.board.relay.open()
                else:
                    await self.board.relay.close()
            self._post_contact()
            log.info("relay %s (%s)", "open" if isinstance(cmd, OpenRelay) else "closed", cmd.reason)
            self._refresh_connector()
        elif isinstance(cmd, SetOfferedCurrent):
            pilot = self.board.pilot
            if getattr(pilot, "has_pilot", False):
                await pilot.set_offered_current(min(cmd.current_a, self.max_current_a) if cmd.current_a else 0)
        elif isinstance(cmd, ScheduleTimer):
            self._schedule(cmd.timer_id, cmd.at_ms)
        elif isinstance(cmd, CancelTimer):
            task = self._timers.pop(cmd.timer_id, None)
            if task is not None:
                task.cancel()
        elif isinstance(cmd, JournalRecord):
            if cmd.record == "session_end":
                await self._session_ended(cmd.data)
            else:
                self._journal(cmd.record, cmd.data)
        elif isinstance(cmd, PublishStatus):
            self._publish(cmd.status)

    def _schedule(self, timer_id: str, at_ms: int) -> None:
        old = self._timers.pop(timer_id, None)
        if old is not None:
            old.cancel()

        async def fire():
            await self.clock.sleep(max(0, at_ms - self.clock.monotonic_ms()) / 1000)
            self._timers.pop(timer_id, None)
            self.post(lambda t: TimerFired(timer_id, t))

        self._timers[timer_id] = asyncio.get_running_loop().create_task(fire(), name=f"urja-timer-{timer_id}")

    def _journal(self, record: str, data: dict) -> None:
        if record == "authorized":
            pending, self._granting = self._granting, None
            if pending is not None and pending[0] == data.get("auth_id"):
                self._meta[data["session_id"]] = pending[1]
        if record == "session_start":
            self._session_started(data)
        if record == "fault" and data.get("latched"):
            self._record_latch(data["code"], data.get("detail") or data["code"])
        elif record == "fault_reset":
            self._record_clearing(data["code"])
        if record in ("fault", "fault_reset", "session_stop", "authorized"):
            log.info("%s %s", record, {k: v for k, v in data.items() if k != "limits"})

    def _session_started(self, data: dict) -> None:
        sid = data["session_id"]
        meta = self._meta.setdefault(sid, SessionMeta(source="unknown", reference=sid))
        # The freshest reading, not the one the core last saw: the relay is still open here
        # (the start is written before it closes), so the register cannot have moved since.
        reading = self._last_reading
        start_wh = reading.energy_import_wh if reading is not None else data.get("meter_wh") or 0
        now_s = self.clock.wall_s()
        meta.start_s = now_s
        meta.start_wh = start_wh
        meta.pricer = LivePricer(self._tariff, utc_offset_s=utc_offset_s(self.config.place.timezone, now_s))
        meta.tariff_digest = self._tariff_digest  # the price it was sold at, whatever changes later
        meta.pricer.reading(int(now_s), start_wh, charging=False)
        auth = self.core.authorization
        self.journal.start_session(
            sid, connector_id=int(self.connector_id),
            auth={"source": meta.source, "reference": meta.reference, "token": meta.token,
                  "auth_id": auth.auth_id if auth else None, "paid_paise": meta.paid_paise,
                  "acceptance_digest": meta.acceptance_digest,
                  "limits": auth.limits() if auth else {}},
            start_wh=start_wh, start_time_s=now_s, meter_serial=self._meter_serial(),
            tariff_id=self._tariff_dict.get("id"))
        self._hold_start(sid)
        log.info("session %s started at %d Wh (%s %s)", sid, start_wh, meta.source, meta.reference)
        self._update_view(sid)

    def _publish(self, status: dict) -> None:
        sid = status.get("session_id")
        if sid:
            self._update_view(sid)
        # An authorization that ended before the car ever drew power leaves no journaled
        # session and no receipt: its view is closed as INVALID (nothing to bill).
        for other, view in list(self._views.items()):
            meta = self._meta.get(other)
            if other != self.core.session_id and view.status == "ACTIVE" and (meta is None or meta.start_s is None):
                view.status = "INVALID"
                view.state = "finished"
                view.stop_reason = self.core.stop_reason or "stopped_before_charging"
                view.stop_s = view.last_updated_s = self.clock.wall_s()
                self._notify("session", view)
        self._refresh_connector()



JOURNAL_KEEP_S = 7 * 86400  # delivered messages and billed sessions' checkpoints are kept this long
HOUSEKEEPING_EVERY_S = 6 * 3600

_TICK = object()


def _tick(time_ms: int):
    return _TICK
