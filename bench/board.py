"""Board benchmark: what the pilot sampler costs a small board, and how fast a board comes up.

Figures:

* ``pilot_sample_us``: one ``LinuxPilot.sample()`` (two IIO reads, classification, diode
  check) against a fake sysfs tree in a temporary directory. Real sysfs reads also cross the
  kernel driver (SPI/I2C ADC), so this is the agent's own share, not the ADC's.
* ``sampler_cpu_pct``: process CPU time while the ``pilot-sampler`` task runs at its default
  10 ms interval for a few seconds, minus an idle event loop over the same wall time, as a
  percentage of one core. ``sampler_cpu_predicted_pct`` (sample cost / interval) is the
  cross-check; the measured figure includes the event loop's own wake-ups.
* ``sim_board_up_down_ms``: ``build_board("sim")`` entry and exit (Modbus TCP server on
  loopback, client connect, serial read, relay and car set-up, full teardown).
* ``selftest_ms``: ``run_selftest`` on the running sim board.

All are medians of repeated rounds in one process; nothing here is a pass/fail target.
"""
from __future__ import annotations

import asyncio
import json
import os
import platform
import statistics
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from board.build import build_board  # noqa: E402
from board.selftest import run_selftest  # noqa: E402
from drivers.pilot.linux import LinuxPilot  # noqa: E402

SCALE_MV = 0.805664062


def _fake_sysfs(root: Path) -> None:
    pwm = root / "class/pwm/pwmchip0/pwm0"
    pwm.mkdir(parents=True)
    for name in ("period", "duty_cycle", "enable"):
        (pwm / name).write_text("0\n")
    iio = root / "bus/iio/devices/iio:device0"
    iio.mkdir(parents=True)
    (iio / "in_voltage_scale").write_text(f"{SCALE_MV}\n")
    # 9 V positive plateau, -12 V negative plateau with gain 7.2727 and offset -12 V
    for channel, volts in ((0, 9.0), (1, -12.0)):
        raw = round((volts + 12.0) / 7.2727 * 1000 / SCALE_MV)
        (iio / f"in_voltage{channel}_raw").write_text(f"{raw}\n")


def _pilot(root: Path, **kw) -> LinuxPilot:
    return LinuxPilot(sysfs_root=root, adc_channel=0, adc_negative_channel=1, adc_gain=7.2727,
                      adc_offset_v=-12.0, **kw)


async def _sample_cost_us(root: Path, rounds: int = 5, per_round: int = 2000) -> list[float]:
    pilot = _pilot(root, sample_interval_ms=1000)
    await pilot.start()
    await pilot.set_offered_current(16)
    results = []
    try:
        for _ in range(rounds):
            t0 = time.perf_counter()
            for _ in range(per_round):
                await pilot.sample()
            results.append((time.perf_counter() - t0) / per_round * 1e6)
    finally:
        await pilot.release()
    return results


async def _cpu_pct(root: Path | None, seconds: float) -> float:
    pilot = _pilot(root) if root is not None else None
    if pilot is not None:
        await pilot.start()
        await pilot.set_offered_current(16)
    cpu0, wall0 = time.process_time(), time.perf_counter()
    await asyncio.sleep(seconds)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    if pilot is not None:
        await pilot.release()
    return cpu / wall * 100


async def _board_timings(rounds: int = 7) -> tuple[list[float], list[float]]:
    up_down, selftest = [], []
    for _ in range(rounds):
        t0 = time.perf_counter()
        async with build_board("sim") as board:
            t1 = time.perf_counter()
            results = await run_selftest(board)
            t2 = time.perf_counter()
            assert all(r.status == "pass" for r in results), results
        t3 = time.perf_counter()
        up_down.append(((t1 - t0) + (t3 - t2)) * 1000)
        selftest.append((t2 - t1) * 1000)
    return up_down, selftest


async def _run(out_dir: Path) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        _fake_sysfs(root)
        sample_us = await _sample_cost_us(root)
        idle, busy = [], []
        for _ in range(3):
            idle.append(await _cpu_pct(None, 2.0))
            busy.append(await _cpu_pct(root, 2.0))
    up_down, selftest = await _board_timings()
    sample_median = statistics.median(sample_us)
    result = {
        "area": "board",
        "machine": {"python": platform.python_version(), "machine": platform.machine(), "cores": os.cpu_count()},
        "method": __doc__.strip().split("\n\n", 1)[1],
        "pilot_sample_us": round(sample_median, 1),
        "pilot_sample_us_rounds": [round(x, 1) for x in sample_us],
        "sampler_interval_ms": 10,
        "sampler_cpu_predicted_pct": round(sample_median / 10_000 * 100, 2),
        "sampler_cpu_pct": round(statistics.median(b - i for b, i in zip(busy, idle, strict=True)), 2),
        "idle_loop_cpu_pct": round(statistics.median(idle), 2),
        "sim_board_up_down_ms": round(statistics.median(up_down), 1),
        "selftest_ms": round(statistics.median(selftest), 1),
    }
    out_dir.mkdir(parents=True, exist_ok=True)
    (out_dir / "board.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


def main(out_dir: Path) -> dict:
    return asyncio.run(_run(Path(out_dir)))


if __name__ == "__main__":
    print(json.dumps(main(Path(__file__).parent / "results"), indent=2))
