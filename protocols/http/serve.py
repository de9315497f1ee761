"""Serving an aiohttp application on one address: the one place the charger binds a port.

Every HTTP face of the charger (Beckn endpoints, the buyer-side receiver, OCPI) starts the
same way and needs the bound port back when it asked for port 0.
"""
from __future__ import annotations

import ssl

from aiohttp import web


async def serve(app: web.Application, host: str, port: int, *,
                ssl_context: ssl.SSLContext | None = None) -> tuple[web.AppRunner, int]:
    """Start ``app`` on ``host:port``; returns the runner (``await runner.cleanup()`` stops it)
    and the bound port."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port, ssl_context=ssl_context).start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner, runner.addresses[0][1]
