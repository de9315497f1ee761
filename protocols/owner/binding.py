"""The site owner's page as a binding: ``[owner_page]`` in the site configuration.

    [owner_page]
    listen = "0.0.0.0:80"               # host:port; the page is http://<mdns_name>.local
    access_file = "owner-access.json"   # the owner's and technician's scrypt hashes (agent.owner_access)
    mdns = true                         # advertise on the LAN by mDNS
    mdns_name = "urja-koramangala"      # default: from the site id
    language = "en"                     # the page's language until a browser picks one: en, hi
    tls_cert = "page.crt"               # optional: serve HTTPS with this certificate and key (PEM)
    tls_key = "page.key"
    session_hours = 12                  # a login lasts this long after its last use

Relative paths are relative to the configuration file, as everywhere in it.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from agent.bindings import BindingSpec
from drivers.configfile import Section
from protocols.owner.i18n import LANGUAGES

_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")


@dataclass(frozen=True, kw_only=True)
class OwnerPageSettings:
    enabled: bool = True
    host: str = "0.0.0.0"
    port: int = 80
    access_file: Path = Path("owner-access.json")
    mdns: bool = True
    mdns_name: str | None = None
    language: str = "en"
    tls_cert: Path | None = None
    tls_key: Path | None = None
    session_hours: float = 12.0


def _path(base: Path, text: str | None) -> Path | None:
    if text is None:
        return None
    p = Path(text)
    return p if p.is_absolute() else base / p


def parse_table(data: dict, file: Path) -> OwnerPageSettings:
    sec = Section(data, file, "owner_page")
    base = Path(file).parent
    enabled = sec.bool("enabled", True)
    listen = sec.str("listen", "0.0.0.0:80")
    host, _, port_text = listen.rpartition(":")
    if not host or not port_text.isdigit() or not 0 <= int(port_text) <= 65535:
        raise sec.error("listen", f"not host:port: {listen!r}", "e.g. 0.0.0.0:80")
    access = _path(base, sec.str("access_file", "owner-access.json"))
    mdns = sec.bool("mdns", True)
    name = sec.str("mdns_name", None)
    if name is not None and not _NAME.match(name):
        raise sec.error("mdns_name", f"not a host name: {name!r}", "lower-case letters, digits and -, e.g. urja-shop")
    language = sec.str("language", "en", choices=LANGUAGES)
    cert, key = _path(base, sec.str("tls_cert", None)), _path(base, sec.str("tls_key", None))
    if (cert is None) != (key is None):
        raise sec.error("tls_key" if key is None else "tls_cert", "tls_cert and tls_key go together")
    for field, path in (("tls_cert", cert), ("tls_key", key)):
        if path is not None and not path.is_file():
            raise sec.error(field, f"file not found: {path}")
    hours = sec.float("session_hours", 12.0, min=0.1, max=24 * 30)
    sec.finish()
    return OwnerPageSettings(enabled=enabled, host=host, port=int(port_text), access_file=access, mdns=mdns,
                             mdns_name=name, language=language, tls_cert=cert, tls_key=key, session_hours=hours)


def default_mdns_name(site_id: str) -> str:
    """A host name from the site id (``in.blr.site-1`` -> ``urja-in-blr-site-1``)."""
    name = re.sub(r"[^a-z0-9-]+", "-", f"urja-{site_id}".lower()).strip("-")
    return name[:63].rstrip("-") or "urja"


class OwnerPage:
    """The running page: the aiohttp server, and the mDNS advert when asked for."""

    def __init__(self, *, ctx, settings: OwnerPageSettings):
        from protocols.owner.app import OwnerApp

        self.settings = settings
        site = ctx.site
        self.page = OwnerApp(service=ctx.service, config_path=Path(site.path), access_file=settings.access_file,
                             tariff_file=getattr(site, "tariff_file", None), identity=ctx.identity,
                             language=settings.language, secure_cookie=settings.tls_cert is not None,
                             session_ttl_s=settings.session_hours * 3600)
        self.mdns_name = settings.mdns_name or default_mdns_name(site.site_id)
        self._runner = None
        self._advert = None
        self.app = None
        self.port: int | None = None

    @classmethod
    def from_context(cls, ctx, settings: OwnerPageSettings):
        return cls(ctx=ctx, settings=settings) if settings.enabled else None

    @property
    def scheme(self) -> str:
        return "https" if self.settings.tls_cert else "http"

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.settings.host in ("0.0.0.0", "") else self.settings.host
        return f"{self.scheme}://{host}:{self.port}"

    async def start(self) -> None:
        from aiohttp import web

        ssl_context = None
        if self.settings.tls_cert is not None:
            import ssl

            ssl_context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
            ssl_context.load_cert_chain(self.settings.tls_cert, self.settings.tls_key)
        self.app = self.page.application()
        self._runner = web.AppRunner(self.app, access_log=None, shutdown_timeout=2.0)
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.settings.host, self.settings.port, ssl_context=ssl_context)
        await site.start()
        self.port = self._runner.addresses[0][1]
        self.page.listen()
        if self.settings.mdns:
            from protocols.owner.mdns import Advert

            self._advert = Advert(name=self.mdns_name, port=self.port)
            await self._advert.start()

    def describe(self) -> str:
        port = "" if self.port == (443 if self.settings.tls_cert else 80) else f":{self.port}"
        name = f", {self.scheme}://{self.mdns_name}.local{port}" if self._advert is not None else ""
        return f"owner's page on {self.url}{name}"

    def healthy(self) -> bool:
        return self._runner is not None

    async def close(self) -> None:
        self.page.close()
        if self._advert is not None:
            advert, self._advert = self._advert, None
            await advert.close()
        if self._runner is not None:
            runner, self._runner = self._runner, None
            await runner.cleanup()


BINDING = BindingSpec(table="owner_page", parse=parse_table, build=OwnerPage.from_context)
