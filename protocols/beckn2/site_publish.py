"""A binding's catalog publishing: the ``CatalogPublisher`` driven by the charger's own changes.

On a Beckn 2.0 network a node finds the charger through the catalog discovery services it
publishes to, so what they hold must follow the charger: its availability (a connector's
status) and its price (a new tariff). The facade tells every listener of both (``("connector",
ConnectorView)``, ``("tariff", dict)``); this listener turns each real change into
``publisher.changed()``, and the publisher's debounce folds a burst into one publish.

Which binding publishes: the one buyers should call. A charger with HTTP publishes from the
HTTP binding with its ``public_url`` as ``bppUri`` and takes ``/catalog/on_publish`` on its own
server (``add_routes``); a charger on MQTT only cannot be called back, so the MQTT binding
publishes without a callback URL and reads the results from the service's answer. A charger
on MQTT only that names bridges and the URL buyers reach it at through them (``[network]
bridges`` and ``bridge_url``) names that URL as its catalog's ``bppUri`` and publishes to the
broker too (``publish.RETAINED``): the bridges forward the signed requests it keeps there.

The services' answers are verified (counter-signature, signed ``on_publish``) with the
binding's key lookup, so a site that names ``catalog_services`` must name a registry too
(``dedi_url`` or ``registry_url``): otherwise no service's key is known and nothing publishes.
"""
from __future__ import annotations

import asyncio
import logging
from typing import Any

from agent.aio import cancel_and_wait
from protocols.beckn2.catalog import catalog_v2
from protocols.beckn2.publish import CatalogPublisher

log = logging.getLogger("urja.publish")


class SitePublisher:
    """Publishes ``bpp``'s 2.0 catalog to ``services``; ``start()``/``close()`` with the binding."""

    def __init__(self, *, bpp, services: tuple[str, ...], lookup, network_id: str | None,
                 callback_uri: str | None, catalog_uri: str | None = None, **options: Any):
        self.bpp = bpp
        self.publisher = CatalogPublisher(
            catalog=lambda: catalog_v2(bpp, bpp_uri=catalog_uri), signer=bpp._signer, clock=bpp.clock,
            services=services,
            bpp_id=bpp.bpp_id, bpp_uri=callback_uri, lookup=lookup, network_id=network_id, **options)
        self._statuses: dict[Any, str] = {}
        self._task: asyncio.Task | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    def add_routes(self, app) -> None:
        self.publisher.add_routes(app)

    async def start(self) -> None:
        self._loop = asyncio.get_running_loop()
        for view in self.bpp.service.connectors():
            self._statuses[view.connector_id] = view.status
        self.bpp.service.add_listener(self._on_event)
        self._task = self._loop.create_task(self.publisher.run(), name=f"beckn2-publish:{self.bpp.bpp_id}")

    async def close(self) -> None:
        self.bpp.service.remove_listener(self._on_event)
        task, self._task = self._task, None
        if task is not None:
            await cancel_and_wait([task])

    def _on_event(self, kind: str, obj: Any) -> None:
        """Service listener: never raises into the charger."""
        try:
            if kind == "connector":
                if self._statuses.get(obj.connector_id) == obj.status:
                    return
                self._statuses[obj.connector_id] = obj.status
            elif kind != "tariff":
                return
            self.republish()
        except Exception:  # a listener must not break the charger
            log.exception("catalog publish: could not note a %s change", kind)

    def republish(self) -> None:
        """Publish again once settled, from any thread: on a change, or when the charger is back
        on its broker (a bridge forwards its retained request again, which must be a fresh one:
        a service answers a message it has seen without taking the catalog again)."""
        if self._loop is None or self._task is None:
            return
        try:
            running = asyncio.get_running_loop()
        except RuntimeError:
            running = None
        if running is self._loop:
            self.publisher.changed()
        else:
            self._loop.call_soon_threadsafe(self.publisher.changed)
