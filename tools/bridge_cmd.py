"""``urja bridge run --config bridge.toml``: a public Beckn HTTP endpoint for chargers on MQTT.

Prints one line once it serves (``bridge <id> serving http://host:port for ...``) and runs
until SIGTERM or Ctrl-C. The keys it signs as itself with come from ``urja keygen``. With
``[bridge] catalog_services`` the chargers' own signed publish requests go to those services;
without, catalog changes are only logged.
"""
from __future__ import annotations

import logging
import sys
import time

log = logging.getLogger("urja.bridge")


def register(subparsers) -> None:
    p = subparsers.add_parser("bridge", help="run an HTTP bridge in front of chargers that are on MQTT only")
    sub = p.add_subparsers(dest="bridge_command", metavar="ACTION")
    sub.required = True
    run = sub.add_parser("run", help="serve Beckn over HTTP and forward to the chargers' MQTT inboxes")
    run.add_argument("--config", required=True, help="the bridge's TOML file ([bridge] and [network])")
    run.add_argument("--port", type=int, default=None, help="listen on this port instead of the file's")
    run.set_defaults(func=handle_run)
    check = sub.add_parser("check", help="check the bridge's file and keys, then exit")
    check.add_argument("--config", required=True)
    check.set_defaults(func=handle_check)


class LogSink:
    """The catalog seam until a catalog discovery service client is wired in: says what it would do."""

    async def publish(self, charger_id: str, catalog: bytes | None, request: bytes | None) -> None:
        log.info("catalog of %s current (%d bytes)", charger_id, len(catalog or request or b""))

    async def withdraw(self, charger_id: str, request: bytes | None) -> None:
        log.info("catalog of %s withdrawn (offline or no longer fronted)", charger_id)


def _load(path: str):
    from protocols.bridge.settings import load_bridge_config
    from protocols.signing.keys import load_keyring

    settings = load_bridge_config(path)
    keyring = load_keyring(settings.key_dir)
    if keyring.subscriber_id != settings.bridge_id:
        print(f"urja bridge: {path}: bridge.id {settings.bridge_id!r} but the keyring in {settings.key_dir} belongs "
              f"to {keyring.subscriber_id!r}", file=sys.stderr)
        return None, None
    return settings, keyring


def handle_check(args) -> int:
    settings, keyring = _load(args.config)
    if settings is None:
        return 2
    print(f"bridge {settings.bridge_id}: {settings.public_url}, brokers {', '.join(settings.network.brokers)}")
    return 0


def handle_run(args) -> int:
    settings, keyring = _load(args.config)
    if settings is None:
        return 2
    if args.port is not None:
        from dataclasses import replace

        settings = replace(settings, listen_port=args.port)
    import asyncio

    return asyncio.run(_run(settings, keyring))


async def _run(settings, keyring) -> int:
    import asyncio

    import aiohttp

    from protocols.bridge.cds_sink import CatalogServiceSink
    from protocols.bridge.server import Bridge
    from protocols.signing.registry import RegistryClient
    from tools.shutdown import install_stop

    stop = asyncio.Event()
    install_stop(stop)
    session = aiohttp.ClientSession()
    buyer_keys = None
    if settings.registry_url is not None:  # buyers' signatures verified here as well as at the charger
        buyer_keys = RegistryClient(session=session, base_url=settings.registry_url, clock=time.time)
    bridge = Bridge(settings=settings, signer_for=keyring.signer, clock=time.time, sink=LogSink(),
                    buyer_keys=buyer_keys, session=session)
    if settings.catalog_services:
        bridge.sink = CatalogServiceSink(services=settings.catalog_services, session=bridge.http_session)
    try:
        port = await bridge.start(connect_timeout_s=30)
        print(f"bridge {settings.bridge_id} serving http://{settings.listen_host}:{port} for "
              f"{', '.join(settings.network.brokers)}", flush=True)
        await stop.wait()
    finally:
        await bridge.close()
        await session.close()
    return 0
