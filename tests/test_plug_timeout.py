"""A start for a car that never comes lapses after the plug-in timeout, whichever way it started."""
from __future__ import annotations

import pytest

from agent.bootstrap import open_runtime
from agent.clock import Clock
from agent.config import load_config
from agent.core.auth import Authorization
from agent.core.session import (
    PLUG_TIMER,
    AuthGranted,
    MeterReading,
    PilotChanged,
    Session,
    SessionSettings,
    TimerFired,
)
from drivers.configfile import ConfigError
from tests.support import sim_config, wait_until


def _grant(session, at_ms):
    return session.handle(AuthGranted(Authorization(auth_id="a", source="ocpi", token="t"), at_ms))


def _timer(out, timer_id):
    return [c.at_ms for c in out if c.kind == "schedule_timer" and c.timer_id == timer_id]


def test_an_authorization_without_a_car_lapses_at_the_plug_timeout():
    s = Session(settings=SessionSettings(plug_timeout_ms=60000))
    s.handle(MeterReading(0, 100, 0, 0.0))
    assert _timer(_grant(s, 1000), PLUG_TIMER) == [61000]
    s.handle(TimerFired(PLUG_TIMER, 60999))  # early: nothing happens
    assert s.state == "authorized_waiting_for_car"
    s.handle(TimerFired(PLUG_TIMER, 61000))
    assert s.state == "idle" and s.session_id is None and s.active_auth_id is None


def test_a_car_plugged_in_before_the_timeout_keeps_the_authorization():
    s = Session(settings=SessionSettings(plug_timeout_ms=60000))
    s.handle(MeterReading(0, 100, 0, 0.0))
    _grant(s, 1000)
    out = s.handle(PilotChanged("B", 30000))
    assert [c.timer_id for c in out if c.kind == "cancel_timer"] == [PLUG_TIMER]
    s.handle(TimerFired(PLUG_TIMER, 61000))
    assert s.state == "authorized_waiting_for_car" and s.active_auth_id == "a"


def test_the_plug_timeout_is_bounded_and_named():
    with pytest.raises(Exception, match="plug_timeout_ms"):
        SessionSettings(plug_timeout_ms=5)


def test_the_site_sets_the_plug_timeout(tmp_path):
    cfg = sim_config(tmp_path)
    path = cfg.path
    text = open(path).read().replace("[charging]\n", "[charging]\nplug_timeout_s = 5\n")
    open(path, "w").write(text)
    with pytest.raises(ConfigError, match="charging.plug_timeout_s: out of range"):
        load_config(path)
    open(path, "w").write(text.replace("plug_timeout_s = 5", "plug_timeout_s = 90"))
    assert load_config(path).plug_timeout_s == 90


@pytest.mark.runtime
@pytest.mark.parametrize("source, auth, token", [("ocpi", "network", "TOKEN-1"),
                                                  ("contract", "network", None),
                                                  ("allow_list", "network", "DEMO-RFID-0001"),
                                                  ("free_vend", "free_vend", None)])
async def test_a_start_with_no_car_frees_the_connector_after_the_timeout(tmp_path, source, auth, token):
    cfg = sim_config(tmp_path, auth=auth)
    text = open(cfg.path).read().replace("[charging]\n", "[charging]\nplug_timeout_s = 60\n")
    open(cfg.path, "w").write(text)
    cfg = load_config(cfg.path)
    clock = Clock(speed=60)
    async with open_runtime(cfg, clock=clock) as rt:
        started_s = rt.now_s()
        view = await rt.start_session(source=source, reference="r1", token=token, energy_limit_wh=1000)
        assert view.session_id is not None
        await wait_until(lambda: rt.connectors()[0].status == "CHARGING" or rt.core.session_id is not None,
                         what="the start")
        await wait_until(lambda: rt.core.session_id is None, timeout_s=10, what="the plug-in timeout")
        waited_s = rt.now_s() - started_s
        assert rt.connectors()[0].status == "AVAILABLE"
    assert 60 <= waited_s < 120
