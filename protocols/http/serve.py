"""Serving an aiohttp application on one address: the one place the charger binds a port.

Every HTTP face of the charger (Beckn endpoints, the buyer-side receiver, OCPI) starts the
same way and needs the bound port back when it asked for port 0.
"""
from __future__ import annotations

import ssl
from typing import Awaitable, Callable, Iterable

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


def action_app(actions: Iterable[str], handler: Callable[[web.Request], Awaitable[web.StreamResponse]], *,
               max_body_bytes: int) -> web.Application:
    """``POST /<action>`` for each Beckn action, all to ``handler`` (which reads the action
    from the path). The handler checks the body limit itself and words the refusal; aiohttp's
    own cap, a little above it, stops a flood before it is buffered."""
    app = web.Application(client_max_size=max_body_bytes + 1024)
    for action in actions:
        app.router.add_post(f"/{action}", handler)
    return app
