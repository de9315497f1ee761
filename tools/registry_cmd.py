"""``urja registry``: the reference DeDi-compatible registry for tests and the demo.

``urja registry add`` lists a keyring's newest key (its ``subscription-request.json``) in a
registry file as a member of a network; ``urja registry serve`` answers the DeDi lookups from
that file (``GET /dedi/lookup/{subscriber_id}/subscribers.beckn.one/{key_id}``). Not a DeDi
host: no namespace verification, no publishing API.
"""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path


def register(subparsers) -> None:
    p = subparsers.add_parser("registry", help="reference DeDi-compatible registry (tests, demo)")
    sub = p.add_subparsers(dest="registry_command", metavar="ACTION")
    sub.required = True
    add = sub.add_parser("add", help="list a keyring's key in a registry file")
    add.add_argument("--file", required=True, help="registry file (created when missing)")
    add.add_argument("--key-dir", required=True, help="keyring whose subscription-request.json is listed")
    add.add_argument("--network-id", required=True, help="NAMESPACE/REGISTRY the participant is a member of")
    add.add_argument("--url", required=True, help="the participant's Beckn URL (bppUri or bapUri)")
    add.set_defaults(func=handle_add)
    serve = sub.add_parser("serve", help="answer DeDi lookups from a registry file")
    serve.add_argument("--file", required=True, help="registry file")
    serve.add_argument("--host", default="127.0.0.1")
    serve.add_argument("--port", type=int, default=8091)
    serve.add_argument("--ttl-s", type=int, default=None, help="ttl (seconds) to put in every answer")
    serve.set_defaults(func=handle_serve)


def handle_add(args, *, clock=time.time) -> int:
    from protocols.beckn2.dedi import (
        DediError,
        NetworkId,
        add_record,
        load_registry_file,
        record_from_subscription,
        save_registry_file,
    )
    from protocols.signing.keys import REQUEST_FILE

    request_path = Path(args.key_dir) / REQUEST_FILE
    try:
        request = json.loads(request_path.read_text())
        network = NetworkId.parse(args.network_id, field="--network-id")
        record = record_from_subscription(request, network=network, url=args.url, now_s=clock())
        save_registry_file(args.file, add_record(load_registry_file(args.file), record))
    except OSError as exc:
        print(f"urja registry add: cannot read {request_path}: {exc.strerror}", file=sys.stderr)
        return 2
    except ValueError as exc:
        print(f"urja registry add: {request_path} is not JSON: {exc}", file=sys.stderr)
        return 2
    except DediError as exc:
        print(f"urja registry add: {exc}", file=sys.stderr)
        return 2
    print(f"listed {record['details']['subscriber_id']} key {record['record_id']} in {args.file} "
          f"(network {network.membership})")
    return 0


async def serve(args) -> None:
    from protocols.beckn2.dedi import DediRegistryServer, load_registry_file
    from tools.shutdown import serve_until_stopped

    server = DediRegistryServer(doc=load_registry_file(args.file), ttl_s=args.ttl_s)
    port = await server.start(args.host, args.port)
    await serve_until_stopped(server.close, f"registry (reference, for tests) on http://{args.host}:{port}/dedi "
                                            f"with {len(server.doc.get('records', []))} record(s)")


def handle_serve(args) -> int:
    import asyncio

    from protocols.beckn2.dedi import DediError

    try:
        asyncio.run(serve(args))
    except DediError as exc:
        print(f"urja registry serve: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"urja registry serve: cannot listen on {args.host}:{args.port}: {exc.strerror}", file=sys.stderr)
        return 1
    return 0
