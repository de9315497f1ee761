"""``urja ocpi``: registration tokens, registering with an eMSP or hub, listing and removing partners.

It works on the OCPI store beside the journal, so it can run while the agent serves OCPI: a
token A created here is accepted at once, and a partner registered here gets the charger's
location from the running agent on its next push round.
"""
from __future__ import annotations

import sys
import uuid


def register(subparsers) -> None:
    parser = subparsers.add_parser("ocpi", help="OCPI 2.2.1 registrations with eMSPs and hubs")
    parser.add_argument("--config", default=None, help="site configuration (default /etc/urja/urja.toml)")
    sub = parser.add_subparsers(dest="ocpi_command", metavar="ACTION")
    sub.required = True
    token = sub.add_parser("token", help="registration tokens (token A) for eMSPs")
    token_sub = token.add_subparsers(dest="token_command", metavar="ACTION")
    token_sub.required = True
    create = token_sub.add_parser("create", help="create a one-time token A to give an eMSP")
    create.add_argument("--label", default="", help="who the token is for (shown by 'urja ocpi list')")
    create.set_defaults(func=_token_create)
    reg = sub.add_parser("register", help="register this charger with an eMSP or hub")
    reg.add_argument("url", help="the partner's OCPI versions URL")
    reg.add_argument("token_a", help="the token the partner gave for registering")
    reg.set_defaults(func=_register)
    lst = sub.add_parser("list", help="registered partners and open registration tokens")
    lst.set_defaults(func=_list)
    rot = sub.add_parser("rotate", help="renew the tokens with a partner (by the number 'list' shows)")
    rot.add_argument("party", type=int)
    rot.set_defaults(func=_rotate)
    unreg = sub.add_parser("unregister", help="unregister a partner (by the number 'list' shows)")
    unreg.add_argument("party", type=int)
    unreg.set_defaults(func=_unregister)


def _open(args):
    from agent.config import DEFAULT_CONFIG_PATH, load_config
    from protocols.ocpi.settings import OcpiSettings
    from protocols.ocpi.store import OcpiStore

    site = load_config(args.config or DEFAULT_CONFIG_PATH)
    settings = OcpiSettings.from_site(site)
    return site, settings, OcpiStore.open(settings.store_path(site))


def _token_create(args) -> int:
    import secrets
    import time

    site, settings, store = _open(args)
    try:
        token = secrets.token_urlsafe(32)
        store.add_token_a(token, label=args.label, now_s=time.time())
    finally:
        store.close()
    print(f"token A: {token}")
    print(f"versions URL: {settings.public_url}/versions")
    print("Give both to the eMSP; the token works once, for registering.")
    return 0


def _register(args) -> int:
    import asyncio
    import secrets
    import time

    import aiohttp

    from protocols.ocpi.client import OcpiClient
    from protocols.ocpi.cpo import register_with
    from protocols.ocpi.errors import OcpiError

    site, settings, store = _open(args)
    credentials = _credentials(site, settings)

    async def run():
        async with aiohttp.ClientSession() as http:
            client = OcpiClient(http, new_id=lambda: str(uuid.uuid4()))
            return await register_with(client, store, versions_url=args.url, token_a=args.token_a,
                                       credentials=credentials, new_token=lambda: secrets.token_urlsafe(32),
                                       clock=time.time)

    try:
        party = asyncio.run(run())
    except OcpiError as exc:
        print(f"urja ocpi register: {args.url}: OCPI status {exc.status_code}: {exc.message}", file=sys.stderr)
        return 1
    finally:
        store.close()
    print(f"registered: {party.label}")
    return 0


def _credentials(site, settings):
    """Our credentials object for a given token, as the partner will see it."""
    from protocols.ocpi.cpo import credentials_object

    name = settings.business_name or site.operator or site.name or site.site_id

    def credentials(token):
        return credentials_object(token, base_url=settings.public_url, country_code=settings.country_code,
                                  party_id=settings.party_id, name=name)
    return credentials


def _rotate(args) -> int:
    import asyncio
    import secrets
    import time

    import aiohttp

    from protocols.ocpi.client import OcpiClient
    from protocols.ocpi.cpo import rotate_with
    from protocols.ocpi.errors import OcpiError

    site, settings, store = _open(args)
    try:
        party = store.party(args.party)
        if party is None or party.state != "registered":
            print(f"urja ocpi rotate: no registered partner {args.party} (see 'urja ocpi list')", file=sys.stderr)
            return 1

        async def run():
            async with aiohttp.ClientSession() as http:
                client = OcpiClient(http, new_id=lambda: str(uuid.uuid4()))
                return await rotate_with(client, store, party, credentials=_credentials(site, settings),
                                         new_token=lambda: secrets.token_urlsafe(32), clock=time.time)

        try:
            party = asyncio.run(run())
        except OcpiError as exc:
            print(f"urja ocpi rotate: {party.label}: OCPI status {exc.status_code}: {exc.message}; "
                  "the old tokens stay in use", file=sys.stderr)
            return 1
    finally:
        store.close()
    print(f"renewed: {party.label} (new tokens both ways)")
    return 0


def _list(args) -> int:
    _, settings, store = _open(args)
    try:
        parties = store.parties(registered_only=False)
        print(f"OCPI {settings.country_code}*{settings.party_id} at {settings.public_url}/versions")
        if not parties:
            print("no partners registered")
        for p in parties:
            modules = sorted({f"{e['identifier']}:{e['role'][0]}" for e in p.endpoints})
            print(f"{p.pk:>3}  {p.state:<10} {p.label}  {p.versions_url}  [{' '.join(modules)}]")
        print(f"open registration tokens: {store.token_a_count()}")
    finally:
        store.close()
    return 0


def _unregister(args) -> int:
    import asyncio

    import aiohttp

    from protocols.ocpi.client import OcpiClient
    from protocols.ocpi.errors import OcpiError

    _, _, store = _open(args)
    try:
        party = store.party(args.party)
        if party is None:
            print(f"urja ocpi unregister: no partner {args.party} (see 'urja ocpi list')", file=sys.stderr)
            return 1
        url = party.endpoint("credentials", "RECEIVER") or party.endpoint("credentials", "SENDER")

        async def run():
            async with aiohttp.ClientSession() as http:
                return await OcpiClient(http, new_id=lambda: str(uuid.uuid4())).call(
                    "DELETE", url, token=party.outgoing_token)

        if url and party.outgoing_token:
            try:
                status, _ = asyncio.run(run())
                print(f"partner answered HTTP {status}")
            except OcpiError as exc:
                print(f"partner not told ({exc.message}); removing it here anyway", file=sys.stderr)
        store.delete_party(party.pk)
        print(f"unregistered: {party.label}")
    finally:
        store.close()
    return 0
