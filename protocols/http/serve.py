"""Serving an aiohttp application on one address: the one place the charger binds a port.

Every HTTP face of the charger (Beckn endpoints, the buyer-side receiver, OCPI) starts the
same way and needs the bound port back when it asked for port 0.
"""
from __future__ import annotations

import logging
import ssl
import sys
from typing import Awaitable, Callable, Iterable

from aiohttp import web

log = logging.getLogger("urja.http")

# Headers beyond this are refused by the application with its own error body. aiohttp's parser
# is let read up to ``_PARSER_LINE_BYTES`` a line so such a request reaches the application; a
# line longer still is refused by aiohttp (plain 400), logged as one line like the rest.
MAX_HEADER_BYTES = 8192
_PARSER_LINE_BYTES = 65536


class _OneLine(logging.LoggerAdapter):
    """aiohttp's server logger, one line per refused request instead of a traceback.

    Hostile or broken requests are routine on a public address; a traceback for each buries
    the log of a charger that is working as it should.
    """

    def exception(self, msg, *args, exc_info=True, **kwargs) -> None:
        exc = exc_info if isinstance(exc_info, BaseException) else sys.exc_info()[1]
        detail = (str(exc).strip().splitlines() or [""])[0][:200] if exc is not None else ""
        self.warning("%s: %s%s", msg % args if args else msg, type(exc).__name__ if exc else "error",
                     f" ({detail})" if detail else "")


async def serve(app: web.Application, host: str, port: int, *,
                ssl_context: ssl.SSLContext | None = None) -> tuple[web.AppRunner, int]:
    """Start ``app`` on ``host:port``; returns the runner (``await runner.cleanup()`` stops it)
    and the bound port."""
    runner = web.AppRunner(app, access_log=None, logger=_OneLine(log, {}), max_line_size=_PARSER_LINE_BYTES,
                           max_field_size=_PARSER_LINE_BYTES)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port, ssl_context=ssl_context).start()
    except BaseException:
        await runner.cleanup()
        raise
    return runner, runner.addresses[0][1]


def header_bytes(request: web.BaseRequest) -> int:
    """The size of a request's header block as sent (name, ": ", value, CRLF per field)."""
    return sum(len(name) + len(value) + 4 for name, value in request.raw_headers)


def action_app(actions: Iterable[str], handler: Callable[[web.Request], Awaitable[web.StreamResponse]], *,
               max_body_bytes: int,
               refuse_headers: Callable[[web.Request, int], web.StreamResponse] | None = None) -> web.Application:
    """``POST /<action>`` for each Beckn action, all to ``handler`` (which reads the action
    from the path). The handler checks the body limit itself and words the refusal; aiohttp's
    own cap, a little above it, stops a flood before it is buffered. Headers over
    ``MAX_HEADER_BYTES`` are refused before the handler with ``refuse_headers``' answer and
    one log line."""
    limit = _header_limit(refuse_headers) if refuse_headers is not None else None
    app = web.Application(client_max_size=max_body_bytes + 1024, middlewares=[limit] if limit else [])
    for action in actions:
        app.router.add_post(f"/{action}", handler)
    return app


def _header_limit(refuse: Callable[[web.Request, int], web.StreamResponse]):
    @web.middleware
    async def limit(request: web.Request, handler):
        size = header_bytes(request)
        if size > MAX_HEADER_BYTES:
            log.warning("refused %s %s from %s: headers are %d bytes, limit %d", request.method, request.path,
                        request.remote, size, MAX_HEADER_BYTES)
            return refuse(request, size)
        return await handler(request)

    return limit
