"""The page on the site's network by name: ``http://<name>.local`` through mDNS (zeroconf).

The charger answers for its own host name and announces an ``_http._tcp`` service, so a phone
on the same Wi-Fi opens the page without knowing an address. zeroconf is imported only when
the advert starts: a board without the library (or with mDNS off) still runs the page.
"""
from __future__ import annotations

import logging
import socket

log = logging.getLogger("urja.owner")

SERVICE_TYPE = "_http._tcp.local."


def host_addresses() -> list[str]:
    """IPv4 addresses of this host other than loopback (what a phone on the LAN can reach)."""
    import ifaddr

    out = []
    for adapter in ifaddr.get_adapters():
        for ip in adapter.ips:
            if isinstance(ip.ip, str) and not ip.ip.startswith("127."):
                out.append(ip.ip)
    return out


class Advert:
    """One registered service; ``start``/``close`` around the page's own life."""

    def __init__(self, *, name: str, port: int, addresses: list[str] | None = None,
                 interfaces: list[str] | None = None, path: str = "/"):
        self.name = name
        self.port = port
        self.addresses = addresses
        self.interfaces = interfaces
        self.path = path
        self._zc = None
        self._info = None

    @property
    def host(self) -> str:
        return f"{self.name}.local"

    async def start(self) -> None:
        from zeroconf import InterfaceChoice, ServiceInfo
        from zeroconf.asyncio import AsyncZeroconf

        addresses = self.addresses if self.addresses is not None else host_addresses()
        self._info = ServiceInfo(SERVICE_TYPE, f"{self.name}.{SERVICE_TYPE}", port=self.port,
                                 addresses=[socket.inet_aton(a) for a in addresses],
                                 server=f"{self.name}.local.", properties={"path": self.path})
        self._zc = AsyncZeroconf(interfaces=self.interfaces or InterfaceChoice.All)
        # zeroconf hands back the announcement as a task: awaited, so none outlives the advert
        await (await self._zc.async_register_service(self._info, allow_name_change=True))
        log.info("mDNS: the page is http://%s.local:%d (%s)", self.name, self.port, ", ".join(addresses) or "-")

    async def close(self) -> None:
        if self._zc is None:
            return
        zc, self._zc = self._zc, None
        try:
            await (await zc.async_unregister_service(self._info))
        finally:
            await zc.async_close()
