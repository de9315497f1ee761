"""``urja board list`` and ``urja board check FILE|NAME``: validate a board profile."""
from __future__ import annotations

import argparse

from drivers.configfile import ConfigError


def register(subparsers) -> None:
    parser = subparsers.add_parser("board", help="list and check board profiles")
    sub = parser.add_subparsers(dest="board_command", metavar="ACTION")
    sub.required = True
    check = sub.add_parser("check", help="validate a board profile and print what it describes")
    check.add_argument("profile", metavar="FILE|NAME", help="a built-in profile name or a path to a .toml file")
    check.set_defaults(func=check_handler)
    listing = sub.add_parser("list", help="list the built-in board profiles")
    listing.set_defaults(func=list_handler)


def check_handler(args: argparse.Namespace) -> int:
    from board.profile import load_profile

    profile = load_profile(args.profile)  # ConfigError -> exit 2 with file, key and allowed values
    width = max(len(label) for label, _ in profile.summary())
    for label, value in profile.summary():
        print(f"{label.ljust(width)}  {value}")
    print(f"profile OK: {profile.path}")
    return 0


def list_handler(args: argparse.Namespace) -> int:
    from board.profile import list_profiles, load_profile

    names = list_profiles()
    width = max((len(n) for n in names), default=0)
    status = 0
    for name in names:
        try:
            description = load_profile(name).description
        except ConfigError as exc:
            description = f"INVALID: {exc}"
            status = 2
        print(f"{name.ljust(width)}  {description}")
    return status
