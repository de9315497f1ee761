"""The network services of the demo: a DeDi-compatible registry and a catalog discovery service.

On a Beckn 2.0 network a charger is found through a catalog discovery service it publishes to,
and every participant's key is in the registry the network id names. The demo runs both in its
own process, on the same simulated clock as the chargers and the app (every signed message
carries its time), from the references in ``protocols/beckn2/`` (``dedi.DediRegistryServer``,
``cds.CatalogDiscoveryService``): for the demo and tests, not production services.

    async with DemoServices(folder, clock=clock.wall_s) as services:
        services.join(site_config_path, key_dir)   # list its key, point its [network] at them
        services.join_app(app_config_path, key_dir)
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Callable

NETWORK_ID = "urja.local/ev-charging"
CDS_ID = "cds.urja-demo.in"


def _add_keys(path: Path, table: str, lines: str) -> None:
    """Put ``lines`` at the top of ``[table]`` in a provisioned TOML file."""
    text = path.read_text()
    header = f"[{table}]\n"
    if header not in text:
        raise ValueError(f"{path}: no [{table}] table to add the network services to")
    path.write_text(text.replace(header, header + lines, 1))


class DemoServices:
    """The registry and the catalog service, started together and stopped in reverse."""

    def __init__(self, folder: Path, *, clock: Callable[[], float]):
        self.folder = Path(folder)
        self.clock = clock
        self.registry = None
        self.cds = None
        self.registry_url = ""
        self.cds_url = ""
        self._lookup = None

    async def __aenter__(self) -> "DemoServices":
        from protocols.beckn2.cds import CatalogDiscoveryService
        from protocols.beckn2.dedi import DediRegistryClient, DediRegistryServer
        from protocols.signing.keys import create_keyring, load_keyring

        self.registry = DediRegistryServer()
        try:
            self.registry_url = f"http://127.0.0.1:{await self.registry.start()}/dedi"
            key_dir = self.folder / "cds" / "keys"
            if (key_dir / "keyring.json").exists():
                keyring = load_keyring(key_dir)
            else:
                keyring = create_keyring(key_dir, subscriber_id=CDS_ID, valid_days=30, now_s=self.clock())
            self._list(key_dir, "http://127.0.0.1/")
            self._lookup = DediRegistryClient(session=None, base_url=self.registry_url, clock=self.clock,
                                              network=NETWORK_ID)
            self.cds = CatalogDiscoveryService(signer=keyring, lookup=self._lookup, clock=self.clock,
                                               network_id=NETWORK_ID)
            self.cds_url = f"http://127.0.0.1:{await self.cds.start()}"
        except BaseException:
            await self.__aexit__()
            raise
        return self

    async def __aexit__(self, *exc) -> None:
        if self.cds is not None:
            await self.cds.close()
        if self._lookup is not None:
            await self._lookup.close()
        if self.registry is not None:
            await self.registry.close()

    def _list(self, key_dir: Path, url: str) -> None:
        from protocols.beckn2.dedi import NetworkId, record_from_subscription
        from protocols.signing.keys import REQUEST_FILE

        request = json.loads((Path(key_dir) / REQUEST_FILE).read_text())
        self.registry.add(record_from_subscription(request, network=NetworkId.parse(NETWORK_ID), url=url,
                                                   now_s=self.clock()))

    def _network_keys(self) -> str:
        return f'network_id = "{NETWORK_ID}"\ndedi_url = "{self.registry_url}"\n'

    def join(self, config: Path, key_dir: Path) -> None:
        """A charger: its key in the registry; its ``[network]`` publishes to the catalog service."""
        self._list(key_dir, "mqtt://network/")
        _add_keys(Path(config), "network", self._network_keys() + f'catalog_services = ["{self.cds_url}"]\n')

    def join_app(self, config: Path, key_dir: Path) -> None:
        """The app: its key in the registry; it discovers through the catalog service."""
        self._list(key_dir, "mqtt://network/")
        _add_keys(Path(config), "network", self._network_keys())
        _add_keys(Path(config), "node", f'cds_url = "{self.cds_url}"\n')
