"""Check a built wheel's file list: the five packages and their data, nothing else.

``tests/test_packaging.py`` checks the same from ``setup.cfg``; this reads the wheel that was
really built, so a setuptools that discovers differently is caught too.

    python .ci/wheel_contents.py dist/urja-*.whl
"""
from __future__ import annotations

import sys
import zipfile

TOP_LEVEL = {"agent", "board", "drivers", "protocols", "tools"}
NEEDED = ("agent/data/tariffs/flat.toml", "board/profiles/sim.toml", "drivers/meter/maps/sdm630.toml",
          "tools/cli.py")


def problems(names: list[str]) -> list[str]:
    found = []
    tops = {n.split("/")[0] for n in names if not n.split("/")[0].endswith(".dist-info")}
    if tops != TOP_LEVEL:
        found.append(f"top-level names {sorted(tops)}, expected {sorted(TOP_LEVEL)}")
    found += [f"{n} is test code" for n in names if "/tests/" in n or n.rsplit("/", 1)[-1].startswith("test_")]
    found += [f"{n} is missing" for n in NEEDED if n not in names]
    found += [f"{n} is a compiled or cached file" for n in names if "__pycache__" in n or n.endswith(".pyc")]
    return found


def main(argv: list[str]) -> int:
    if len(argv) != 1:
        print("usage: wheel_contents.py WHEEL", file=sys.stderr)
        return 2
    with zipfile.ZipFile(argv[0]) as wheel:
        names = wheel.namelist()
    found = problems(names)
    for problem in found:
        print(f"wheel-check: {argv[0]}: {problem}", file=sys.stderr)
    if not found:
        print(f"wheel-check: {len(names)} files, packages {', '.join(sorted(TOP_LEVEL))} with their data")
    return 1 if found else 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
