"""The runtime end to end on the simulated board: a real Modbus meter, the core, the journal, receipts."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from agent.bootstrap import open_runtime
from agent.clock import Clock
from agent.core.safety import SafetySettings
from agent.service import ServiceError
from protocols.signing.agency import read_agency_public_key
from protocols.signing.receipt import verify_receipt
from tests.support import sim_config, wait_until

pytestmark = pytest.mark.asyncio


async def test_free_vend_session_runs_to_its_energy_limit_and_signs_a_receipt(tmp_path):
    cfg = sim_config(tmp_path, auth="free_vend", default_limit_wh=200)
    receipts = []
    async with open_runtime(cfg, clock=Clock(speed=20)) as rt:
        rt.add_listener(lambda kind, obj: receipts.append(obj) if kind == "receipt" else None)
        car = rt.board.sim.car
        assert rt.connectors()[0].status == "AVAILABLE"
        car.plug_in()
        await wait_until(lambda: rt.core.session_id is not None, what="free-vend authorization")
        car.request_power()
        await wait_until(lambda: rt.board.relay.closed, what="relay closed")
        assert rt.connectors()[0].status == "CHARGING"
        await wait_until(lambda: rt.core.stop_reason == "limit_energy", timeout_s=30, what="energy limit")
        assert not rt.board.relay.closed
        car.unplug()
        await wait_until(lambda: receipts, what="receipt")
    sid, receipt = receipts[0]
    verify_receipt(receipt, agency_public_key=read_agency_public_key(cfg.agency_key), require_ocmf=True)
    assert sid in receipt["receipt_id"]
    energy = receipt["stop"]["meter_wh"] - receipt["start"]["meter_wh"]
    assert energy == receipt["energy_wh"]
    # Predictive stop: within 5 Wh of the limit (energy is whole Wh on the meter).
    assert abs(energy - 200) <= 5, energy
    # Flat tariff: Rs 18/kWh + 18 % GST, rounded once to paise.
    assert receipt["cost_paise"]["total"] == (energy * 1800 * 118 + 50_000) // 100_000
    # Nothing was prepaid: the receipt says so and states the whole total as due.
    assert receipt["paid_paise"] == 0 and receipt["balance_due_paise"] == receipt["cost_paise"]["total"] > 0


async def test_second_start_is_refused_while_busy(tmp_path):
    cfg = sim_config(tmp_path, auth="network")
    async with open_runtime(cfg, clock=Clock(speed=5)) as rt:
        view = await rt.start_session(source="contract", reference="order-1", energy_limit_wh=100)
        assert view.status == "ACTIVE"
        with pytest.raises(ServiceError) as info:
            await rt.start_session(source="contract", reference="order-2")
        assert info.value.code == ServiceError.OCCUPIED
        await rt.stop_session(view.session_id)


async def test_restart_reconciles_an_unfinished_session(tmp_path):
    cfg = sim_config(tmp_path, auth="network")
    async with open_runtime(cfg, clock=Clock(speed=20)) as rt:
        car = rt.board.sim.car
        car.plug_in()
        car.request_power()
        view = await rt.start_session(source="contract", reference="order-9", energy_limit_wh=10_000)
        await wait_until(lambda: rt.board.relay.closed, what="relay closed")
        sid = view.session_id
        # Leaving without stopping: the relay opens, the journal keeps the session open,
        # exactly what a crash leaves behind (the SIGKILL test covers the real crash).
    async with open_runtime(cfg, clock=Clock(speed=20)) as rt2:
        rec = rt2.journal.session(sid)
        assert rec is not None and not rec.is_open
        assert rt2.receipt(sid) is not None


async def _as_a_power_cut(reason="shutdown"):
    """Stands in for ``Runtime.end_sessions`` when a test leaves a session open as a power cut would."""


async def test_a_meter_silent_at_boot_closes_the_unfinished_session_when_it_answers(tmp_path, monkeypatch):
    from agent.runtime import Runtime

    cfg = sim_config(tmp_path, auth="network")
    async with open_runtime(cfg, clock=Clock(speed=20)) as rt:
        rt.board.sim.car.plug_in()
        rt.board.sim.car.request_power()
        view = await rt.start_session(source="contract", reference="order-10", energy_limit_wh=10_000)
        await wait_until(lambda: rt.board.relay.closed, what="relay closed")
        sid = view.session_id
        rt.end_sessions = _as_a_power_cut  # the session is left open, as a power cut leaves it

    async def silent_at_boot(self):  # the meter does not answer the boot reads
        return None
    monkeypatch.setattr(Runtime, "_read_meter_for_boot", silent_at_boot)
    receipts = []
    async with open_runtime(cfg, clock=Clock(speed=20)) as rt2:
        rt2.add_listener(lambda kind, obj: receipts.append(obj[0]) if kind == "receipt" else None)
        await wait_until(lambda: receipts, what="the late reconciliation's receipt")
        assert receipts == [sid] and not rt2.journal.session(sid).is_open
        verify_receipt(rt2.receipt(sid), agency_public_key=read_agency_public_key(cfg.agency_key))


async def test_shutdown_outlasts_a_task_that_swallows_its_first_cancel():
    """Regression: Python 3.11's wait_for can swallow a cancel (pymodbus and every poll loop
    wait that way), and a single cancel() then left the meter poll (and once the OCPI pusher)
    running and the shutdown waiting forever."""
    import asyncio

    from agent.aio import cancel_and_wait

    swallowed = asyncio.Event()

    async def stubborn():
        try:
            await asyncio.Event().wait()
        except asyncio.CancelledError:
            swallowed.set()  # as if the answer had arrived at the same moment: carry on
        await asyncio.Event().wait()

    task = asyncio.get_running_loop().create_task(stubborn(), name="stubborn-poll")
    await asyncio.sleep(0)
    assert await asyncio.wait_for(cancel_and_wait([task]), 5) == []
    assert swallowed.is_set() and task.cancelled()


async def test_a_refused_start_leaves_the_reservation_held(tmp_path):
    cfg = sim_config(tmp_path, auth="network")
    async with open_runtime(cfg, clock=Clock(speed=5)) as rt:
        await rt.reserve(reservation_id="r1", connector_id="1", expires_s=rt.now_s() + 600)
        with pytest.raises(ServiceError) as info:
            await rt.start_session(source="allow_list", reference="walk-in", token="not-listed",
                                   reservation_id="r1")
        assert info.value.code == ServiceError.REJECTED
        conn = rt.connectors()[0]
        assert (conn.status, conn.reservation_id) == ("RESERVED", "r1")
        view = await rt.start_session(source="contract", reference="order-r1", reservation_id="r1")
        assert rt.connectors()[0].reservation_id is None
        await rt.stop_session(view.session_id)


async def test_reading_a_live_session_tells_no_listener(tmp_path):
    cfg = sim_config(tmp_path, auth="network")
    async with open_runtime(cfg, clock=Clock(speed=5)) as rt:
        view = await rt.start_session(source="contract", reference="order-3", energy_limit_wh=100)
        told = []
        rt.add_listener(lambda kind, obj: told.append(kind))
        assert rt.session(view.session_id).status == "ACTIVE"
        assert [v.session_id for v in rt.sessions()] == [view.session_id]
        assert told == []
        await rt.stop_session(view.session_id)


async def test_a_dead_task_latches_a_fault_and_opens_the_relay(tmp_path):
    cfg = sim_config(tmp_path, auth="network")
    async with open_runtime(cfg, clock=Clock(speed=5)) as rt:
        async def broken():
            raise OSError("line gone")

        rt._spawn("urja-broken", broken())
        await wait_until(lambda: rt.safety.latched_fault == "task_died", what="latched fault")
        assert not rt.board.relay.closed
        assert rt.connectors()[0].status == "OUTOFORDER"


async def test_a_failing_relay_command_opens_latches_and_answers_the_caller(tmp_path):
    """A relay or journal failure while carrying out commands must not kill the dispatcher:
    the relay is opened, a fault latches, and the caller waiting on its event gets the error."""
    from agent.bootstrap import open_runtime
    from agent.clock import Clock
    from tests.support import sim_config, wait_until

    cfg = sim_config(tmp_path, auth="network")
    async with open_runtime(cfg, clock=Clock(speed=20)) as rt:
        car = rt.board.sim.car
        car.plug_in()
        car.request_power()
        relay = rt.board.relay
        real_close = relay.close

        async def broken_close():
            raise OSError("contactor driver gone")

        relay.close = broken_close
        await rt.start_session(source="contract", reference="order-f", energy_limit_wh=100)
        await wait_until(lambda: rt.safety.latched_fault == "command_failed", what="latched fault")
        assert not relay.closed
        assert rt.connectors()[0].status == "OUTOFORDER"
        relay.close = real_close
        # The dispatcher still runs: a local reset is processed.
        await rt.local_reset()
        assert rt.safety.latched_fault is None


async def test_a_prepaid_buyer_is_never_asked_for_more_than_they_paid(tmp_path):
    # A start fee above the prepaid amount: the money limit is reached before any energy flows,
    # so the tariff asks more than was paid whatever the timing. The receipt holds the total to
    # the amount paid and states what was waived.
    tariff = tmp_path / "fee.toml"
    tariff.write_text('[tariff]\nid = "fee"\ncurrency = "INR"\ngst_percent = 18\n\n'
                      '[[tariff.element]]\nflat = 5\nenergy_per_kwh = 18\n')
    cfg = sim_config(tmp_path, auth="network", tariff=str(tariff))
    receipts = []
    async with open_runtime(cfg, clock=Clock(speed=20)) as rt:
        rt.add_listener(lambda kind, obj: receipts.append(obj) if kind == "receipt" else None)
        car = rt.board.sim.car
        car.plug_in()
        view = await rt.start_session(source="contract", reference="order-5", money_limit_paise=200,
                                      paid_paise=200)
        car.request_power()
        await wait_until(lambda: rt.core.stop_reason is not None, what="money limit")
        assert rt.core.stop_reason == "limit_money"
        car.unplug()
        await wait_until(lambda: receipts, what="receipt")
        finished = rt.session(view.session_id)
    _, receipt = receipts[0]
    check = verify_receipt(receipt, agency_public_key=read_agency_public_key(cfg.agency_key))
    assert check.total_paise == 200 and receipt["paid_paise"] == 200
    assert receipt["balance_due_paise"] == 0 and check.refund_due_paise == 0
    assert finished.cost.uncapped_paise >= 590  # Rs 5 + GST at least
    assert receipt["waived_paise"] == finished.cost.uncapped_paise - 200
    # GST is 18 % of what is collected, not of the tariff's price.
    assert receipt["cost_paise"]["tax"] == 31
    assert finished.cost.total_paise == 200 and finished.cost.limit_applied


async def test_receipt_lines_add_up_and_keep_the_tax_right():
    from agent.billing import _receipt_parts
    from agent.core.tariff import Period, Tariff, capped, price_periods

    def comp(kind, price, **restrictions):
        element = {"price_components": [{"type": kind, "price": price, "vat": 18, "step_size": 1}]}
        if restrictions:
            element["restrictions"] = restrictions
        return element

    t = Tariff({"currency": "INR", "elements": [comp("TIME", 100, reservation="RESERVATION"),
                                                comp("ENERGY", 18), comp("FLAT", 5)]})
    start = 1_767_600_000
    cost = price_periods(t, [Period(start, 0, 0, 0, reservation_s=1800),
                             Period(start + 1800, 1000, 3600, 0)])
    parts = _receipt_parts(cost)
    # Reservation time (Rs 50) is time, not tax; Rs 18 energy; Rs 5 start fee; 18 % GST.
    assert parts == {"energy": 1800, "time": 5000, "parking": 0, "flat": 500, "tax": 1314}
    assert sum(parts.values()) == cost.total_paise == 8614
    held = _receipt_parts(capped(cost, 1000))
    assert sum(held.values()) == 1000 and held["tax"] == 153  # 18/118 of Rs 10
    # The excl.-GST lines give way in order, energy first.
    assert held == {"energy": 0, "time": 347, "parking": 0, "flat": 500, "tax": 153}


async def test_a_card_on_the_allow_list_starts_charging_and_an_unknown_one_is_refused(tmp_path):
    cfg = sim_config(tmp_path, auth="network")
    async with open_runtime(cfg, clock=Clock(speed=5)) as rt:
        with pytest.raises(ServiceError, match="CARD-X is not on this site's allow-list") as info:
            await rt.present_token("CARD-X")
        assert info.value.code == ServiceError.REJECTED and rt.core.session_id is None
        with pytest.raises(ServiceError, match="non-empty"):
            await rt.present_token(" ")
        view = await rt.present_token("DEMO-RFID-0001")
        assert view.source == "allow_list" and view.token == "DEMO-RFID-0001"
        assert view.auth_id == rt.core.authorization.auth_id
        with pytest.raises(ServiceError) as info:
            await rt.present_token("DEMO-RFID-0001")
        assert info.value.code == ServiceError.OCCUPIED
        await rt.stop_session(view.session_id)


async def test_a_reservation_made_again_under_its_id_replaces_the_first(tmp_path):
    """OCPI RESERVE_NOW with a known reservation id replaces that reservation (new token, new
    expiry); another id is refused while the first holds the connector."""
    cfg = sim_config(tmp_path, auth="network")
    async with open_runtime(cfg, clock=Clock(speed=5)) as rt:
        now = rt.now_s()
        await rt.reserve(reservation_id="r1", connector_id=None, expires_s=now + 600, token="CARD-A")
        view = await rt.reserve(reservation_id="r1", connector_id=None, expires_s=now + 1200, token="CARD-B")
        assert view.status == "RESERVED"
        with pytest.raises(ServiceError) as info:
            await rt.reserve(reservation_id="r2", connector_id=None, expires_s=now + 600, token="CARD-C")
        assert info.value.code == ServiceError.OCCUPIED
        with pytest.raises(ServiceError) as info:
            await rt.start_session(source="ocpi", reference="x-1", token="CARD-A")
        assert info.value.code == ServiceError.OCCUPIED
        started = await rt.start_session(source="ocpi", reference="x-2", token="CARD-B")
        assert started.status == "ACTIVE"
        await rt.stop_session(started.session_id)


async def test_after_key_rotation_the_certified_key_signs_until_its_certificate_is_replaced(tmp_path):
    """``urja keygen --rotate`` adds a key the agency has not certified yet: receipts (and the
    journal's reconciliation at the next start) stay signed with the certified key."""
    import time

    from protocols.signing.keys import rotate_keyring

    cfg = sim_config(tmp_path, auth="network")
    certified = json.loads((Path(cfg.key_dir) / "certificate.json").read_text())["unique_key_id"]
    rotate_keyring(cfg.key_dir, valid_days=30, old_valid_until_s=time.time() + 86400, now_s=time.time() - 1,
                   new_key_id=lambda: "k-new")
    receipts = []
    for _ in range(2):  # the second start reconciles with the same identity
        async with open_runtime(cfg, clock=Clock(speed=20)) as rt:
            rt.add_listener(lambda kind, obj: receipts.append(obj) if kind == "receipt" else None)
            rt.board.sim.car.plug_in()
            rt.board.sim.car.request_power()
            view = await rt.start_session(source="contract", reference="order-r", energy_limit_wh=20)
            await wait_until(lambda: rt.core.stop_reason is not None, timeout_s=20, what="energy limit")
            rt.board.sim.car.unplug()
            await wait_until(lambda view=view: rt.receipt(view.session_id) is not None, what="receipt")
            assert rt.safety.latched_fault is None
    for _, receipt in receipts:
        verify_receipt(receipt, agency_public_key=read_agency_public_key(cfg.agency_key), require_ocmf=True)
        assert receipt["signature"]["key_id"].endswith("|" + certified)


async def test_a_certificate_for_a_key_the_charger_does_not_hold_is_a_config_error(tmp_path):
    from drivers.configfile import ConfigError

    cfg = sim_config(tmp_path, auth="network")
    cert_path = Path(cfg.key_dir) / "certificate.json"
    cert = json.loads(cert_path.read_text())
    cert_path.write_text(json.dumps(dict(cert, unique_key_id="someone-elses-key")))
    with pytest.raises(ConfigError, match="someone-elses-key"):
        async with open_runtime(cfg, clock=Clock(speed=5)):
            pass


async def test_current_read_before_the_contacts_parted_is_no_weld_when_handled_late(tmp_path):
    """Regression: the weld check took a reading's time from when the dispatcher handled it.

    Seen as a false ``relay_welded`` at an ordinary energy-limit stop at simulated speed 120:
    a reading taken while the contacts were still closed was handled after the weld settle
    time and looked like current flowing after the open. Here the dispatcher stalls on
    purpose (a slow contactor, then a pause after it), so the same happens at every run.
    """
    sim = (Path(__file__).resolve().parent.parent / "board" / "profiles" / "sim.toml").read_text()
    profile = tmp_path / "slow-contactor.toml"
    # No mirror contact: only the meter's current can tell a weld here.
    profile.write_text(sim.replace("switch_delay_ms = 0", "switch_delay_ms = 2000")
                       .replace("feedback = true", "feedback = false"))
    cfg = sim_config(tmp_path, auth="network", board=str(profile))
    settle_ms = 3000
    handled = []  # (handled at, read at, max current) of every reading the gate saw
    opens = []
    async with open_runtime(cfg, clock=Clock(speed=20),
                            safety_settings=SafetySettings(meter_timeout_ms=cfg.meter_timeout_ms,
                                                           weld_settle_ms=settle_ms)) as rt:
        real_event = rt._reading_event

        def spy(reading, time_ms, read_ms=None):
            handled.append((time_ms, read_ms, max(reading.current_a)))
            return real_event(reading, time_ms, read_ms)

        rt._reading_event = spy
        rt.on_relay_command = lambda cmd, t: opens.append(t) if cmd.kind == "open_relay" else None
        car = rt.board.sim.car
        car.plug_in()
        car.request_power()
        view = await rt.start_session(source="contract", reference="order-slow", energy_limit_wh=10_000)
        await wait_until(lambda: rt.core.state == "charging" and handled and handled[-1][2] > 1,
                         what="current flowing")
        relay = rt.board.relay
        real_open = relay.open

        async def open_then_stall():
            await real_open()  # 2 s of contactor travel, the meter still sees current
            await rt.clock.sleep(2.0)  # then the dispatcher is held up: the readings queue

        relay.open = open_then_stall
        await rt.stop_session(view.session_id)
        relay.open = real_open
        opened_ms = opens[-1]
        await wait_until(lambda: any(r is not None and r - opened_ms >= settle_ms for _, r, _ in handled),
                         what="a reading taken after the settle time")
        late = [(t, r, a) for t, r, a in handled
                if r is not None and r - opened_ms < settle_ms and t - opened_ms >= settle_ms and a > 1]
        assert late, f"no reading taken before the settle time was handled after it: {handled[-8:]}"
        assert rt.safety.latched_fault is None
        assert rt.connectors()[0].status != "OUTOFORDER"


async def test_a_finished_session_costs_the_same_after_a_restart_as_its_receipt_says(tmp_path):
    """Parking fees and charging periods come from the live pricing kept with the receipt, not
    from a one-period re-pricing of the journal's start and stop."""
    from tools.sim_site import charge_one_car

    cfg = sim_config(tmp_path, auth="free_vend", tariff="idle_fee", default_limit_wh=100)
    async with open_runtime(cfg, clock=Clock(speed=120)) as rt:
        receipt = await charge_one_car(rt, park_s=400, tell=lambda text: None)
        sid = receipt["receipt_id"].removeprefix("rcpt-")
        live = rt.session(sid)
        assert live.cost.parking_excl_u > 0 and live.periods
    async with open_runtime(cfg, clock=Clock(speed=5)) as rt:
        again = rt.session(sid)
        assert again.cost.total_paise == receipt["cost_paise"]["total"] == live.cost.total_paise
        assert again.cost.parking_excl_u == live.cost.parking_excl_u
        assert [(p.start_s, p.energy_wh, p.parking_s) for p in again.periods] == \
            [(p.start_s, p.energy_wh, p.parking_s) for p in live.periods]


async def test_the_sites_safety_and_socket_settings_reach_the_gate_and_the_session(tmp_path):
    cfg = sim_config(tmp_path, auth="network",
                     extra_toml="\n[safety]\novercurrent_margin_pct = 15\n[socket]\nfinish_hold_ms = 120000\n")
    async with open_runtime(cfg, clock=Clock(speed=5)) as rt:
        assert rt.safety.settings.overcurrent_margin_pct == 15
        assert rt.safety.settings.meter_timeout_ms == cfg.meter_timeout_ms
        assert rt.core.settings.finish_hold_ms == 120000


async def test_a_meter_that_jumps_stops_the_session_billed_to_the_reading_before_the_jump(tmp_path):
    cfg = sim_config(tmp_path, auth="free_vend", default_limit_wh=2000)
    receipts = []
    async with open_runtime(cfg, clock=Clock(speed=20)) as rt:
        rt.add_listener(lambda kind, obj: receipts.append(obj[1]) if kind == "receipt" else None)
        car = rt.board.sim.car
        car.plug_in()
        car.request_power()
        await wait_until(lambda: rt.board.relay.closed, what="relay closed")
        await wait_until(lambda: (rt.sessions()[-1].energy_wh or 0) >= 20, timeout_s=20, what="20 Wh")
        rt.board.sim.server.energy_backwards_wh = -50_000  # the register leaps 50 kWh ahead of the truth
        await wait_until(lambda: rt.safety.latched_fault is not None, what="the meter fault")
        assert rt.safety.latched_fault == "meter_energy_jump" and not rt.board.relay.closed
        await wait_until(lambda: receipts, what="receipt")
        assert rt.connectors()[0].status == "OUTOFORDER"
    receipt = receipts[0]
    verify_receipt(receipt, agency_public_key=read_agency_public_key(cfg.agency_key))
    assert 20 <= receipt["energy_wh"] < 1000  # the 50 kWh leap is not billed
    assert receipt["cost_paise"]["total"] == (receipt["energy_wh"] * 1800 * 118 + 50_000) // 100_000


async def test_the_journal_forgets_delivered_messages_after_a_week(tmp_path, caplog):
    import logging
    import time

    from agent.journal import Journal

    cfg = sim_config(tmp_path, auth="network")
    old = time.time() - 8 * 86400
    with Journal.open(cfg.journal_path, clock=lambda: old) as journal:
        delivered = journal.enqueue("urja/v1/inbox/app", b"old news")
        journal.ack(delivered)
        journal.enqueue("urja/v1/inbox/app", b"still waiting")
    with caplog.at_level(logging.INFO, logger="urja.runtime"):
        async with open_runtime(cfg, clock=Clock(speed=5)) as rt:
            await wait_until(lambda: "journal housekeeping: removed {'messages': 1" in caplog.text,
                             what="the week-old delivered message removed")
            assert rt.journal.pending_count() == 1  # what was not delivered stays
