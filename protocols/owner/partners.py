"""OCPI partners from the owner's page: list, register with an eMSP's token A, unregister.

The same store and the same registration steps as ``urja ocpi list|register|unregister``: the
OCPI store is its own SQLite file beside the journal, so it may be changed while the agent
serves OCPI (a partner registered here gets the location on the OCPI binding's next push round).
The store is opened for each action and closed after, as the command does.
"""
from __future__ import annotations

import secrets
import time
import uuid
from dataclasses import dataclass


class PartnerError(Exception):
    """A registration or removal that did not happen; the message says why, in one line."""


@dataclass(frozen=True, slots=True)
class PartnerRow:
    pk: int
    label: str
    state: str
    versions_url: str


def _open(site):
    from protocols.ocpi.settings import OcpiSettings
    from protocols.ocpi.store import OcpiStore

    settings = OcpiSettings.from_site(site)
    return settings, OcpiStore.open(settings.store_path(site))


def listed(site) -> list[PartnerRow]:
    _, store = _open(site)
    try:
        return [PartnerRow(p.pk, p.label, p.state, p.versions_url) for p in store.parties(registered_only=False)]
    finally:
        store.close()


async def register(site, *, versions_url: str, token_a: str) -> str:
    """Register with an eMSP or hub (we call them with their token A); the new partner's label."""
    import aiohttp

    from protocols.ocpi.client import OcpiClient
    from protocols.ocpi.cpo import credentials_object, register_with
    from protocols.ocpi.errors import OcpiError

    if not versions_url.startswith(("https://", "http://")) or not token_a.strip():
        raise PartnerError("versions URL (http:// or https://) and token A are both needed")
    settings, store = _open(site)
    name = settings.business_name or site.operator or site.name or site.site_id

    def credentials(token):
        return credentials_object(token, base_url=settings.public_url, country_code=settings.country_code,
                                  party_id=settings.party_id, name=name)
    try:
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
            client = OcpiClient(http, new_id=lambda: str(uuid.uuid4()))
            party = await register_with(client, store, versions_url=versions_url, token_a=token_a.strip(),
                                        credentials=credentials, new_token=lambda: secrets.token_urlsafe(32),
                                        clock=time.time)
    except OcpiError as exc:
        raise PartnerError(f"{versions_url}: OCPI status {exc.status_code}: {exc.message}") from None
    except aiohttp.ClientError as exc:
        raise PartnerError(f"{versions_url}: not reachable ({exc})") from None
    finally:
        store.close()
    return party.label


async def unregister(site, pk: int) -> str:
    """Tell the partner (DELETE credentials) when it can be told, and forget it here anyway."""
    import aiohttp

    from protocols.ocpi.client import OcpiClient
    from protocols.ocpi.errors import OcpiError

    _, store = _open(site)
    try:
        party = store.party(pk)
        if party is None:
            raise PartnerError(f"no partner {pk}")
        url = party.endpoint("credentials", "RECEIVER") or party.endpoint("credentials", "SENDER")
        if url and party.outgoing_token:
            try:
                async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as http:
                    await OcpiClient(http, new_id=lambda: str(uuid.uuid4())).call("DELETE", url,
                                                                                  token=party.outgoing_token)
            except (OcpiError, aiohttp.ClientError):
                pass  # removed here all the same, as ``urja ocpi unregister`` does
        store.delete_party(party.pk)
        return party.label
    finally:
        store.close()
