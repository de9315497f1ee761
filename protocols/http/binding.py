"""The HTTP binding as a runtime component: ``[http]`` in the site configuration.

A charger that is reachable (a public address, or a tunnel) can serve Beckn's HTTP endpoints
beside, or instead of, the MQTT network. It gets its own ``Bpp`` over the same charger facade:
transactions that arrive over HTTP are answered over HTTP (callbacks to the buyer's
``bap_uri``), those from MQTT over MQTT, and both see the same connectors, tariff and sessions.
Its confirmed orders are kept in the runtime's journal under its own name (``"http"``), apart
from the MQTT binding's, so they survive a restart (``protocols.beckn.orders``).

    [http]
    listen = "0.0.0.0:8080"                 # host:port to bind
    public_url = "https://charger.example"  # what buyers call (bpp_uri); a proxy may sit between
    registry_url = "https://registry.example"  # optional: a Beckn registry to look up buyers in
    dedi_url = "https://dedi.example/dedi"     # or the DeDi host of [network] network_id's registry
    catalog_services = ["https://cds.example.in"]  # Beckn 2.0: publish the catalog here

The protocol is the site's: ``[network] profile = "beckn-2.0"`` serves Beckn 2.0 LTS
(``/discover`` ... ``/rate``, counter-signed Acks), ``"beckn-1.1"`` (or no key) Beckn 1.1;
``[http] profile`` overrides it for a site that serves HTTP only (a ``[network]`` table also
joins the MQTT network).

Without registry keys of its own the binding uses the ``[network]`` table's (one network, one
registry). A 2.0 site that names ``catalog_services`` (here, or in ``[network]``) publishes its
catalog from this binding, with ``public_url`` as the callback for ``/catalog/on_publish``
(``protocols.beckn2.site_publish``).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path

from agent.bindings import BindingSpec
from drivers.configfile import Section
from protocols.beckn.bpp import Bpp
from protocols.beckn.policy import PROTOCOL_PROFILES, Policy
from protocols.beckn.trust import buyer_lookup, dedi_url, registry_url
from protocols.beckn2.profile import profile_for
from protocols.http.server import BecknHttpServer
from protocols.signing.beckn import Verifier

ORDER_BINDING = "http"  # this binding's rows in the journal's order store


@dataclass(frozen=True, kw_only=True)
class HttpSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    public_url: str = "http://127.0.0.1:8080"
    registry_url: str | None = None  # a Beckn registry to look up buyers without a certificate
    profile: str | None = None  # overrides [network] profile for a site that serves HTTP only
    dedi_url: str | None = None  # a DeDi host to look participants up in (network_id names the registry)
    catalog_services: tuple[str, ...] = ()  # Beckn 2.0 catalog discovery services, beside [network]'s


def parse_table(data: dict, file: Path) -> HttpSettings:
    """The ``[http]`` table, checked: errors name the file, the key and what is allowed."""
    sec = Section(data, file, "http")
    listen = sec.str("listen", "127.0.0.1:8080")
    host, sep, port_text = listen.rpartition(":")
    if not sep or not host or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise sec.error("listen", f"not host:port: {listen!r}", "e.g. 0.0.0.0:8080, 127.0.0.1:0")
    public_url = sec.str("public_url", f"http://{listen}")
    if not public_url.startswith(("http://", "https://")):
        raise sec.error("public_url", f"not an http(s) URL: {public_url!r}", "https://host[:port][/path]")
    url = registry_url(sec)
    profile = sec.str("profile", None, choices=PROTOCOL_PROFILES)
    dedi = dedi_url(sec)
    from protocols.beckn2.publish import catalog_services

    services = catalog_services(sec)
    sec.finish()
    return HttpSettings(host=host, port=int(port_text), public_url=public_url, registry_url=url, profile=profile,
                        dedi_url=dedi, catalog_services=services)


class HttpBinding:
    def __init__(self, *, bpp: Bpp, server: BecknHttpServer, host: str, port: int, registry_session=None,
                 publisher=None):
        self.bpp = bpp
        self.server = server
        self.host = host
        self.port = port
        self._registry_session = registry_session
        self.publisher = publisher  # Beckn 2.0 with catalog services: ``site_publish.SitePublisher``

    @classmethod
    def for_runtime(cls, rt) -> "HttpBinding":
        """The binding for a runtime whose configuration has an ``[http]`` table."""
        settings = rt.site.bindings.get("http") or parse_table(rt.site.extra.get("http", {}), Path(rt.site.path))
        return cls.from_context(rt.binding_context(), settings)

    @classmethod
    def from_context(cls, ctx, settings: HttpSettings) -> "HttpBinding":
        site = ctx.site
        # Buyers are known by the agency certificate they carry, or by the network's registry.
        network = (getattr(site, "bindings", None) or {}).get("network")
        policy = Policy.from_site(site)
        reg, dedi = settings.registry_url, settings.dedi_url
        if reg is None and dedi is None and network is not None:
            reg, dedi = network.registry_url, network.dedi_url
        lookup, session = buyer_lookup(ctx, reg, dedi=dedi, network_id=policy.network_id)
        ident = ctx.identity
        if settings.profile is not None:
            policy = dataclasses.replace(policy, profile=settings.profile)
        bpp = Bpp(service=ctx.service, signer=ident, verifier=Verifier(lookup=lookup, clock=ctx.now_s),
                  bpp_uri=settings.public_url, clock=ctx.now_s, bpp_id=site.site_id, certificate=ident.certificate,
                  agency_public_key=ident.agency_public_key, store=ctx.orders, binding=ORDER_BINDING,
                  revocations=ctx.revocations,
                  profile=profile_for(policy, bpp_id=site.site_id, bpp_uri=settings.public_url))
        # unsolicited messages (the receipt above all) wait in the journal while a buyer is away
        server = BecknHttpServer(bpp=bpp, journal=ctx.outbox, clock=ctx.now_s)
        services = settings.catalog_services or (network.catalog_services if network is not None else ())
        publisher = None
        if services and policy.profile == "beckn-2.0":
            from protocols.beckn2.site_publish import SitePublisher

            publisher = SitePublisher(bpp=bpp, services=services, lookup=lookup, network_id=policy.network_id,
                                      callback_uri=settings.public_url)
            server.extra_routes.append(publisher.add_routes)
        return cls(bpp=bpp, server=server, host=settings.host, port=settings.port, registry_session=session,
                   publisher=publisher)

    async def start(self) -> int:
        """Start serving; returns the bound port (useful with port 0)."""
        self.port = await self.server.start(self.host, self.port)
        await self.bpp.start()
        if self.publisher is not None:
            await self.publisher.start()
        return self.port

    def describe(self) -> str:
        return f"Beckn HTTP endpoints on {self.host}:{self.port} ({self.bpp.profile.name})"

    async def close(self) -> None:
        try:
            if self.publisher is not None:
                await self.publisher.close()
            await self.bpp.close()
            await self.server.close()
        finally:
            if self._registry_session is not None:
                await self._registry_session.close()


BINDING = BindingSpec(table="http", parse=parse_table, build=HttpBinding.from_context)
