"""Benchmark of the portable core: gate reaction latency and how close limits stop.

Three measurements, all in-process with a simulated clock (no hardware, no sleeps):

1. Reaction latency: 10,000 simulated events (meter readings, pilot changes, ticks, stops and
   re-authorizations) through ``SafetySupervisor``; wall time of each call, for all calls and for
   the calls that returned a relay command.
2. Pilot C->B path: time from handing ``PilotChanged("B")`` to the supervisor to having the
   ``OpenRelay`` command, and to having also run the journal hook over the batch's journal records
   (``journal_write`` argument: the runtime's journal write; a no-op by default).
3. Limit overshoot: energy delivered beyond an energy or money limit at 7.4 kW and 22 kW with a
   1 s meter poll, comparing the predictive stop (timer at the predicted crossing) with a naive
   check on each poll. The meter register is an int of Wh with a random fractional start, the
   poll phase is random; the "true" energy is the integral of the constant power while closed.
"""
from __future__ import annotations

import json
import os
import platform
import random
import statistics
import sys
import time
from pathlib import Path

from agent.core.auth import Authorization
from agent.core.safety import SafetySupervisor
from agent.core.session import AuthGranted, MeterReading, PilotChanged, Session, StopRequested, TimerFired

EVENTS = 10_000
PILOT_CYCLES = 2_000
OVERSHOOT_RUNS = 40
POLL_MS = 1000
MS_PER_HOUR = 3_600_000


def _percentiles(samples_ns):
    ordered = sorted(samples_ns)
    n = len(ordered)

    def pick(q):
        return ordered[min(n - 1, int(q * n))] / 1e6

    return {"count": n, "p50_ms": pick(0.50), "p99_ms": pick(0.99), "max_ms": ordered[-1] / 1e6}


def _supervisor():
    session = Session(cost=lambda e, t, i: e * 18)
    return SafetySupervisor(session=session)


def measure_latency(seed=1):
    rng = random.Random(seed)
    sup = _supervisor()
    now = 0
    energy = 100_000
    seq = 0
    all_ns, relay_ns = [], []
    sup.boot(0)
    sup.handle(MeterReading(0, energy, 0, 0.0))
    sup.handle(PilotChanged("C", 0))
    for _ in range(EVENTS):
        now += rng.randint(10, 400)
        roll = rng.random()
        if sup.session.active_auth_id is None and not sup.session.busy:
            seq += 1
            event = AuthGranted(Authorization(auth_id="b%d" % seq, source="free_vend",
                                              energy_limit_wh=rng.randint(5, 50)), now)
        elif roll < 0.45:
            energy += rng.randint(0, 3) if sup.relay_closed else 0
            # Current flows only through a closed relay (or the gate would rightly call it a weld).
            current = rng.uniform(0, 33) if sup.relay_closed else 0.0
            event = MeterReading(now, energy, 7400 if current else 0, (current, 0.0, 0.0))
        elif roll < 0.65:
            event = PilotChanged(rng.choice(["B", "C", "C"]), now)
        elif roll < 0.67:
            event = StopRequested(now)
        elif roll < 0.70 and sup.session.pilot in ("B", "C"):
            event = PilotChanged("A", now)
        else:
            event = None
        start = time.perf_counter_ns()
        out = sup.tick(now) if event is None else sup.handle(event)
        took = time.perf_counter_ns() - start
        all_ns.append(took)
        if out and out[0].kind in ("open_relay", "close_relay") or any(c.kind == "close_relay" for c in out):
            relay_ns.append(took)
        if sup.session.state == "finishing" and rng.random() < 0.5:
            sup.handle(PilotChanged("A", now))
            sup.handle(PilotChanged("C", now))
    assert sup.latched_fault is None, "the simulated run should not latch faults"
    return {"all_events": _percentiles(all_ns), "relay_events": _percentiles(relay_ns)}


