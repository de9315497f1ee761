"""``urja cds serve``: the reference catalog discovery service, for tests and the demo.

Keeps published catalogs in memory and answers discovery by area and connector (see
``protocols/beckn2/cds.py``); not a production CDS. Publishers' and callers' keys are looked up
in a DeDi registry (``--registry URL``) or read from a registry file (``--registry-file``).
"""
from __future__ import annotations

import sys
import time


def register(subparsers) -> None:
    p = subparsers.add_parser("cds", help="reference catalog discovery service (tests, demo)")
    sub = p.add_subparsers(dest="cds_command", metavar="ACTION")
    sub.required = True
    serve = sub.add_parser("serve", help="serve /catalog/publish and /discover")
    serve.add_argument("--key-dir", required=True, help="the service's keyring (signs Acks and callbacks)")
    serve.add_argument("--network-id", help="NAMESPACE/REGISTRY every request must name in context.networkId")
    trust = serve.add_mutually_exclusive_group(required=True)
    trust.add_argument("--registry", help="DeDi registry base URL to look keys up in, e.g. http://127.0.0.1:8091/dedi")
    trust.add_argument("--registry-file", help="read participants' keys from this registry file instead")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8090)
    serve.add_argument("--public-url", help="this service's URL as callers reach it (bppUri in on_discover)")
    serve.add_argument("--max-messages", type=int, default=10_000,
                       help="message ids remembered against replay, each until its signature expires "
                            "(chargers publishing through bridges sign for minutes: about two per charger)")
    serve.set_defaults(func=handle_serve)


def _file_lookup(path: str):
    from protocols.beckn2.dedi import load_registry_file, participant_from_data
    from protocols.signing.keys import StaticKeyLookup

    lookup = StaticKeyLookup()
    for rec in load_registry_file(path).get("records", []):
        participant = participant_from_data(rec, rec["details"]["subscriber_id"], rec["record_id"])
        if not participant.revoked:
            lookup.add(participant.record())
    return lookup


async def serve(args, *, clock=time.time) -> None:
    import aiohttp

    from protocols.beckn2.cds import CatalogDiscoveryService
    from protocols.beckn2.dedi import DediRegistryClient, NetworkId
    from protocols.signing.keys import load_keyring
    from tools.shutdown import serve_until_stopped

    keyring = load_keyring(args.key_dir)
    network = NetworkId.parse(args.network_id, field="--network-id") if args.network_id else None
    async with aiohttp.ClientSession() as session:
        if args.registry:
            lookup = DediRegistryClient(session=session, base_url=args.registry, clock=clock, network=network)
        else:
            lookup = _file_lookup(args.registry_file)
        cds = CatalogDiscoveryService(signer=keyring, lookup=lookup, clock=clock,
                                      network_id=args.network_id, subscriber_uri=args.public_url,
                                      max_messages=args.max_messages)
        port = await cds.start(args.host, args.port)
        await serve_until_stopped(cds.close, f"catalog discovery service (reference, for tests) on "
                                             f"http://{args.host}:{port} as {keyring.subscriber_id}")


def handle_serve(args) -> int:
    import asyncio

    from protocols.errors import ProtocolError

    if args.max_messages < 1:
        print(f"urja cds serve: --max-messages must be at least 1, got {args.max_messages}", file=sys.stderr)
        return 2
    try:
        asyncio.run(serve(args))
    except ProtocolError as exc:
        print(f"urja cds serve: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"urja cds serve: cannot listen on {args.host}:{args.port}: {exc.strerror}", file=sys.stderr)
        return 1
    return 0
