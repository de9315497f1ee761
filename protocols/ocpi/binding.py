"""OCPI as a runtime component: ``[ocpi]`` in the site configuration starts the CPO side.

It starts after the runtime (relay open, journal reconciled) and stops before it. Pushes go
through the runtime's own journal outbox (topics ``ocpi/...``), so they survive restarts and
share its clock; registrations live in their own store beside the journal.
"""
from __future__ import annotations

import uuid

import aiohttp
from aiohttp import web

from agent.bindings import BindingSpec
from protocols.http.serve import serve
from protocols.ocpi.cpo import OcpiCpo
from protocols.ocpi.settings import OcpiSettings
from protocols.ocpi.store import OcpiStore


class OcpiBinding:
    def __init__(self, *, cpo: OcpiCpo, store: OcpiStore, settings: OcpiSettings):
        self.cpo = cpo
        self.store = store
        self.settings = settings
        self.port: int | None = None
        self._runner: web.AppRunner | None = None

    @classmethod
    def for_runtime(cls, rt, *, settings: OcpiSettings | None = None) -> "OcpiBinding":
        """The binding for a runtime (its ``[ocpi]`` settings unless others are given)."""
        settings = settings or rt.site.bindings.get("ocpi") or OcpiSettings.from_site(rt.site)
        return cls.from_context(rt.binding_context(), settings)

    @classmethod
    def from_context(cls, ctx, settings: OcpiSettings) -> "OcpiBinding":
        store = OcpiStore.open(settings.store_path(ctx.site))
        cpo = OcpiCpo(service=ctx.service, store=store, outbox=ctx.outbox, base_url=settings.public_url,
                      country_code=settings.country_code, party_id=settings.party_id,
                      http_session_factory=aiohttp.ClientSession, clock=ctx.now_s,
                      new_id=lambda: str(uuid.uuid4()))
        return cls(cpo=cpo, store=store, settings=settings)

    def describe(self) -> str:
        return f"OCPI 2.2.1 CPO on port {self.port}, public URL {self.settings.public_url}"

    async def start(self) -> int:
        """Serve on ``listen`` (TLS when configured); returns the bound port."""
        self._runner, self.port = await serve(self.cpo.make_app(), self.settings.listen_host,
                                              self.settings.listen_port, ssl_context=self.settings.ssl_context())
        await self.cpo.start()
        return self.port

    async def close(self) -> None:
        try:
            await self.cpo.close()
        finally:
            if self._runner is not None:
                await self._runner.cleanup()
                self._runner = None
            self.store.close()


def _build(ctx, settings: OcpiSettings) -> OcpiBinding | None:
    """``enabled = false`` keeps the table (and its registrations) but serves nothing."""
    return OcpiBinding.from_context(ctx, settings) if settings.enabled else None


BINDING = BindingSpec(table="ocpi", parse=OcpiSettings.from_table, build=_build)
