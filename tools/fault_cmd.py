"""``urja fault``: the latched safety fault, shown and cleared by a local reset at the charger.

A welded contactor, a pilot error (E, F, diode fault) or an energy register that ran backwards
latches a fault that survives restarts and power cuts. Clearing it is a local act by someone
standing at the charger, after the cause is repaired: this command, never a network or OCPI
message. It works on the fault file beside the journal, so it works whether the agent runs or
not; a running agent takes the reset within about a second, and keeps the fault latched (and
recorded again) while the condition is still there.
"""
from __future__ import annotations

import argparse
import sys
import time

_LOCAL_ONLY = ("A local action: run it at the charger after the cause is repaired. No network, "
               "OCPI or app command can clear a latched fault.")


def register(subparsers) -> None:
    parser = subparsers.add_parser(
        "fault", help="the latched safety fault: show it, clear it by a local reset",
        description="A latched safety fault (welded contactor, pilot error, energy register running "
                    "backwards) keeps the charger out of order across restarts until a local reset. "
                    + _LOCAL_ONLY)
    parser.add_argument("--config", default=None, metavar="FILE",
                        help="site configuration (default /etc/urja/urja.toml)")
    # --config may stand before or after the action; SUPPRESS keeps the action's parser from
    # overwriting a value given before it with its own default.
    sub = parser.add_subparsers(dest="fault_command", metavar="ACTION")
    sub.required = True
    show = sub.add_parser("show", help="the latched fault, if any, with its time and detail")
    show.add_argument("--config", default=argparse.SUPPRESS, metavar="FILE",
                      help="site configuration (default /etc/urja/urja.toml)")
    show.set_defaults(func=_show)
    reset = sub.add_parser(
        "reset", help="clear the latched fault (local reset at the charger; never from the network)",
        description="Clear the latched fault. " + _LOCAL_ONLY + " A running agent takes the reset within "
                    "about a second and refuses it while the condition is still there (the contactor's "
                    "mirror still reads closed, current still flows with the relay open, the pilot still "
                    "reports an error); the fault is then latched again and 'urja fault show' says why.")
    reset.add_argument("--config", default=argparse.SUPPRESS, metavar="FILE",
                       help="site configuration (default /etc/urja/urja.toml)")
    reset.set_defaults(func=_reset)


def _utc(time_s: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(time_s))


def _store(args):
    """The site's fault file, or None when it was never created (nothing ever latched there)."""
    from agent.config import DEFAULT_CONFIG_PATH, load_config
    from agent.journal import FaultStore, fault_store_path

    site = load_config(args.config or DEFAULT_CONFIG_PATH)
    path = fault_store_path(site.journal_path)
    if not path.exists():
        return site, path, None
    return site, path, FaultStore.open(path)


def _show(args) -> int:
    from agent.core.errors import AgentError

    try:
        site, path, store = _store(args)
        if store is None:
            print(f"no fault is latched at {site.site_id}")
            return 0
        try:
            latched = store.latched()
            history = store.history(1)
        finally:
            store.close()
    except AgentError as exc:
        print(f"urja fault show: {exc}", file=sys.stderr)
        return 1
    if latched is None:
        print(f"no fault is latched at {site.site_id}")
        if history:
            last = history[0]
            print(f"last: {last.code} latched {_utc(last.latched_s)} ({last.detail}), "
                  f"cleared {_utc(last.cleared_s)} by {last.cleared_by}")
        return 0
    print(f"fault {latched.code} latched at {_utc(latched.latched_s)}")
    print(f"  detail: {latched.detail}")
    print("  the charger is out of order: repair the cause, then run 'urja fault reset' at the charger")
    return 0


def _reset(args) -> int:
    from agent.core.errors import AgentError

    try:
        site, path, store = _store(args)
        cleared = []
        if store is not None:
            try:
                cleared = store.clear(time.time(), by="urja fault reset")  # [] when nothing was latched
            finally:
                store.close()
    except AgentError as exc:
        print(f"urja fault reset: {exc}", file=sys.stderr)
        return 1
    if not cleared:
        print(f"urja fault reset: no fault is latched at {site.site_id}; nothing to reset", file=sys.stderr)
        return 1
    for fault in cleared:
        print(f"cleared {fault.code} (latched {_utc(fault.latched_s)}: {fault.detail})")
    print("A running agent clears its latch within about a second if the condition is gone, and latches "
          "it again if not; check with 'urja fault show'.")
    return 0
