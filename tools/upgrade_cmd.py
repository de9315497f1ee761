"""``urja upgrade``: switch to an installed version with a health check, go back, or show which runs.

The work is ``tools/upgrade.py``, which the bundle's ``install.sh`` also runs with the system's
Python (standard library only), so the decision to go back never depends on the new version.
"""
from __future__ import annotations

import argparse


def register(subparsers) -> None:
    p = subparsers.add_parser("upgrade", help="switch versions (side by side under a prefix) with a health "
                                              "check and automatic rollback; roll back by hand; status")
    p.add_argument("action", choices=["activate", "rollback", "status"],
                   help="activate VERSION: switch and health-check, going back by itself on failure; "
                        "rollback: back to the previous version, journal carried back; status: what runs")
    p.add_argument("version", nargs="?", help="with activate: the installed version to switch to")
    p.add_argument("--prefix", default="/opt/urja", help="where versions/ and the current link are (default /opt/urja)")
    p.add_argument("--config", default="/etc/urja/urja.toml", help="site configuration")
    p.add_argument("--no-service", action="store_true", help="no systemd: do not stop or start urja.service")
    p.add_argument("--timeout-s", type=float, default=120.0, help="health check deadline (default 120 s)")
    p.add_argument("--user", default="urja", help="when root: run the health check as this user, as the service "
                                                  "runs (default urja)")
    p.set_defaults(func=handler)


def handler(args: argparse.Namespace) -> int:
    from tools import upgrade

    argv = [args.action, *([args.version] if args.version else []), "--prefix", args.prefix, "--config", args.config,
            "--timeout-s", str(args.timeout_s), *(["--no-service"] if args.no_service else []), "--user", args.user]
    return upgrade.main(argv)
