"""``urja selftest [--board NAME|FILE]``: the factory self-test, as a pass/fail table."""
from __future__ import annotations

import argparse
import sys

from drivers.errors import DriverError


def register(subparsers) -> None:
    parser = subparsers.add_parser("selftest", help="check that the board's meter, relay and pilot work")
    parser.add_argument("--board", default="sim", metavar="NAME|FILE",
                        help="board profile: a built-in name or a .toml path (default: sim)")
    parser.add_argument("--relay-timeout-ms", type=int, default=None, metavar="MS",
                        help="how long the relay feedback may take to agree (default: the profile's settle_ms)")
    parser.set_defaults(func=handler)


def handler(args: argparse.Namespace) -> int:
    import asyncio

    from board.profile import load_profile

    profile = load_profile(args.board)
    return asyncio.run(_run(profile, args.relay_timeout_ms))


async def _run(profile, relay_timeout_ms) -> int:
    from board.build import build_board
    from board.selftest import format_table, passed, run_selftest

    for label, value in profile.summary():
        print(f"{label}: {value}")
    print()
    try:
        async with build_board(profile, connect_meter=False) as board:
            results = await run_selftest(board, relay_timeout_ms=relay_timeout_ms)
    except DriverError as exc:
        print(f"urja selftest: cannot bring up board {profile.name!r}: {exc.code}: {exc}", file=sys.stderr)
        return 1
    print(format_table(results))
    return 0 if passed(results) else 1
