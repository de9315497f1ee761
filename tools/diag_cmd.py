"""``urja diag``: the support bundle a site owner can send, with every secret removed (``tools/diag.py``)."""
from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser("diag", help="write a support bundle: versions, config without secrets, recent log, "
                                           "fault history, meter and bus counters, self-test")
    p.add_argument("--config", default=None, metavar="FILE", help="site configuration (default /etc/urja/urja.toml)")
    p.add_argument("--out", default=".", metavar="DIR", help="where to write urja-diag-SITE-TIME.tar.gz (default .)")
    p.add_argument("--log", default=None, metavar="FILE", help="take the recent log from this file "
                                                                "(default: journalctl -u urja)")
    p.add_argument("--status", default=None, metavar="FILE",
                   help="the running agent's counters (default /run/urja/status.json)")
    p.add_argument("--selftest", action="store_true", help="also run the board self-test (stop the agent first: "
                                                           "it switches the relay)")
    p.set_defaults(func=handler)


def handler(args: argparse.Namespace) -> int:
    from agent.config import DEFAULT_CONFIG_PATH
    from tools.diag import make_diag

    target = make_diag(Path(args.config) if args.config else DEFAULT_CONFIG_PATH, Path(args.out),
                       log_file=Path(args.log) if args.log else None,
                       status_file=Path(args.status) if args.status else None, run_selftest=args.selftest)
    print(f"support bundle: {target} (no keys, passwords or tokens in it)")
    return 0
