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

A latched fault outlives restarts and power cuts (``agent.journal.FaultStore``) and is cleared
only by a local reset: ``urja fault reset`` at the charger writes the clearing to the fault
file, and the running agent, checking that file about once a second while a fault is latched,
then asks the gate to clear (which it refuses while the condition is still there).

It also implements ``agent.service.ChargerService`` for the protocols.
"""
from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from pathlib import Path
from typing import Any, Callable

from agent.core.auth import Authorizer
from agent.clock import Clock
from agent.config import SiteConfig, utc_offset_s
from agent.core.errors import AgentError
from agent.journal import FaultStore, Journal, fault_store_path
from agent.core.safety import FaultPersists, SafetySettings, SafetySupervisor
from agent.service import ChargerService, ConnectorView, ServiceError, SessionView
from agent.core.session import (AuthGranted, CancelTimer, CloseRelay, Fault, JournalRecord, LocalReset,
                           MeterReading, OpenRelay, PilotChanged, PublishStatus, RelayFeedback,
                           ScheduleTimer, Session, SessionSettings, SetOfferedCurrent, StopRequested,
                           TimerFired)
from agent.aio import cancel_and_wait
from agent.tariff_file import tariff_digest
from agent.core.tariff import (PARKING_TIME, CostBreakdown, LivePricer, Period, SessionPricer, Tariff, capped,
                          price_periods)
from drivers.configfile import ConfigError

log = logging.getLogger("urja.runtime")
meter_log = logging.getLogger("urja.meter")

TICK_S = 0.05  # safety supervision period (real time): well inside IEC 61851's 100 ms
CONNECTOR_ID = "1"
MAX_FINISHED_VIEWS = 100  # finished sessions kept in memory (older ones come from the journal)
PROGRESS_S = 15  # how often a charging session's progress is announced to listeners (clock time)
FAULT_CHECK_S = 1.0  # how often (real time) a latched fault's record is checked for a local reset


class RuntimeError_(AgentError):
    code = "runtime-error"


class Identity:
    """The charger's keys and its agency certificate, loaded once at start.

    Everything the charger signs (messages, offers, receipts, OCMF) is signed with the key the
    certificate vouches for, not the keyring's newest: after ``urja keygen --rotate`` the new
    key is useless to a buyer until the agency has certified it, and a receipt signed with it
    would not verify (the receipt builder refuses the mismatch outright). Installing the new
    certificate (and restarting) moves everything to the new key.
    """

    def __init__(self, *, keyring, certificate: dict, agency_public_key: bytes | None):
        self.keyring = keyring
        self.certificate = certificate
        self.agency_public_key = agency_public_key
        key_id = certificate.get("unique_key_id") if isinstance(certificate, dict) else None
        self._entry = next((e for e in keyring.entries if e.key_id == key_id), None)

    @property
    def certified_key_id(self) -> str | None:
        return self._entry.key_id if self._entry is not None else None

    def entry(self, now_s: float):
        """The certified key generation (signing, encryption and metering keys)."""
        if self._entry is None:
            raise AgentError(f"the certificate names key {self.certificate.get('unique_key_id')!r}, "
                             f"which is not in {self.keyring.key_dir}")
        return self._entry

    def signer(self, now_s: float):
        from protocols.signing.keys import Ed25519Signer

        entry = self.entry(now_s)
        return Ed25519Signer(subscriber_id=self.keyring.subscriber_id, key_id=entry.key_id,
                             private_key=entry.signing_key)

    def __repr__(self) -> str:
        return f"Identity({self.keyring.subscriber_id!r})"


def load_identity(config: SiteConfig) -> Identity:
    """Keys from ``[identity] key_dir``; the certificate from ``certificate`` or the key dir."""
    from protocols.signing.agency import read_agency_public_key
    from protocols.signing.errors import ProtocolError
    from protocols.signing.keys import load_keyring

    key_dir = Path(config.key_dir)
    if not key_dir.is_dir() or not any(key_dir.iterdir()):
        raise ConfigError(config.path, "identity.key_dir",
                          f"no keys in {key_dir}; create them with: urja keygen --key-dir {key_dir} "
                          f"--subscriber-id {config.site_id}")
    try:
        keyring = load_keyring(key_dir)
    except ProtocolError as exc:
        raise ConfigError(config.path, "identity.key_dir", str(exc)) from None
    cert_path = Path(config.certificate) if config.certificate else key_dir / "certificate.json"
    try:
        certificate = json.loads(cert_path.read_text())
    except FileNotFoundError:
        raise ConfigError(config.path, "identity.certificate",
                          f"no agency certificate at {cert_path}; ask the agency: "
                          f"urja agency certify {key_dir}/subscription-request.json") from None
    except ValueError as exc:
        raise ConfigError(config.path, "identity.certificate", f"{cert_path} is not JSON: {exc}") from None
    agency_key = None
    if config.agency_key:
        try:
            agency_key = read_agency_public_key(config.agency_key)
        except (OSError, ProtocolError) as exc:
            raise ConfigError(config.path, "identity.agency_key", str(exc)) from None
    identity = Identity(keyring=keyring, certificate=certificate, agency_public_key=agency_key)
    if identity.certified_key_id is None:
        raise ConfigError(config.path, "identity.certificate",
                          f"{cert_path} certifies key {certificate.get('unique_key_id')!r}, which is not among "
                          f"the keys in {key_dir} ({', '.join(e.key_id for e in keyring.entries)})")
    newest = keyring.entries[-1]
    if newest.key_id != identity.certified_key_id:
        log.warning("key %s waits for its agency certificate; signing with the certified key %s until it is "
                    "installed in %s", newest.key_id, identity.certified_key_id, cert_path)
    return identity


class _Meta:
    """What the runtime knows of a session beyond the core's view."""

    __slots__ = ("source", "reference", "token", "paid_minor", "acceptance_digest", "start_s",
                 "start_wh", "pricer", "reservation_id", "limits", "auth_id")

    def __init__(self, **values):
        for name in self.__slots__:
            setattr(self, name, values.get(name))


