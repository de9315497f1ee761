"""``urja journal``: the journal file's format version, and carrying a file between versions.

Used by ``urja upgrade``: before an older release is started again after a newer one ran, the
newer release carries the journal back to the format the older one reads (``format`` of the
older release says which).
"""
from __future__ import annotations

import argparse


def register(subparsers) -> None:
    p = subparsers.add_parser("journal", help="the journal's format version; migrate a journal up or down")
    sub = p.add_subparsers(dest="journal_command", metavar="ACTION")
    sub.required = True
    fmt = sub.add_parser("format", help="print the journal format version this release writes")
    fmt.set_defaults(func=format_handler)
    mig = sub.add_parser("migrate", help="carry the site's journal to a format version (the agent must be stopped)")
    mig.add_argument("--config", default=None, metavar="FILE", help="site configuration (default /etc/urja/urja.toml)")
    mig.add_argument("--to", type=int, required=True, metavar="N", help="format version to carry the journal to")
    mig.set_defaults(func=migrate_handler)


def format_handler(args: argparse.Namespace) -> int:
    from agent.journal.migrations import CURRENT_VERSION

    print(CURRENT_VERSION)
    return 0


def migrate_handler(args: argparse.Namespace) -> int:
    from agent.config import DEFAULT_CONFIG_PATH, load_config
    from agent.journal.migrations import migrate_file

    config = load_config(args.config or DEFAULT_CONFIG_PATH)
    before, after = migrate_file(config.journal_path, to_version=args.to)
    print(f"journal {config.journal_path}: format {before} -> {after}")
    return 0