def measure_pilot_path(journal_write=None):
    write = journal_write if journal_write is not None else (lambda record: None)
    sup = _supervisor()
    sup.boot(0)
    now = 0
    sup.handle(MeterReading(now, 1000, 0, 0.0))
    sup.handle(PilotChanged("C", now))
    sup.handle(AuthGranted(Authorization(auth_id="p", source="free_vend"), now))
    to_relay, to_journal = [], []
    for _ in range(PILOT_CYCLES):
        now += 500
        sup.handle(MeterReading(now, 1000, 7400, 32.0))
        now += 10
        start = time.perf_counter_ns()
        out = sup.handle(PilotChanged("B", now))
        relay_at = time.perf_counter_ns()
        assert out[0].kind == "open_relay"
        for command in out:
            if command.kind == "journal_record":
                write(command)
        done = time.perf_counter_ns()
        to_relay.append(relay_at - start)
        to_journal.append(done - start)
        now += 10
        sup.handle(PilotChanged("C", now))
    return {"to_relay_command": _percentiles(to_relay), "with_journal_hook": _percentiles(to_journal)}


def _simulate(power_w, limit_kind, limit, predictive, rng):
    """One session; returns true energy delivered (Wh, float) when the relay opened."""
    cost = (lambda e, t, i: e * 18)  # 18 paise per Wh = Rs 18 per kWh
    session = Session(cost=cost)
    sup = SafetySupervisor(session=session)
    register0 = 50_000 + rng.random()            # true register, Wh, with a random fraction
    phase = rng.randint(1, POLL_MS - 1)            # poll phase relative to the start
    t0 = 0
    sup.boot(t0)
    sup.handle(MeterReading(t0, int(register0), 0, 0.0))
    sup.handle(PilotChanged("C", t0))
    limits = {"energy_limit_wh": limit} if limit_kind == "energy" else {"money_limit_paise": limit}
    sup.handle(AuthGranted(Authorization(auth_id="o", source="contract", token="x", **limits), t0))
    assert sup.relay_closed
    timer_at = None
    poll = t0 + phase
    limit_wh = limit if limit_kind == "energy" else limit / 18
    while True:
        if predictive and timer_at is not None and timer_at <= poll:
            now, event = timer_at, TimerFired("session.limit", timer_at)
            timer_at = None
        else:
            now = poll
            true_wh = power_w * (now - t0) / MS_PER_HOUR
            event = MeterReading(now, int(register0 + true_wh), power_w, power_w / 230 / 3)
            poll += POLL_MS
        if not predictive and event.kind == "meter_reading":
            delivered = event.energy_wh - int(register0)
            if delivered >= limit_wh:
                return power_w * (now - t0) / MS_PER_HOUR
            sup.handle(event)
            continue
        out = sup.handle(event)
        for command in out:
            if command.kind == "schedule_timer" and command.timer_id == "session.limit":
                timer_at = command.at_ms
            elif command.kind == "cancel_timer" and command.timer_id == "session.limit":
                timer_at = None
        if not sup.relay_closed:
            return power_w * (now - t0) / MS_PER_HOUR


def measure_overshoot(seed=7):
    rng = random.Random(seed)
    results = {}
    for power_w in (7400, 22000):
        for kind, limit in (("energy", 1000), ("energy", 10_000), ("money", 18_000), ("money", 180_000)):
            limit_wh = limit if kind == "energy" else limit / 18
            allowed = max(0.005 * limit_wh, 5.0)
            row = {"limit": limit, "limit_wh": limit_wh, "allowed_overshoot_wh": allowed}
            for mode in ("predictive", "naive"):
                over = [_simulate(power_w, kind, limit, mode == "predictive", rng) - limit_wh
                        for _ in range(OVERSHOOT_RUNS)]
                row[mode] = {"median_wh": round(statistics.median(over), 3), "max_wh": round(max(over), 3),
                             "min_wh": round(min(over), 3)}
            row["predictive_within_target"] = row["predictive"]["max_wh"] <= allowed
            results["%d_w_%s_%d" % (power_w, kind, limit)] = row
    return results


def main(out_dir: Path, journal_write=None) -> dict:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    result = {
        "area": "core",
        "method": __doc__.strip(),
        "machine": {"python": sys.version.split()[0], "implementation": platform.python_implementation(),
                    "platform": platform.platform(), "cpus": os.cpu_count()},
        "targets": {"relay_event_p99_ms": 5.0, "pilot_c_to_b_ms": 100.0,
                    "overshoot": "max(0.5 % of limit, 5 Wh)"},
        "latency": measure_latency(),
        "pilot_c_to_b": measure_pilot_path(journal_write),
        "overshoot": measure_overshoot(),
    }
    (out_dir / "core.json").write_text(json.dumps(result, indent=2, sort_keys=True) + "\n")
    return result


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("bench/results")), indent=2))
