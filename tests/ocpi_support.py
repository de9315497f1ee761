"""Start a served CPO in a test in one call (real sockets, ephemeral port).

``base_url, token_a, cpo = await start_cpo(service, tmp_path)`` serves the CPO on
``127.0.0.1:<free port>/ocpi`` with its own journal (outbox) and store under ``tmp_path``,
creates one registration token A and starts the push task; ``await cpo.close()`` stops the
server too. Works with ``agent.runtime`` or any other ``ChargerService``.
"""
from __future__ import annotations

import socket
from pathlib import Path

import aiohttp
from aiohttp import web

from protocols.ocpi.cpo import OcpiCpo
from protocols.ocpi.store import OcpiStore


class ServedCpo(OcpiCpo):
    """An ``OcpiCpo`` that also owns its HTTP server, journal and store (tests only)."""

    _runner = None
    _owned = ()

    async def close(self) -> None:
        await super().close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
        for thing in self._owned:
            thing.close()
        self._owned = ()


async def start_cpo(service, tmp_path, *, outbox=None, clock=None, new_id=None, country_code: str = "IN",
                    party_id: str = "URJ", **options) -> tuple[str, str, ServedCpo]:
    from agent.journal import Journal

    tmp_path = Path(tmp_path)
    owned = []
    if outbox is None:
        # The outbox must share the CPO's clock: due() compares against it.
        outbox = Journal.open(tmp_path / "ocpi-outbox.sqlite", **({"clock": clock} if clock else {}))
        owned.append(outbox)
    store = OcpiStore.open(tmp_path / "ocpi.sqlite")
    owned.append(store)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    port = sock.getsockname()[1]
    base_url = f"http://127.0.0.1:{port}/ocpi"
    cpo = ServedCpo(service=service, store=store, outbox=outbox, base_url=base_url, country_code=country_code,
                    party_id=party_id, http_session_factory=aiohttp.ClientSession, clock=clock, new_id=new_id,
                    **options)
    cpo._owned = tuple(owned)
    runner = web.AppRunner(cpo.make_app(), access_log=None)
    await runner.setup()
    cpo._runner = runner
    await web.SockSite(runner, sock).start()
    await cpo.start()
    token_a = cpo.create_token_a("test")
    return base_url, token_a, cpo
