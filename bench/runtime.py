"""Runtime benchmark: pilot C->B and C->A to relay open, through the whole agent on the sim board.

Method: the real runtime (dispatcher, safety gate, session core, SQLite journal with fsync,
receipts) on the simulated board with a Modbus-served meter. The car cycles: request power,
wait until the relay is closed, then either pause (C->B) or unplug (C->A, which also ends the
session: journal stop, receipt signing and storage). Latency is from the pilot change (the
car's call, which notifies the runtime synchronously) to the relay's contacts opening (its
listener), wall time. Medians, p99 and max over all cycles of one run.
"""
from __future__ import annotations

import asyncio
import json
import platform
import tempfile
import time
from pathlib import Path

CYCLES = 150


def _pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


async def _measure(folder: Path) -> dict:
    from agent.bootstrap import open_runtime
    from agent.clock import Clock
    from agent.config import load_config
    from tools.provision import provision_site

    cfg = load_config(provision_site(folder, site_id="bench.site-1", name="bench", lat=12.9, lon=77.6,
                                     auth="free_vend"))
    pause_ms, unplug_ms = [], []
    async with open_runtime(cfg, clock=Clock(speed=1)) as rt:
        relay = rt.board.relay
        car = rt.board.sim.car
        opened = asyncio.Event()
        closed = asyncio.Event()
        mark = {"t": 0.0, "open_at": 0.0}

        def on_contacts(is_closed: bool) -> None:
            if is_closed:
                closed.set()
            else:
                mark["open_at"] = time.perf_counter()
                opened.set()

        relay.add_listener(on_contacts)
        receipts = []
        rt.add_listener(lambda kind, obj: receipts.append(obj) if kind == "receipt" else None)
        for i in range(CYCLES):
            car.plug_in()
            while rt.core.session_id is None:
                await asyncio.sleep(0.001)
            closed.clear()
            car.request_power()
            await asyncio.wait_for(closed.wait(), 10)
            opened.clear()
            unplug = i % 2 == 1
            t0 = time.perf_counter()
            if unplug:
                n = len(receipts)
                car.unplug()
            else:
                car.pause()
            await asyncio.wait_for(opened.wait(), 10)
            (unplug_ms if unplug else pause_ms).append((mark["open_at"] - t0) * 1000)
            if unplug:
                while len(receipts) == n:
                    await asyncio.sleep(0.001)
            else:
                car.unplug()
                while rt.core.session_id is not None and rt.core.state not in ("finished", "idle"):
                    await asyncio.sleep(0.001)
    out = {}
    for name, vals in (("c_to_b_pause", pause_ms), ("c_to_a_unplug_with_session_end", unplug_ms)):
        out[name] = {"count": len(vals), "p50_ms": round(_pct(vals, 0.5), 3), "p99_ms": round(_pct(vals, 0.99), 3),
                     "max_ms": round(max(vals), 3)}
    return out


def main(out_dir: Path) -> dict:
    with tempfile.TemporaryDirectory(prefix="urja-bench-") as tmp:
        result = asyncio.run(_measure(Path(tmp)))
    doc = {"area": "runtime", "method": __doc__, "machine": {"python": platform.python_version(),
                                                             "machine": platform.machine()},
           "results": result, "target_ms": 100,
           "targets_met": all(v["max_ms"] < 100 for v in result.values())}
    (Path(out_dir) / "runtime.json").write_text(json.dumps(doc, indent=2) + "\n")
    return doc


if __name__ == "__main__":
    print(json.dumps(main(Path(__file__).parent / "results")["results"], indent=2))
