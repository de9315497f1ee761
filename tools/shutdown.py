"""Stopping a long-running command cleanly on SIGTERM or Ctrl-C.

``urja run`` and the demos that keep running share it: each waits on an ``asyncio.Event``
that the signal sets, so shutdown goes through the runtime's own exit path (relays open
first) instead of an exception raised at an arbitrary await.
"""
from __future__ import annotations

import asyncio
import signal


def install_stop(stop: asyncio.Event) -> None:
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        try:
            loop.add_signal_handler(sig, stop.set)
        except (NotImplementedError, RuntimeError):
            pass


async def serve_until_stopped(close, banner: str) -> None:
    """Say what is serving, wait for SIGTERM or Ctrl-C, then ``await close()`` whatever ended
    the wait: the reference services' commands (``urja cds serve``, ``urja registry serve``)."""
    stop = asyncio.Event()
    install_stop(stop)
    print(banner, flush=True)
    try:
        await stop.wait()
    finally:
        await close()