class Runtime(ChargerService):
    """One charger: a board, the core, the journal, the tariff and the identity."""

    def __init__(self, *, config: SiteConfig, board, journal: Journal, tariff: dict, identity: Identity,
                 clock: Clock, new_id: Callable[[], str] | None = None,
                 session_settings: SessionSettings | None = None,
                 safety_settings: SafetySettings | None = None, faults: FaultStore | None = None):
        self.config = config
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
        self._meta: dict[str, _Meta] = {}
        # (auth_id, meta) of the grant being dispatched: the core names its session only when it
        # takes the grant, and a refused grant's entry is simply replaced by the next one.
        self._granting: tuple[str, _Meta] | None = None
        self._views: dict[str, SessionView] = {}
        self._last_reading = None
        self._last_event_ms = 0
        self._feedback = None
        self._reservation = None  # (reservation_id, expires_s, token)
        self._connector_updated_s = clock.wall_s()
        self._connector_status = None
        self._relay_lock = asyncio.Lock()
        self._progress_s = 0.0
        self.network = None  # the MQTT binding, when the site joined a network
        self.http = None  # the Beckn HTTP binding, when the site serves it
        self.ocpi = None  # the OCPI CPO binding, when the site serves it
        self._token_authorities: list = []
        self._reconcile_pending = False  # unfinished sessions wait for the meter's first answer
        self._bill_until_wh: int | None = None  # the session's last trustworthy register (after a jump)
        self._stopping = False
        self.relay_commands = 0
        self.on_relay_command: Callable[[Any, int], None] | None = None

    # --- lifecycle -------------------------------------------------------------------------

    async def start(self) -> None:
        """Relay open first; then reconcile the journal; then the tasks."""
        for cmd in self.safety.boot(self.clock.monotonic_ms()):
            await self._execute(cmd)
        await self.board.relay.open()
        await self._restore_latch()
        reading = await self._read_meter_for_boot()
        if reading is not None:
            self._reconcile_with(reading, notify=False)
        elif self.journal.open_sessions():
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
        if self.faults is not None:
            self._spawn("urja-fault-reset", self._fault_reset_loop())
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
                                        make_receipt=self._receipt_for_record,
                                        meter_serial=reading.serial or self._meter_serial())
        for rec in closed:
            log.warning("recovered session %s after restart: %s Wh billed (reason %s)",
                        rec.session_id, rec.energy_wh, rec.stop_reason)
            receipt = self.journal.receipt(rec.session_id) if notify else None
            if receipt is not None:
                self._notify("receipt", (rec.session_id, json.loads(receipt)))

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

    async def _restore_latch(self) -> None:
        """Latch again a fault recorded before the restart and never cleared by a local reset.

        Runs right after the boot open, before the meter, the pilot or any task can ask for
        power: a reboot or a power cut must not be a way around a welded contactor.
        """
        if self.faults is None:
            return
        recorded = self.faults.latched()
        if recorded is None:
            return
        log.error("fault %s latched at %s is still recorded (%s): the charger stays out of order until a "
                  "local reset at the charger (urja fault reset)", recorded.code, _utc(recorded.latched_s),
                  recorded.detail)
        self._latch_record_id = recorded.id
        event = Fault(recorded.code, self._now_ms(), latch=True, detail=recorded.detail)
        for cmd in self.safety.handle(event):
            await self._execute(cmd)

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

    def _prune_views(self) -> None:
        """Keep the newest finished sessions in memory; older ones are read from the journal.

        A charger runs for months: without a bound every session's view and pricer would stay.
        """
        finished = [sid for sid, v in self._views.items()
                    if v.status != "ACTIVE" and sid != self.core.session_id]
        for sid in finished[:-MAX_FINISHED_VIEWS]:
            self._views.pop(sid, None)
            self._meta.pop(sid, None)

    async def _emergency_open(self) -> None:
        """Open the relay outside the normal command path; a failure here is logged, not raised,
        because the caller is already handling a failure and the hardware fail-safe remains."""
        try:
            async with self._relay_lock:
                await self.board.relay.open()
        except Exception:
            log.exception("emergency relay open failed; relying on the hardware fail-safe")

    # --- events in ------------------------------------------------------------------------

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
                self._feedback = feedback
                self.post(lambda t, f=feedback: RelayFeedback(f, t))
            self.post(_tick)  # through the dispatcher, so ticks and events never interleave
            self._expire_reservation()

    async def _fault_reset_loop(self) -> None:
        """Take a local reset that ``urja fault reset`` wrote to the fault file.

        Kept off the safety tick: one indexed read a second, and only while a fault is latched.
        """
        while True:
            await asyncio.sleep(FAULT_CHECK_S)
            if self.safety.latched_fault is None:
                continue
            try:
                await self._check_fault_record()
            except AgentError as exc:  # the file is unreadable or full: the latch stays, as it must
                log.error("latched fault %s: %s", self.safety.latched_fault, exc)

    async def _check_fault_record(self) -> None:
        code = self.safety.latched_fault
        detail = self.safety.latched_detail or code
        if self._latch_record_id is None:
            # Latched but not recorded (the write failed, or is still on its way): record it now,
            # so that it survives a power cut and a local reset can reach it.
            self._latch_record_id = self.faults.latch(code, detail, self.clock.wall_s()).id
            return
        recorded = self.faults.fault(self._latch_record_id)
        if recorded is not None and recorded.is_latched:
            return
        if recorded is None:
            self._latch_record_id = self.faults.latch(code, detail, self.clock.wall_s()).id
            return
        log.warning("local reset of fault %s recorded at %s (%s): clearing the latch", code,
                    _utc(recorded.cleared_s), recorded.cleared_by)
        try:
            await self.local_reset()
        except FaultPersists as exc:
            log.error("%s: the fault stays latched", exc)
            self._latch_record_id = self.faults.latch(code, f"{detail}; {exc}", self.clock.wall_s()).id

    async def _meter_loop(self) -> None:
        from drivers.meter.base import MeterEnergyBackwards, MeterEnergyJump, MeterFault

        period_s = self.config.meter_poll_ms / 1000
        polls = 0
        while not self._stopping:
            try:
                reading = await self.board.meter.read()
                # When the meter was read, not when the dispatcher gets to it: the weld check
                # must not take a reading from before the relay opened for current after it.
                read_ms = self.clock.monotonic_ms()
            except MeterEnergyBackwards as exc:
                meter_log.error("fault %s: %s", exc.code, exc)
                self.post(lambda t, d=str(exc): Fault("meter_energy_backwards", t, latch=True, detail=d))
            except MeterEnergyJump as exc:
                # More energy than the measured power explains: the register can no longer be
                # billed from. Stop there (the session is billed up to the reading before the
                # jump) and keep the charger out of service until someone looks at the meter.
                meter_log.error("fault %s: %s", exc.code, exc)
                previous_wh = exc.details.get("previous_wh")
                if self.core.session_id is not None and isinstance(previous_wh, int):
                    self._bill_until_wh = previous_wh
                self.post(lambda t, d=str(exc): Fault("meter_energy_jump", t, latch=True, detail=d))
            except MeterFault as exc:
                meter_log.warning("fault %s: %s (health: %s)", exc.code, exc, self.board.meter.health)
            else:
                self._last_reading = reading
                if self._reconcile_pending:
                    # before this reading reaches the core: no new session can have begun
                    # (the gate closes nothing without a valid reading)
                    self._reconcile_pending = False
                    try:
                        self._reconcile_with(reading, notify=True)
                    except AgentError as exc:
                        log.error("unfinished sessions could not be closed: %s", exc)
                self.post(lambda t, r=reading, m=read_ms: self._reading_event(r, t, m))
                polls += 1
                # One line a minute while idle, every ten seconds while charging (simulated time).
                every = 10 if self.core.state == "charging" else 60
                if (polls - 1) % max(1, int(every / period_s)) == 0:
                    meter_log.info("energy_wh=%d power_w=%.0f current_a=%s voltage_v=%s frequency_hz=%s quality=%s",
                                   reading.energy_import_wh, reading.power_w,
                                   "/".join(f"{a:.1f}" for a in reading.current_a),
                                   "/".join(f"{v:.0f}" for v in reading.voltage_v),
                                   None if reading.frequency_hz is None else f"{reading.frequency_hz:.2f}",
                                   ",".join(sorted(reading.quality)))
            await self.clock.sleep(period_s)

    def _reading_event(self, reading, time_ms: int, read_ms: int | None = None):
        sid = self.core.session_id
        meta = self._meta.get(sid) if sid else None
        if meta is not None and meta.pricer is not None and self._bill_until_wh is None:  # no pricing past a jump
            now_s = self.clock.wall_s()
            charging = self.core.state == "charging" and reading.power_w > 1
            try:
                meta.pricer.reading(int(now_s), reading.energy_import_wh, power_w=int(reading.power_w),
                                    # OCPI min/max_current restrict the sum over phases
                                    current_ma=int(sum(reading.current_a) * 1000), charging=charging)
            except AgentError as exc:
                log.warning("pricer refused reading: %s", exc)
            try:
                self.journal.checkpoint(sid, reading.energy_import_wh, now_s)
            except AgentError as exc:
                log.warning("checkpoint not written: %s", exc)
            # Progress for status pages and eMSPs, at a pace that does not flood them.
            if now_s - self._progress_s >= PROGRESS_S:
                self._progress_s = now_s
                self._update_view(sid)
        return MeterReading(time_ms, reading.energy_import_wh, float(reading.power_w), tuple(reading.current_a),
                            read_ms=None if read_ms is None else min(read_ms, time_ms))

    def _on_pilot(self, event) -> None:
        self._on_pilot_state(event.state, event.diode_fault)

    def _on_pilot_state(self, state, diode_fault) -> None:
        if diode_fault:
            state = "diode_fault"
        if state is None:
            return
        self.post(lambda t, s=state: PilotChanged(s, t))
        if state in ("B", "C", "D") and not self.core.busy and self.authorizer.free_vend \
                and self._reservation is None:
            auth = self.authorizer.from_free_vend()
            self.post(lambda t, a=auth: self._grant(a, _Meta(source="free_vend", reference="free-vend"), t))
        self._refresh_connector()

    # --- commands out ----------------------------------------------------------------------

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

    def _record_latch(self, code: str, detail: str) -> None:
        """Make the gate's latch durable before anything else happens (the relay is already open)."""
        if self.faults is not None:
            self._latch_record_id = self.faults.latch(code, detail, self.clock.wall_s()).id
        # Out of order from now, not only once the session's end has been carried out.
        self._refresh_connector()

    def _record_clearing(self, code: str) -> None:
        """The gate cleared on a local reset; the record follows (``urja fault reset`` may have cleared it first)."""
        if self.faults is not None:
            self.faults.clear(self.clock.wall_s(), by="local reset")
        self._latch_record_id = None
        log.warning("fault %s cleared by a local reset", code)

    def _session_started(self, data: dict) -> None:
        sid = data["session_id"]
        meta = self._meta.setdefault(sid, _Meta(source="unknown", reference=sid))
        # The freshest reading, not the one the core last saw: the relay is still open here
        # (the start is written before it closes), so the register cannot have moved since.
        reading = self._last_reading
        start_wh = reading.energy_import_wh if reading is not None else data.get("meter_wh") or 0
        now_s = self.clock.wall_s()
        meta.start_s = now_s
        meta.start_wh = start_wh
        meta.pricer = LivePricer(self._tariff, utc_offset_s=utc_offset_s(self.config.place.timezone, now_s))
        meta.pricer.reading(int(now_s), start_wh, charging=False)
        auth = self.core.authorization
        self.journal.start_session(
            sid, connector_id=int(CONNECTOR_ID),
            auth={"source": meta.source, "reference": meta.reference, "token": meta.token,
                  "auth_id": auth.auth_id if auth else None, "paid_minor": meta.paid_minor,
                  "acceptance_digest": meta.acceptance_digest,
                  "limits": auth.limits() if auth else {}},
            start_wh=start_wh, start_time_s=now_s, meter_serial=self._meter_serial(),
            tariff_id=self._tariff_dict.get("id"))
        log.info("session %s started at %d Wh (%s %s)", sid, start_wh, meta.source, meta.reference)
        self._update_view(sid)

    async def _session_ended(self, summary: dict) -> None:
        """Close the session with a reading taken after the contacts parted.

        The core's last reading may predate the relay opening by up to a poll period; billing
        from it would leave the tail of the session unbilled (and the next session would start
        above this one's stop). So: wait for the relay to settle, read the meter once more.
        """
        from drivers.meter.base import MeterFault

        sid = summary["session_id"]
        meta = self._meta.get(sid)
        await self.board.relay.wait_settled(timeout_ms=2000)
        try:
            self._last_reading = await self.board.meter.read()
            read_ms = self.clock.monotonic_ms()
            self.post(lambda t, r=self._last_reading, m=read_ms: self._reading_event(r, t, m))
        except MeterFault as exc:
            meter_log.warning("stop reading failed (%s); billing from the last good reading", exc.code)
        reading = self._last_reading
        stop_wh = reading.energy_import_wh if reading is not None else summary.get("meter_end_wh")
        if stop_wh is None:
            stop_wh = meta.start_wh if meta else 0
        bill_until_wh, self._bill_until_wh = self._bill_until_wh, None
        if bill_until_wh is not None and stop_wh > bill_until_wh:
            log.warning("session %s billed to %d Wh, the reading before the meter's jump (it shows %d Wh)",
                        sid, bill_until_wh, stop_wh)
            stop_wh = bill_until_wh
        now_s = self.clock.wall_s()
        if meta is not None and meta.pricer is not None:
            try:
                meta.pricer.reading(int(now_s), stop_wh, charging=False)
            except AgentError:
                pass
        rec = self.journal.stop_session(sid, stop_wh=stop_wh, stop_time_s=now_s, reason=summary.get("reason"))
        cost, periods = self._priced(rec, meta)
        receipt = self._receipt_for_record(rec, cost)
        self.journal.store_receipt(sid, receipt, cost_detail=_cost_detail(cost, periods))
        view = self._update_view(sid, final=True)
        self._prune_views()
        log.info("session %s ended: %s Wh, %s %s, reason %s", sid, rec.energy_wh,
                 view.cost.paid_text() if view.cost else "-", self._tariff.currency, summary.get("reason"))
        self._notify("receipt", (sid, json.loads(receipt)))

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

    # --- receipts ---------------------------------------------------------------------------

    def _priced(self, rec, meta) -> tuple:
        """(breakdown, OCPI charging periods) of a session, from the best source there is: what
        the session costs the buyer, the tariff's price held to the session's money limit."""
        limit = ((rec.auth or {}).get("limits") or {}).get("money_limit_paise")
        if meta is not None and meta.pricer is not None:
            return capped(meta.pricer.breakdown(), limit), meta.pricer.periods()
        stored = self._stored_cost(rec.session_id)
        if stored is not None:  # priced live and kept with its receipt
            return stored
        # Recovered after a crash: only the durable start and stop are known, so the session
        # is priced as one period from its start (documented in ARCHITECTURE.md).
        offset = utc_offset_s(self.config.place.timezone, rec.start_time_s)
        elapsed = max(0, int((rec.stop_time_s or rec.start_time_s) - rec.start_time_s))
        energy = int(round((rec.stop_wh or rec.start_wh) - rec.start_wh))
        return capped(price_periods(self._tariff, [Period(int(rec.start_time_s), energy, elapsed, 0)], offset),
                      limit), []

    def _stored_cost(self, session_id: str):
        """(breakdown, periods) kept with a finished session's receipt, or None."""
        text = self.journal.cost_detail(session_id)
        if text is None:
            return None
        try:
            detail = json.loads(text)
            return (CostBreakdown.from_dict(detail["breakdown"]),
                    [Period.from_dict(start_s, dims) for start_s, dims in detail["periods"]])
        except (ValueError, KeyError, TypeError, AgentError) as exc:
            log.error("session %s: its stored cost detail is unreadable (%s); priced from the journal", session_id, exc)
            return None

    def _receipt_for_record(self, rec, cost=None) -> str:
        from protocols.signing.ocmf import OcmfReading, build_ocmf
        from protocols.signing.receipt import CostBreakdown as ReceiptCost, MeterIdentity, build_receipt

        meta = self._meta.get(rec.session_id)
        if cost is None:
            cost = self._priced(rec, meta)[0]
        auth = rec.auth or {}
        paid = auth.get("paid_minor")
        parts = _receipt_parts(cost)
        now_s = self.clock.wall_s()
        entry = self.identity.entry(now_s)
        model = self.board.meter.model
        serial = rec.meter_serial or "unknown"
        offset_min = utc_offset_s(self.config.place.timezone, rec.start_time_s) // 60
        ocmf = build_ocmf(metering_key=entry.metering_key, gateway_id=self.config.site_id,
                          gateway_serial=self.config.site_id, gateway_version="urja-0.1", pagination=1,
                          meter_vendor=_vendor(model), meter_model=model, meter_serial=serial,
                          identification=auth.get("token") or auth.get("reference"),
                          readings=[OcmfReading(rec.start_time_s, "B", int(rec.start_wh)),
                                    OcmfReading(rec.stop_time_s or now_s, "E", int(rec.stop_wh))],
                          utc_offset_min=offset_min)
        receipt = build_receipt(
            signer=self.identity.signer(now_s), certificate=self.identity.certificate,
            receipt_id=f"rcpt-{rec.session_id}", order_id=auth.get("reference") or rec.session_id,
            acceptance_digest=auth.get("acceptance_digest") or "",
            meter=MeterIdentity(vendor=_vendor(model), model=model, serial=serial),
            start_wh=int(rec.start_wh), start_s=rec.start_time_s, stop_wh=int(rec.stop_wh),
            stop_s=rec.stop_time_s or now_s, tariff_id=rec.tariff_id or "", tariff_digest=self._tariff_digest,
            costs=ReceiptCost(energy_paise=parts["energy"], time_paise=parts["time"],
                              parking_paise=parts["parking"], flat_paise=parts["flat"], tax_paise=parts["tax"]),
            # What the buyer actually paid before charging (prepaid orders); the receipt then
            # states the refund or the balance due. Without a prepayment nothing was paid: the
            # whole total is due (a signed receipt must not say "paid" for money never received).
            paid_paise=paid if isinstance(paid, int) and not isinstance(paid, bool) and paid >= 0 else 0,
            issued_s=now_s, currency=self._tariff.currency, ocmf=ocmf,
            waived_paise=max(0, cost.uncapped_minor - cost.paid_minor))
        return json.dumps(receipt, sort_keys=True)

    def _meter_serial(self) -> str:
        if self._last_reading is not None and self._last_reading.serial:
            return self._last_reading.serial
        return getattr(self.board.meter, "serial", None) or "unknown"

    async def _read_meter_for_boot(self):
        from drivers.meter.base import MeterFault

        for _ in range(3):
            try:
                reading = await self.board.meter.read()
                self._last_reading = reading
                return reading
            except MeterFault as exc:
                meter_log.warning("boot read failed: %s: %s", exc.code, exc)
        return None

    # --- ChargerService: reads ---------------------------------------------------------------

    @property
    def site(self):
        return self.config

    def now_s(self) -> float:
        return self.clock.wall_s()

    def tariff(self) -> dict:
        return self._tariff_dict

    def _status(self) -> str:
        if self.safety.latched_fault is not None or self.core.state == "faulted":
            return "OUTOFORDER"
        if self.core.busy or self.core.state in ("plugged_waiting_for_auth", "finishing") or \
                (self.core.pilot in ("B", "C", "D")):
            return "CHARGING"
        if self._reservation is not None:
            return "RESERVED"
        return "AVAILABLE"

    def _refresh_connector(self) -> None:
        status = self._status()
        if status != self._connector_status:
            self._connector_status = status
            self._connector_updated_s = self.clock.wall_s()
            log.info("connector %s is %s", CONNECTOR_ID, status)
            self._notify("connector", self.connectors()[0])

    def connectors(self) -> list[ConnectorView]:
        profile = self.board.profile
        phases = profile.phases
        voltage = 230  # OCPI max_voltage is line to neutral, for three-phase connectors too
        pilot_mode = self.core.pilot_mode
        return [ConnectorView(
            connector_id=CONNECTOR_ID, evse_uid=f"{self.config.site_id}-1",
            standard="IEC_62196_T2" if pilot_mode else "DOMESTIC_M",
            format="SOCKET", power_type="AC_3_PHASE" if phases == 3 else "AC_1_PHASE",
            max_voltage_v=voltage, max_current_a=self.max_current_a,
            max_power_w=int(round(230 * self.max_current_a * phases)), phases=phases,
            status=self._connector_status or self._status(), last_updated_s=self._connector_updated_s,
            session_id=self.core.session_id, pilot_state=self.core.pilot,
            reservation_id=self._reservation[0] if self._reservation else None)]

    def _update_view(self, sid: str, final: bool = False) -> SessionView:
        """Rebuild the session's view and tell the listeners."""
        view = self._views[sid] = self._build_view(sid, final)
        self._notify("session", view)
        return view

    def _build_view(self, sid: str, final: bool = False) -> SessionView:
        meta = self._meta.get(sid) or _Meta(source="unknown", reference=sid)
        now_s = self.clock.wall_s()
        live = self.core.session_id == sid and not final
        reading = self._last_reading
        cost = capped(meta.pricer.breakdown(), (meta.limits or {}).get("money_limit_paise")) \
            if meta.pricer is not None else None
        start_wh = meta.start_wh
        energy = cost.energy_wh if cost is not None else 0
        rec = self.journal.session(sid) if final else None
        return SessionView(
            session_id=sid, connector_id=CONNECTOR_ID, evse_uid=f"{self.config.site_id}-1",
            auth_id=meta.auth_id, source=meta.source, token=meta.token, reference=meta.reference,
            status="ACTIVE" if live else "COMPLETED", state=self.core.state if live else "finished",
            start_s=meta.start_s, stop_s=rec.stop_time_s if rec else None, start_wh=start_wh,
            stop_wh=int(rec.stop_wh) if rec else None,
            energy_wh=int(rec.energy_wh) if rec else energy,
            power_w=(reading.power_w if reading is not None and live else 0.0),
            current_a=(tuple(reading.current_a) if reading is not None and live else ()),
            idle_s=(cost.parking_s if cost is not None else 0), limits=meta.limits or {},
            cost=cost, periods=meta.pricer.periods() if meta.pricer is not None else [],
            stop_reason=rec.stop_reason if rec else self.core.stop_reason, last_updated_s=now_s,
            currency=self._tariff.currency, tariff_id=self._tariff_dict.get("id"),
            meter_serial=self._meter_serial(), meter_model=self.board.meter.model)

    def session(self, session_id: str) -> SessionView | None:
        if session_id in self._views:
            if session_id == self.core.session_id:
                # A read is a snapshot: fresh figures, but no change notification.
                self._views[session_id] = self._build_view(session_id)
            return self._views[session_id]
        from agent.journal import UnknownSession

        try:
            rec = self.journal.session(session_id)
        except UnknownSession:
            return None
        return self._view_from_record(rec)

    def _view_from_record(self, rec) -> SessionView:
        auth = rec.auth or {}
        cost, periods = self._priced(rec, None) if rec.stop_wh is not None else (None, [])
        return SessionView(
            session_id=rec.session_id, connector_id=CONNECTOR_ID, evse_uid=f"{self.config.site_id}-1",
            auth_id=auth.get("auth_id"), source=auth.get("source"), token=auth.get("token"), reference=auth.get("reference"),
            status="COMPLETED" if rec.stop_wh is not None else "ACTIVE", state="finished",
            start_s=rec.start_time_s, stop_s=rec.stop_time_s, start_wh=int(rec.start_wh),
            stop_wh=None if rec.stop_wh is None else int(rec.stop_wh),
            energy_wh=int(rec.energy_wh or 0), power_w=0.0, current_a=(), idle_s=0,
            limits=auth.get("limits") or {}, cost=cost, periods=periods, stop_reason=rec.stop_reason,
            last_updated_s=rec.stop_time_s or rec.last_time_s, currency=self._tariff.currency,
            tariff_id=rec.tariff_id, meter_serial=rec.meter_serial, meter_model=self.board.meter.model)

    def sessions(self, *, since_s: float | None = None, until_s: float | None = None) -> list[SessionView]:
        out: dict[str, SessionView] = {}
        for rec in self.journal.sessions(since=since_s, limit=10_000):
            out[rec.session_id] = self._view_from_record(rec)
        for sid in list(self._views):
            out[sid] = self.session(sid)
        views = [v for v in out.values()
                 if (since_s is None or (v.last_updated_s or 0) >= since_s)
                 and (until_s is None or (v.last_updated_s or 0) < until_s)]
        views.sort(key=lambda v: (v.last_updated_s or 0, v.session_id))
        return views

    def receipt(self, session_id: str) -> dict | None:
        from agent.journal import JournalError

        try:
            text = self.journal.receipt(session_id)
        except JournalError:  # not journaled yet (the car has not asked for power) or unknown
            return None
        if text is None:
            return None
        return json.loads(text) if isinstance(text, (str, bytes)) else text

    # --- ChargerService: actions -------------------------------------------------------------

    def _grant(self, auth, meta: _Meta, time_ms: int):
        """Build the grant event; the metadata waits beside it until the core names the session."""
        meta.limits = auth.limits()
        meta.auth_id = auth.auth_id
        self._granting = (auth.auth_id, meta)
        return AuthGranted(auth, time_ms)

    def _check_startable(self, connector_id: str | None) -> None:
        """Refusals every start shares, checked before anything is asked or granted."""
        if connector_id not in (None, CONNECTOR_ID):
            raise ServiceError(f"unknown connector {connector_id!r} (this charger has {CONNECTOR_ID})",
                               code=ServiceError.UNKNOWN_CONNECTOR)
        if self.safety.latched_fault is not None or self.core.state == "faulted":
            raise ServiceError(f"charger faulted: {self.safety.latched_fault}", code=ServiceError.INOPERATIVE)
        if self.core.busy:
            raise ServiceError("connector busy with another session", code=ServiceError.OCCUPIED)

    async def start_session(self, *, source: str, reference: str, token: str | None = None,
                            connector_id: str | None = None, energy_limit_wh: int | None = None,
                            money_limit_minor: int | None = None, time_limit_s: int | None = None,
                            departure_s: float | None = None, reservation_id: str | None = None,
                            paid_minor: int | None = None, acceptance_digest: str | None = None) -> SessionView:
        self._check_startable(connector_id)
        held = self._reservation
        if held is not None:
            rid, _, rtoken = held
            if reservation_id != rid and (rtoken is None or token != rtoken):
                raise ServiceError("connector reserved for someone else", code=ServiceError.OCCUPIED)
        limits = {}
        if energy_limit_wh is not None:
            limits["energy_limit_wh"] = int(energy_limit_wh)
        if money_limit_minor is not None:
            limits["money_limit_paise"] = int(money_limit_minor)
        if time_limit_s is not None:
            limits["time_limit_ms"] = int(time_limit_s * 1000)
        if departure_s is not None:
            limits["departure_ms"] = self.clock.monotonic_ms() + int((departure_s - self.clock.wall_s()) * 1000)
        try:
            if source == "contract":
                auth = self.authorizer.from_contract(reference, **limits)
            elif source == "ocpi":
                auth = self.authorizer.from_ocpi(token or reference, **limits)
            elif source == "allow_list":
                auth = self.authorizer.from_local_token(token or "")
            elif source == "free_vend":
                auth = self.authorizer.from_free_vend()
                if auth is None:
                    raise ServiceError("free vend is off at this site", code=ServiceError.REJECTED)
            else:
                raise ServiceError(f"unknown source {source!r} (allowed: contract, ocpi, allow_list, free_vend)",
                                   code=ServiceError.REJECTED)
        except ServiceError:
            raise
        except AgentError as exc:
            raise ServiceError(str(exc), code=ServiceError.REJECTED) from None
        meta = _Meta(source=source, reference=reference, token=token, paid_minor=paid_minor,
                     acceptance_digest=acceptance_digest, reservation_id=reservation_id)
        try:
            await self.post_and_wait(lambda t: self._grant(auth, meta, t))
        except AgentError as exc:
            raise ServiceError(str(exc), code=ServiceError.REJECTED) from None
        sid = self.core.session_id
        if sid is None or self.core.active_auth_id != auth.auth_id:
            raise ServiceError("authorization was not taken", code=ServiceError.REJECTED)
        # Only a start that was taken uses up the reservation; a refused one leaves it held.
        if held is not None and self._reservation is held:
            self._reservation = None
        self._refresh_connector()
        return self._update_view(sid)

    async def present_token(self, uid: str, *, token_type: str = "RFID",
                            connector_id: str | None = None) -> SessionView:
        if not isinstance(uid, str) or not uid.strip():
            raise ServiceError(f"token must be non-empty text, got {uid!r}", code=ServiceError.REJECTED)
        if self.authorizer.knows_token(uid):
            return await self.start_session(source="allow_list", reference=f"token-{uid}", token=uid,
                                            connector_id=connector_id)
        # Refuse what would be refused anyway before asking anyone over the network.
        self._check_startable(connector_id)
        for authority in list(self._token_authorities):
            decision = await authority.decide_token(uid, token_type=token_type,
                                                    evse_uid=f"{self.config.site_id}-1")
            if decision is None:
                continue
            if not decision.allowed:
                log.info("token %s refused: %s", uid, decision.reason)
                raise ServiceError(f"token {uid} refused: {decision.reason}", code=ServiceError.REJECTED)
            reference = self._new_id()
            authority.bind_session(reference, decision)
            log.info("token %s allowed: %s", uid, decision.reason)
            return await self.start_session(source="ocpi", reference=reference, token=uid,
                                            connector_id=connector_id)
        raise ServiceError(f"token {uid} is not on this site's allow-list and no eMSP knows it",
                           code=ServiceError.REJECTED)

    def add_token_authority(self, authority) -> None:
        if authority not in self._token_authorities:
            self._token_authorities.append(authority)

    def remove_token_authority(self, authority) -> None:
        if authority in self._token_authorities:
            self._token_authorities.remove(authority)

    async def stop_session(self, session_id: str, *, reason: str = "remote") -> SessionView:
        if session_id != self.core.session_id or self.core.active_auth_id is None:
            view = self.session(session_id)
            if view is None:
                raise ServiceError(f"unknown session {session_id!r}", code=ServiceError.UNKNOWN_SESSION)
            return view
        await self.post_and_wait(lambda t: StopRequested(t, reason))
        return self.session(session_id)

    async def reserve(self, *, reservation_id: str, connector_id: str | None, expires_s: float,
                      token: str | None = None) -> ConnectorView:
        if connector_id not in (None, CONNECTOR_ID):
            raise ServiceError(f"unknown connector {connector_id!r}", code=ServiceError.UNKNOWN_CONNECTOR)
        if self.safety.latched_fault is not None:
            raise ServiceError("charger faulted", code=ServiceError.INOPERATIVE)
        if self._reservation is not None and self._reservation[0] != reservation_id:
            raise ServiceError("connector already reserved", code=ServiceError.OCCUPIED)
        if self.core.busy:
            raise ServiceError("connector busy", code=ServiceError.OCCUPIED)
        if expires_s <= self.clock.wall_s():
            raise ServiceError("reservation expiry is in the past", code=ServiceError.REJECTED)
        self._reservation = (reservation_id, float(expires_s), token)
        self._refresh_connector()
        return self.connectors()[0]

    async def cancel_reservation(self, reservation_id: str) -> None:
        if self._reservation is None or self._reservation[0] != reservation_id:
            raise ServiceError(f"unknown reservation {reservation_id!r}", code=ServiceError.UNKNOWN_RESERVATION)
        self._reservation = None
        self._refresh_connector()

    def _expire_reservation(self) -> None:
        if self._reservation is not None and self._reservation[1] <= self.clock.wall_s():
            log.info("reservation %s expired", self._reservation[0])
            self._reservation = None
            self._refresh_connector()

    async def unlock(self, connector_id: str) -> None:
        if connector_id != CONNECTOR_ID:
            raise ServiceError(f"unknown connector {connector_id!r}", code=ServiceError.UNKNOWN_CONNECTOR)
        raise ServiceError("this socket has no cable lock to release", code=ServiceError.NOT_SUPPORTED)

    async def local_reset(self) -> None:
        """Clear a latched fault: only from the charger itself (button, ``urja fault reset``),
        never from the network. Raises ``FaultPersists`` while the condition is still there.

        With a fault latched the relay is open already; it is driven open once more and its
        mirror contact read afresh, so a contactor repaired since it welded is seen apart
        before the gate judges the reset.
        """
        if self.safety.latched_fault is not None:
            async with self._relay_lock:
                await self.board.relay.open()
            await self.board.relay.wait_settled()
            feedback = self.board.relay.feedback
            if feedback is not None:
                self._feedback = feedback
                self.post(lambda t, f=feedback: RelayFeedback(f, t))
        try:
            await self.post_and_wait(lambda t: LocalReset(t))
        finally:
            self._refresh_connector()

    # --- notifications --------------------------------------------------------------------

    def add_listener(self, listener) -> None:
        self._listeners.append(listener)

    def remove_listener(self, listener) -> None:
        if listener in self._listeners:
            self._listeners.remove(listener)

    def _notify(self, kind: str, obj) -> None:
        for listener in list(self._listeners):
            try:
                listener(kind, obj)
            except Exception:  # a broken listener must not stop the charger
                log.exception("listener %r failed on %s", listener, kind)

    # --- cost for the session's money limit ----------------------------------------------------

    def _cost_paise(self, energy_wh: int, elapsed_ms: int, idle_ms: int) -> int:
        """Cost of the running session at a hypothetical point, for predictive money limits."""
        sid = self.core.session_id
        meta = self._meta.get(sid) if sid else None
        if meta is None or meta.pricer is None:
            offset = utc_offset_s(self.config.place.timezone, self.clock.wall_s())
            start = int(self.clock.wall_s())
            return price_periods(self._tariff, [Period(start, energy_wh, max(0, (elapsed_ms - idle_ms) // 1000),
                                                       idle_ms // 1000)], offset).paid_minor
        live = meta.pricer
        base: SessionPricer = live.pricer.copy()
        done_s = base.elapsed_s
        extra_wh = max(0, energy_wh - (live.last_wh - meta.start_wh))
        total_s = elapsed_ms // 1000
        extra_s = max(0, total_s - done_s)
        extra_idle = min(extra_s, max(0, idle_ms // 1000 - _parking_so_far(base)))
        base.add(Period(int(live.last_s), extra_wh, extra_s - extra_idle, extra_idle))
        return base.breakdown().paid_minor


JOURNAL_KEEP_S = 7 * 86400  # delivered messages and billed sessions' checkpoints are kept this long
HOUSEKEEPING_EVERY_S = 6 * 3600

_TICK = object()


def _tick(time_ms: int):
    return _TICK


def _utc(time_s: float | None) -> str:
    if time_s is None:
        return "-"
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time_s))


def _parking_so_far(pricer: SessionPricer) -> int:
    return pricer.dims[PARKING_TIME].volume


def _to_minor(value_u: int, digits: int) -> int:
    step = 10 ** (4 - digits)
    return (value_u + step // 2) // step


def _cost_detail(cost, periods) -> str:
    """The priced detail kept beside a receipt: the breakdown and the OCPI charging periods."""
    out = []
    for p in periods:
        dims = {k: getattr(p, k) for k in ("energy_wh", "time_s", "parking_s", "reservation_s", "min_current_ma",
                                           "max_current_ma", "min_power_w", "max_power_w")
                if getattr(p, k) is not None}
        out.append([p.start_s, dims])
    return json.dumps({"breakdown": cost.as_dict(), "periods": out}, separators=(",", ":"))


def _receipt_parts(cost) -> dict:
    """The receipt's cost lines in minor units, adding up to exactly what is collected.

    Reservation time and fee go with time and the flat fee. The tax line is the breakdown's
    VAT; when the total was clamped (max_price, min_price, a money limit) or the per-line
    rounding does not add up, the excl.-VAT lines give way, energy first, so the tax stated
    stays the tax on the amount collected.
    """
    digits = cost.minor_digits
    parts = {
        "energy": _to_minor(cost.energy_excl_u, digits),
        "time": _to_minor(cost.time_excl_u + cost.reservation_time_excl_u, digits),
        "parking": _to_minor(cost.parking_excl_u, digits),
        "flat": _to_minor(cost.flat_excl_u + cost.reservation_flat_excl_u, digits),
    }
    total = cost.paid_minor
    tax = min(total, _to_minor(cost.total_vat_u, digits))
    excess = sum(parts.values()) - (total - tax)
    if excess < 0:  # clamped up (min_price) or rounded down: the difference is energy
        parts["energy"] -= excess
    for name in ("energy", "time", "parking", "flat"):
        if excess <= 0:
            break
        cut = min(excess, parts[name])
        parts[name] -= cut
        excess -= cut
    parts["tax"] = tax
    return parts


def _vendor(model: str) -> str:
    m = model.lower()
    for prefix, vendor in (("sdm", "Eastron"), ("abb", "ABB"), ("em3", "Carlo Gavazzi"),
                           ("eem", "Phoenix Contact"), ("iem", "Schneider Electric")):
        if m.startswith(prefix):
            return vendor
    return "unknown"


class open_runtime:
    """``async with open_runtime(config) as rt``: board up, relay open, journal reconciled, tasks running.

    On the way out (normal exit, exception or cancellation) the relay is opened first, the
    tasks stopped, the board released and the journal closed.
    """

    def __init__(self, config: SiteConfig, *, clock: Clock | None = None, board_profile=None,
                 new_id: Callable[[], str] | None = None, identity: Identity | None = None,
                 session_settings: SessionSettings | None = None,
                 safety_settings: SafetySettings | None = None, bindings: bool = True):
        self.config = config
        self.bindings = bindings
        self._bindings: list = []
        self.clock = clock or Clock()
        self.board_profile = board_profile or config.board_profile
        self.new_id = new_id
        self.identity = identity
        self.session_settings = session_settings
        self.safety_settings = safety_settings
        self._board_ctx = None
        self.runtime: Runtime | None = None

    async def __aenter__(self) -> Runtime:
        from agent.tariff_file import load_tariff_file
        from board.build import build_board

        cfg = self.config
        if cfg.tariff_file is None:
            raise ConfigError(cfg.path, "tariff.file", "missing: the charger needs the site owner's tariff")
        tariff = load_tariff_file(cfg.tariff_file)
        identity = self.identity or load_identity(cfg)
        journal_path = Path(cfg.journal_path)
        journal_path.parent.mkdir(parents=True, exist_ok=True)
        self._board_ctx = build_board(self.board_profile, clock=self.clock.monotonic_s, sleep=self.clock.sleep)
        board = await self._board_ctx.__aenter__()
        journal = None
        faults = None
        try:
            journal = Journal.open(journal_path, clock=self.clock.wall_s)
            faults = FaultStore.open(fault_store_path(journal_path))
            self.runtime = Runtime(config=cfg, board=board, journal=journal, tariff=tariff, identity=identity,
                                   clock=self.clock, new_id=self.new_id, session_settings=self.session_settings,
                                   safety_settings=self.safety_settings, faults=faults)
            await self.runtime.start()
            await self._start_bindings(self.runtime)
        except BaseException:
            await self._stop_bindings()
            if self.runtime is not None:
                await self.runtime.close()
            if faults is not None:
                faults.close()
            if journal is not None:
                journal.close()
            await self._board_ctx.__aexit__(None, None, None)
            raise
        return self.runtime

    async def _start_bindings(self, rt: Runtime) -> None:
        """The protocol bindings the configuration asks for: ``[network]`` joins the MQTT network.

        They start after the runtime (the charger is safe and reconciled before anyone can
        reach it) and stop before it; a broker that is down does not stop the charger, the
        binding reconnects by itself.
        """
        if self.bindings is False:
            return
        extra = self.config.extra
        if "network" in extra:
            from protocols.mqtt.stack import ChargerNetwork

            net = ChargerNetwork.for_runtime(rt)
            await net.start()
            self._bindings.append(net)
            rt.network = net
            log.info("network binding started (MQTT)")
        if "http" in extra:
            from protocols.http.binding import HttpBinding

            http = HttpBinding.for_runtime(rt)
            port = await http.start()
            self._bindings.append(http)
            rt.http = http
            log.info("Beckn HTTP endpoints on %s:%d", http.host, port)
        if "ocpi" in extra:
            from protocols.ocpi.binding import OcpiBinding

            ocpi = OcpiBinding.for_runtime(rt)
            if ocpi.settings.enabled:
                port = await ocpi.start()
                self._bindings.append(ocpi)
                rt.ocpi = ocpi
                log.info("OCPI 2.2.1 CPO on port %d, public URL %s", port, ocpi.settings.public_url)
            else:
                ocpi.store.close()

    async def _stop_bindings(self) -> None:
        while self._bindings:
            binding = self._bindings.pop()
            try:
                await binding.close()
            except Exception:  # the relay must still open below
                log.exception("closing %r failed", binding)

    async def __aexit__(self, *exc) -> None:
        try:
            await self._stop_bindings()
            if self.runtime is not None:
                await self.runtime.close()
        finally:
            try:
                await self._board_ctx.__aexit__(*exc)
            finally:
                if self.runtime is not None:
                    if self.runtime.faults is not None:
                        self.runtime.faults.close()
                    self.runtime.journal.close()
