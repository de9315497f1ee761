"""``urja bundle --arch ARCH``: the offline install tarball for a maker's controllers (``tools/bundle.py``)."""
from __future__ import annotations

import argparse
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser("bundle", help="build an offline install bundle (wheels, service unit, templates, "
                                             "install.sh) for arm64, armhf or x86_64")
    p.add_argument("--arch", required=True, choices=["arm64", "armhf", "x86_64"], help="the controllers' architecture")
    p.add_argument("--out", default=".", metavar="DIR", help="where to write urja-VERSION-ARCH.tar.gz (default .)")
    p.add_argument("--wheel", default=None, metavar="WHL", help="a built urja wheel (default: build one from --source)")
    p.add_argument("--source", default=None, metavar="DIR",
                   help="the checkout to build the urja wheel from (default: the one this command runs from)")
    p.add_argument("--extra-wheels", default=None, metavar="DIR",
                   help="wheels built for the target where PyPI has none (armhf: cffi, gpiod)")
    p.set_defaults(func=handler)


def handler(args: argparse.Namespace) -> int:
    from tools.bundle import make_bundle

    source = Path(args.source) if args.source else Path(__file__).resolve().parent.parent
    make_bundle(args.arch, Path(args.out), source=source, urja_wheel=Path(args.wheel) if args.wheel else None,
                extra_wheels=Path(args.extra_wheels) if args.extra_wheels else None)
    return 0
