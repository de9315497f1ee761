"""The site's share of current in the portable core: the session applies it, the gate enforces it."""
from __future__ import annotations

import importlib.util
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.bootstrap import open_runtime
from agent.clock import Clock
from agent.core.auth import Authorization
from agent.core.safety import SafetySettings, SafetySupervisor
from agent.core.session import (
    AuthGranted,
    CurrentLimit,
    MeterReading,
    PilotChanged,
    Session,
    SessionSettings,
)
from agent.core.session_current import offer_for
from tests.support import sim_config, wait_until

SCENARIOS = Path(__file__).resolve().parent / "portable" / "load_scenarios.py"


def scenario_lines() -> list[str]:
    spec = importlib.util.spec_from_file_location("load_scenarios", SCENARIOS)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.run()


def test_the_offer_is_the_share_rounded_down_and_nothing_below_six_amps():
    assert offer_for(None, 32) == 32
    assert offer_for(40, 32) == 32
    assert offer_for(20.7, 32) == 20
    assert offer_for(6, 32) == 6
    assert offer_for(5.99, 32) == 0
    assert offer_for(0, 16) == 0


def test_the_load_scenarios_show_each_rule():
    text = "\n".join(scenario_lines())
    for expected in (
        "share:04 AuthGranted(a1,200) -> journal_record(authorized",  # the share is offered at once
        "set_offered_current(20)",
        "share:06 CurrentLimit(10,2000) -> set_offered_current(10) | state=charging relay=True ceiling=32",
        "share:10 MeterReading(6000,1013,13800,(20000m,20000m,20000m)) ->  | state=charging relay=True ceiling=20",
        "share:19 tick(14000) -> open_relay(overcurrent)",
        "obeys:09 tick(20001) ->  | state=charging relay=True",
        "pause:11 tick(7000) -> open_relay(current_limit)",
        "pause:15 CurrentLimit(8,10500) -> set_offered_current(8); close_relay(permitted)",
        "pause:19 PilotChanged(B,13000) -> open_relay(pilot_B)",
        "early:05 PilotChanged(C,300) -> set_offered_current(0)",
        "early:07 CurrentLimit(12500m,400) -> set_offered_current(12); close_relay(permitted)",
        "socket:05 CurrentLimit(0,4000) -> open_relay(current_limit) | state=suspended_evse",
        "socket:36 CurrentLimit(7,125500) -> close_relay(permitted) | state=charging",
        "bad:nan error bad-event", "bad:reaction error unsafe-config",
    ):
        assert expected in text, expected
    # Two minutes switched off is neither a finished car nor idle time.
    assert "ev_finished" not in text
    assert "socket:41 MeterReading(129000,503,2300,(10000m)) ->  | state=charging relay=True ceiling=15 idle_ms=0" in text


def _auth() -> Authorization:
    return Authorization(auth_id="a1", source="contract", token="order")


@settings(max_examples=150, deadline=None)
@given(mode=st.sampled_from(["pilot", "socket"]),
       steps=st.lists(st.tuples(st.integers(100, 3000), st.floats(0, 40, allow_nan=False),
                                st.floats(0, 34, allow_nan=False), st.booleans()),
                      min_size=1, max_size=40))
def test_the_gate_never_offers_above_the_share_nor_powers_a_paused_connector(mode, steps):
    """Random shares and car draws: the offer never exceeds the share, and a connector paused for
    the site has no power beyond the car's reaction time (a socket outlet: none at all)."""
    session = Session(settings=SessionSettings(mode=mode, max_current_a=32), new_session_id=lambda: "s1")
    gate = SafetySupervisor(session=session, settings=SafetySettings())
    reaction_ms = gate.settings.ev_reaction_ms
    now = 0
    energy_wh = 1000
    gate.handle(MeterReading(now, energy_wh, 0, 0.0))
    if mode == "pilot":
        gate.handle(PilotChanged("C", now))
    gate.handle(AuthGranted(_auth(), now))
    limit_a = None
    paused_since = None
    for gap_ms, share_a, draw_a, change in steps:
        now += gap_ms
        out = []
        if change:
            out += gate.handle(CurrentLimit(share_a, now))
            limit_a = share_a
            if offer_for(share_a, 32) == 0:
                paused_since = now if paused_since is None else paused_since
            else:
                paused_since = None
        drawn_a = draw_a if gate.relay_closed else 0.0
        energy_wh += 1
        out += gate.handle(MeterReading(now, energy_wh, 230 * drawn_a, drawn_a))
        out += gate.tick(now)
        for command in out:
            if command.kind == "set_offered_current" and mode == "pilot" and limit_a is not None:
                assert command.current_a <= offer_for(limit_a, 32)
        if paused_since is not None and gate.relay_closed:
            assert mode == "pilot" and now - paused_since < reaction_ms


@pytest.mark.runtime
async def test_a_limit_set_on_the_runtime_reaches_the_pilot_and_the_car_follows_it(tmp_path):
    cfg = sim_config(tmp_path, auth="free_vend")
    async with open_runtime(cfg, clock=Clock(speed=20)) as rt:
        car = rt.board.sim.car
        car.plug_in()
        await wait_until(lambda: rt.core.session_id is not None, what="free-vend authorization")
        car.request_power()
        await wait_until(lambda: rt.board.relay.closed and rt.board.pilot.draw_a == 16, what="charging at 16 A")
        await rt.set_current_limit(8.4)
        assert rt.safety.limit_a == 8.4
        await wait_until(lambda: rt.board.pilot.draw_a == 8, what="the car following 8 A")
        assert rt.board.relay.closed
        await rt.set_current_limit(2)
        # The car stops drawing when nothing is offered; the relay opens within its reaction time.
        await wait_until(lambda: not rt.board.relay.closed, what="relay open for the site")
        assert rt.core.state in ("suspended_ev", "suspended_evse")  # the simulated car goes to B
        await rt.set_current_limit(32)
        await wait_until(lambda: rt.board.relay.closed and rt.board.pilot.draw_a == 16, what="charging again")
        assert rt.core.session_id is not None
