"""Soak: resident memory over thousands of sessions, with every binding running.

Method: the real runtime on the simulated board (Modbus-served meter, SQLite journal with
fsync, receipt signing) with all three bindings up: the MQTT network on a local mosquitto,
Beckn over HTTP and OCPI, each on a loopback port. A free-vend car comes again and again:
plug in, charge until the relay closes and a meter reading is billed, leave; each session
ends with its signed receipt, which the MQTT and HTTP bindings queue and the pump handles.
Simulated time runs ``SPEED`` times faster than real time. RSS (``VmRSS`` of /proc/self/status)
and the Python heap (``sys.getallocatedblocks``) are sampled every ``SAMPLE_EVERY`` sessions
after a full collection; growth is the RSS at the end minus the RSS after ``WARMUP``
sessions, and the slope a least-squares fit over the samples after warm-up. The same run then
repeats the soak with SQLite's default page cache (2 MiB a connection), the setting the
RSS growth came from, for comparison.
"""
from __future__ import annotations

import asyncio
import gc
import json
import platform
import subprocess
import sys
import tempfile
import time
from pathlib import Path

SESSIONS = 2000
COMPARE_SESSIONS = SESSIONS
WARMUP = 400
SAMPLE_EVERY = 100
SPEED = 60.0
TARGET_GROWTH_KB = 1024


def rss_kb() -> int:
    with open("/proc/self/status") as fh:
        for line in fh:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def _slope(points: list[tuple[int, int]]) -> float:
    n = len(points)
    if n < 2:
        return 0.0
    mx = sum(x for x, _ in points) / n
    my = sum(y for _, y in points) / n
    den = sum((x - mx) ** 2 for x, _ in points)
    return sum((x - mx) * (y - my) for x, y in points) / den if den else 0.0


async def _wait(predicate, what: str, rt, timeout_s: float = 10.0) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise RuntimeError(f"soak: gave up waiting for {what} (state {rt.core.state}, stop "
                               f"{rt.core.stop_reason}, fault {rt.safety.latched_fault}, pilot {rt.core.pilot})")
        await asyncio.sleep(0.002)


async def _soak(folder: Path, broker_url: str, sessions: int) -> dict:
    from agent.bootstrap import open_runtime
    from agent.clock import Clock
    from agent.config import load_config
    from tools.provision import provision_site

    extra = '[http]\nlisten = "127.0.0.1:0"\n\n[ocpi]\nlisten = "127.0.0.1:0"\n'
    cfg = load_config(provision_site(folder, site_id="bench.soak-1", name="soak", lat=12.9, lon=77.6,
                                     auth="free_vend", broker_url=broker_url, extra_toml=extra))
    samples: list[dict] = []
    t0 = time.perf_counter()
    async with open_runtime(cfg, clock=Clock(speed=SPEED)) as rt:
        assert set(rt.bindings) == {"network", "http", "ocpi"}, rt.bindings
        car = rt.board.sim.car
        receipts = []
        rt.add_listener(lambda kind, obj: receipts.append(1) if kind == "receipt" else None)
        faults = []
        for i in range(1, sessions + 1):
            if rt.safety.latched_fault is not None:
                # A simulated contactor judged under a loaded CPU can look welded at this speed;
                # the soak measures memory, so it notes the fault, resets it and goes on.
                faults.append(rt.safety.latched_fault)
                car.unplug()
                await asyncio.sleep(0.2)
                await rt.local_reset()
            car.plug_in()
            await _wait(lambda: rt.core.session_id is not None, "the session", rt)
            car.request_power()
            await _wait(lambda: rt.board.relay.closed and rt.core.delivered_wh() > 0, "energy", rt)
            n = len(receipts)
            car.unplug()
            await _wait(lambda n=n: len(receipts) > n, "the receipt", rt)
            if i % SAMPLE_EVERY == 0:
                await asyncio.sleep(0.05)  # let the pumps deliver what the session queued
                gc.collect()
                samples.append({"sessions": i, "rss_kb": rss_kb(), "heap_blocks": sys.getallocatedblocks(),
                                "seconds": round(time.perf_counter() - t0, 1)})
                print(f"soak: {samples[-1]}", file=sys.stderr, flush=True)
    after = [s for s in samples if s["sessions"] >= WARMUP]
    base, end = after[0], after[-1]
    return {"sessions": sessions, "warmup_sessions": WARMUP, "samples": samples,
            "rss_after_warmup_kb": base["rss_kb"], "rss_end_kb": end["rss_kb"],
            "rss_growth_after_warmup_kb": end["rss_kb"] - base["rss_kb"],
            "rss_slope_kb_per_1000_sessions": round(_slope([(s["sessions"], s["rss_kb"]) for s in after]) * 1000, 1),
            "heap_blocks_growth_after_warmup": end["heap_blocks"] - base["heap_blocks"],
            "faults_reset": faults,
            "seconds": round(time.perf_counter() - t0, 1)}


def _run(sessions: int, cache_kib: int | None = None) -> dict:
    from tools.broker import Broker

    if cache_kib is not None:
        from agent import sqlite

        sqlite.CACHE_KIB = cache_kib
    with tempfile.TemporaryDirectory(prefix="urja-soak-") as tmp:
        with Broker(tmp) as broker:
            return asyncio.run(_soak(Path(tmp) / "site", broker.url, sessions))


def _fresh(sessions: int, cache_kib: int | None = None) -> dict:
    """One soak in a process of its own: memory a previous soak freed would otherwise be reused."""
    argv = [sys.executable, "-m", "bench.soak", "--json", str(sessions)]
    if cache_kib is not None:
        argv += ["--cache-kib", str(cache_kib)]
    done = subprocess.run(argv, cwd=Path(__file__).resolve().parent.parent, capture_output=True, text=True,
                          timeout=1800)
    if done.returncode != 0:
        raise RuntimeError(f"soak failed: {done.stderr.strip().splitlines()[-1:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def main(out_dir: Path, sessions: int = SESSIONS) -> dict:
    """Our settings, then SQLite's default 2 MiB page cache for comparison, each in a fresh process."""
    ours = _fresh(sessions)
    default_cache = _fresh(COMPARE_SESSIONS, cache_kib=2000)  # SQLite's default (-2000)
    default_cache["samples"] = [(s["sessions"], s["rss_kb"]) for s in default_cache["samples"]]
    result = {**ours, "with_sqlite_default_cache": default_cache}
    doc = {"area": "soak", "method": __doc__, "machine": {"python": platform.python_version(),
                                                          "machine": platform.machine()},
           "results": result, "target_growth_kb": TARGET_GROWTH_KB,
           "targets_met": ours["rss_growth_after_warmup_kb"] <= TARGET_GROWTH_KB}
    (Path(out_dir) / "soak.json").write_text(json.dumps(doc, indent=2) + "\n")
    return doc


if __name__ == "__main__":
    import argparse

    parser = argparse.ArgumentParser(prog="python -m bench.soak")
    parser.add_argument("sessions", type=int, nargs="?", default=SESSIONS)
    parser.add_argument("--cache-kib", type=int, default=None, help="SQLite page cache per connection")
    parser.add_argument("--json", action="store_true", help="one soak in this process, its result as JSON")
    args = parser.parse_args()
    if args.json:
        print(json.dumps(_run(args.sessions, args.cache_kib)))
    else:
        doc = main(Path(__file__).parent / "results", args.sessions)
        print(json.dumps({k: v for k, v in doc["results"].items() if k != "samples"}, indent=2))
