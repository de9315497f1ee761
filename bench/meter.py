"""Meter benchmark: bus cost of a full poll per model, and driver throughput over Modbus TCP.

Part 1 is modelled, not timed: for every shipped register map, the planner's reads are
costed with the RTU cost model at 9600 baud (11-bit characters, two 3.5-character
silences per transaction, a configurable meter turnaround) and compared with one read per
quantity and with the exhaustive optimum.

The planner's default objective is bus time alone; the figures also show the cheapest plan
capped at two transactions (``max_transactions=2``), which trades bus time for a tighter
snapshot, and say where no such plan exists (a meter that refuses long reads).

Part 2 is timed: full polls per second through ``ModbusMeter`` against ``SimMeterServer`` on
TCP loopback, against a bare pymodbus client issuing the same reads in a loop (no
decoding, no checks). Both run in alternating rounds in one process; medians of the
rounds are reported with their ratio.
"""
from __future__ import annotations

import asyncio
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

from drivers.meter import DEFAULT_TURNAROUND_MS, list_models, load_map, make_meter
from drivers.meter.plan import BusTiming, exhaustive_plan, naive_plan, plan_for_map
from drivers.meter.simserver import SimMeterServer

TURNAROUNDS_MS = (DEFAULT_TURNAROUND_MS, 50.0)
ROUNDS = 7
POLLS_PER_ROUND = 150


def bus_figures(turnaround_ms: float) -> dict:
    timing = BusTiming(framing="rtu", baudrate=9600, bits_per_char=11, turnaround_ms=turnaround_ms)
    models = {}
    for model in list_models():
        regmap = load_map(model)
        regs = regmap.poll_registers()
        ours = plan_for_map(regmap, timing=timing)
        naive = naive_plan(regs, timing=timing)
        best = exhaustive_plan(regs, timing=timing, max_registers=regmap.max_registers_per_read,
                               unreadable=regmap.unreadable)
        try:
            capped = plan_for_map(regmap, timing=timing, max_transactions=2)
            capped_fig = {"transactions": capped.transactions, "bytes": capped.bytes_on_wire,
                          "bus_ms": round(capped.bus_s * 1000, 2),
                          "over_optimum": round(capped.bus_s / best.bus_s, 4)}
        except ValueError as exc:
            capped_fig = {"infeasible": str(exc)}
        models[model] = {
            "reads": [[r.function, r.address, r.count] for r in ours.reads],
            "plan": {"transactions": ours.transactions, "bytes": ours.bytes_on_wire,
                     "bus_ms": round(ours.bus_s * 1000, 2)},
            "one_read_per_quantity": {"transactions": naive.transactions, "bytes": naive.bytes_on_wire,
                                      "bus_ms": round(naive.bus_s * 1000, 2)},
            "exhaustive_optimum": {"transactions": best.transactions, "bytes": best.bytes_on_wire,
                                   "bus_ms": round(best.bus_s * 1000, 2)},
            "plan_capped_at_2_transactions": capped_fig,
            "plan_over_optimum": round(ours.bus_s / best.bus_s, 4),
            "bus_share_at_1hz": round(ours.bus_s / 1.0, 4),
            "max_registers_per_read": regmap.max_registers_per_read,
        }
    return {"timing": timing.describe(), "models": models}


async def _throughput() -> dict:
    from pymodbus.client import AsyncModbusTcpClient

    sim = SimMeterServer("sdm630")
    port = await sim.start_tcp()
    meter = make_meter(model="sdm630", transport="tcp", host="127.0.0.1", port=port, timeout_ms=1000, retries=0)
    await meter.connect()
    bare = AsyncModbusTcpClient("127.0.0.1", port=port, timeout=1.0, retries=0, reconnect_delay=0.0)
    await bare.connect()
    reads = [(r.function, r.address, r.count) for r in meter.plan.reads]

    async def bare_poll():
        for function, address, count in reads:
            call = bare.read_input_registers if function == 4 else bare.read_holding_registers
            response = await call(address, count=count, device_id=1)
            if response.isError():
                raise RuntimeError(f"bare client got {response}")

    async def timed(poll) -> float:
        start = time.perf_counter()
        for _ in range(POLLS_PER_ROUND):
            await poll()
        return POLLS_PER_ROUND / (time.perf_counter() - start)

    ours_rates, bare_rates = [], []
    try:
        await timed(meter.read)  # warm-up both paths
        await timed(bare_poll)
        for _ in range(ROUNDS):
            ours_rates.append(await timed(meter.read))
            bare_rates.append(await timed(bare_poll))
    finally:
        bare.close()
        await meter.close()
        await sim.stop()
    ours_med, bare_med = statistics.median(ours_rates), statistics.median(bare_rates)
    return {
        "model": "sdm630",
        "transactions_per_poll": len(reads),
        "driver_polls_per_s_median": round(ours_med, 1),
        "bare_pymodbus_polls_per_s_median": round(bare_med, 1),
        "ratio_driver_over_bare": round(ours_med / bare_med, 3),
        "rounds": ROUNDS,
        "polls_per_round": POLLS_PER_ROUND,
        "driver_rounds": [round(x, 1) for x in ours_rates],
        "bare_rounds": [round(x, 1) for x in bare_rates],
    }


def main(out_dir: Path) -> dict:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    import pymodbus

    bus = {f"turnaround_{int(t)}ms": bus_figures(t) for t in TURNAROUNDS_MS}
    default = bus[f"turnaround_{int(DEFAULT_TURNAROUND_MS)}ms"]["models"]
    throughput = asyncio.run(_throughput())
    result = {
        "area": "meter",
        "method": __doc__.strip(),
        "machine": {"platform": platform.platform(), "python": sys.version.split()[0],
                    "cpus": os.cpu_count(), "pymodbus": pymodbus.__version__},
        "bus_at_9600_baud": bus,
        "throughput_tcp_loopback": throughput,
        "targets": {
            "max_2_transactions_per_poll": {m: v["plan"]["transactions"] <= 2 for m, v in default.items()},
            "within_10pct_of_optimum": all(v["plan_over_optimum"] <= 1.10 for v in default.values()),
            "under_25pct_bus_at_1hz": {m: v["bus_share_at_1hz"] < 0.25 for m, v in default.items()},
            "driver_over_bare_at_least_0_8": throughput["ratio_driver_over_bare"] >= 0.8,
        },
    }
    (out_dir / "meter.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1] if len(sys.argv) > 1 else "bench/results")), indent=2))
