"""A poller never misses a change and never sees time go back: ``last_updated`` of a Session
or CDR is stored, the same content always reports the same one, and date filters use it."""
from __future__ import annotations

from types import SimpleNamespace

import tests.ocpi_harness as base
from agent.journal import Journal
from agent.service import SessionView
from agent.views import RuntimeViews
from protocols.ocpi.wire import parse_time

pytestmark = base.pytestmark
h = base.h
schemas = base.schemas


def test_a_session_started_before_the_last_sync_and_changed_after_it_is_listed(tmp_path):
    journal = Journal.open(tmp_path / "j.sqlite")
    try:
        journal.start_session("S1", connector_id=1, auth={"source": "ocpi"}, start_wh=0, start_time_s=1000.0,
                              meter_serial="M1")
        journal.stop_session("S1", stop_wh=500, stop_time_s=5000.0, reason="remote")
        runtime = SimpleNamespace(journal=journal, _views={}, _view_from_record=lambda rec: SessionView(
            session_id=rec.session_id, last_updated_s=rec.stop_time_s or rec.last_time_s))
        found = RuntimeViews.sessions(runtime, since_s=3000.0)
        assert [v.session_id for v in found] == ["S1"]
        assert RuntimeViews.sessions(runtime, since_s=6000.0) == []
    finally:
        journal.close()


async def test_last_updated_of_a_session_never_goes_back_and_stays_put_while_nothing_changes(h):
    await h.register()
    s = await base._start_by_command(h, "fresh")
    h.charger.charge(s, 1000, 600)
    _, body, _ = await h.call("GET", "/2.2.1/sessions")
    first = body["data"][0]["last_updated"]
    _, body, _ = await h.call("GET", "/2.2.1/sessions")
    assert body["data"][0]["last_updated"] == first, "the same content must report the same last_updated"
    # As after a restart: the charger's own view of the session says an earlier time.
    view = h.charger.session(s)
    view.last_updated_s = parse_time(first, "t") - 0.829
    view.energy_wh += 1
    _, body, _ = await h.call("GET", "/2.2.1/sessions")
    later = body["data"][0]["last_updated"]
    assert parse_time(later, "t") > parse_time(first, "t"), (first, later)
    _, body, _ = await h.call("GET", "/2.2.1/sessions", params={"date_from": later})
    assert [x["id"] for x in body["data"]] == [s]
