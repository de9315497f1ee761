"""CDR and Session numbers as clearing houses check them: currents per phase, energy only in
periods with charging time, strictly increasing period starts, at most 4 decimals."""
from __future__ import annotations

import json
import re
from types import SimpleNamespace

import tests.ocpi_harness as base
from agent.core.tariff_model import Period
from agent.service import ConnectorView
from protocols.ocpi.mapping import Renderer, decimals4

pytestmark = base.pytestmark
h = base.h
schemas = base.schemas
T0 = 1_780_000_000


def _numbers(value):
    """Every JSON number in ``value`` (strings such as coordinates follow their own pattern)."""
    if isinstance(value, dict):
        for v in value.values():
            yield from _numbers(v)
    elif isinstance(value, list):
        for v in value:
            yield from _numbers(v)
    elif isinstance(value, float):
        yield value


def _renderer(phases: int) -> Renderer:
    view = ConnectorView(connector_id="1", evse_uid="E1", phases=phases, max_current_a=16)
    service = SimpleNamespace(connectors=lambda: [view])
    return Renderer(service=service, country_code="IN", party_id="URJ")


def _session(periods):
    return SimpleNamespace(evse_uid="E1", connector_id="1", tariff_id="t1", periods=periods)


def _dims(period) -> dict:
    return {d["type"]: d["volume"] for d in period["dimensions"]}


def test_cdr_currents_are_per_phase_not_the_sum_of_the_phases():
    (period,) = _renderer(3).charging_periods(_session([Period(T0, 1000, 600, 0, 45000, 48000)]))
    assert _dims(period)["MAX_CURRENT"] == 16.0 and _dims(period)["MIN_CURRENT"] == 15.0


def test_energy_sits_only_in_periods_with_charging_time_and_starts_strictly_increase():
    periods = [Period(T0, 0, 0, 0), Period(T0, 12, 0, 4), Period(T0 + 4, 900, 596, 0), Period(T0 + 600, 300, 200, 0)]
    out = _renderer(1).charging_periods(_session(periods))
    starts = [p["start_date_time"] for p in out]
    assert starts == sorted(set(starts)), starts
    for period in out:
        dims = _dims(period)
        assert not dims.get("ENERGY") or dims.get("TIME"), period
    assert round(sum(_dims(p).get("ENERGY", 0) for p in out), 4) == 1.212


def test_numbers_carry_at_most_four_decimals_rounded_half_up():
    assert decimals4(240 / 3600) == 0.0667
    assert decimals4(0.00005) == 0.0001
    assert decimals4(1.23444) == 1.2344


async def test_a_cdr_carries_no_number_with_more_than_four_decimals(h, schemas):
    await h.register()
    s = await base._start_by_command(h, "dec")
    h.charger.charge(s, 1237, 240)
    await h.charger.stop_session(s)
    _, body, _ = await h.call("GET", "/2.2.1/cdrs")
    (cdr,) = body["data"]
    schemas.check(cdr, "cdrs", "CDR")
    long = [v for v in _numbers(cdr) if re.search(r"\.\d{5,}", json.dumps(v))]
    assert not long, long
    assert cdr["total_time"] == decimals4(cdr["total_time"])
