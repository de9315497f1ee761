"""``python -m bench``: run every area's benchmark and write JSON under bench/results/.

Each ``bench/<area>.py`` exposes ``main(out_dir) -> dict``. Areas run one after another in
one process so their ratios are measured under the same conditions; pass area names to
run a subset (``make bench BENCH_ARGS="meter signing"``).
"""
from __future__ import annotations

import argparse
import importlib
import json
import platform
import sys
import time
from pathlib import Path

AREAS = ("meter", "board", "core", "runtime", "journal", "signing", "ocpi", "network", "bench_cds", "beckn2", "startup", "bench_bridge", "load", "soak")
# An area whose module is not ``bench/<area>.py``.
MODULES = {"startup": "bench.bench_startup"}


def machine() -> dict:
    info = {"python": platform.python_version(), "machine": platform.machine(), "system": platform.system()}
    try:
        with open("/proc/cpuinfo") as fh:
            for line in fh:
                if line.startswith("model name"):
                    info["cpu"] = line.split(":", 1)[1].strip()
                    break
        import os

        info["cores"] = os.cpu_count()
    except OSError:
        pass
    return info


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench")
    parser.add_argument("areas", nargs="*", default=list(AREAS), help=f"subset of {', '.join(AREAS)}")
    parser.add_argument("--out", default=str(Path(__file__).parent / "results"))
    args = parser.parse_args(argv)
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    summary = {"machine": machine(), "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "areas": {}}
    failed = []
    for area in args.areas:
        if area not in AREAS:
            parser.error(f"unknown area {area!r} (allowed: {', '.join(AREAS)})")
        print(f"== bench {area}", flush=True)
        mod = importlib.import_module(MODULES.get(area, f"bench.{area}"))
        t0 = time.perf_counter()
        result = mod.main(out)
        summary["areas"][area] = {"seconds": round(time.perf_counter() - t0, 1), "result": result}
        if isinstance(result, dict) and result.get("targets_met") is False:
            failed.append(area)
    (out / "summary.json").write_text(json.dumps(summary, indent=2, default=str) + "\n")
    print(json.dumps({a: v["seconds"] for a, v in summary["areas"].items()}), flush=True)
    if failed:
        print(f"targets missed in: {', '.join(failed)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
