"""Versions and credentials: both directions of the registration handshake, token rotation
and leaving.

Token B (the one a partner will use to call us) is stored before we send it, because the
partner may call our versions with it while still handling our request; a failed exchange
removes it again, so a half-finished registration leaves nothing that works.
"""
from __future__ import annotations

import logging
from urllib.parse import urlparse

from protocols.ocpi import errors as E
from protocols.ocpi.client import OcpiClient
from protocols.ocpi.errors import MethodNotAllowed, OcpiError, PartnerError, Unauthorized
from protocols.ocpi.middleware import Reply
from protocols.ocpi.store import OcpiStore, Party, PartyIdsTaken
from protocols.ocpi.wire import VERSION, require, token_hash

log = logging.getLogger("urja.ocpi")

# Modules we serve, with our role in each (listed in version details).
_MODULES = (("credentials", "SENDER"), ("credentials", "RECEIVER"), ("locations", "SENDER"), ("tariffs", "SENDER"),
            ("sessions", "SENDER"), ("cdrs", "SENDER"), ("commands", "RECEIVER"), ("tokens", "RECEIVER"),
            ("hubclientinfo", "RECEIVER"))


def credentials_object(token: str, *, base_url: str, country_code: str, party_id: str, name: str) -> dict:
    """Our Credentials object: the token the partner must use, our versions URL, our CPO role."""
    return {"token": token, "url": f"{base_url.rstrip('/')}/versions", "roles": [
        {"role": "CPO", "business_details": {"name": name[:100]}, "party_id": party_id,
         "country_code": country_code}]}


def parse_credentials(body) -> tuple[str, str, list]:
    """(token, versions url, roles) of a partner's Credentials object, checked."""
    token = require(body, "token", str, where="credentials", max_len=64)
    url = require(body, "url", str, where="credentials", max_len=255)
    if urlparse(url).scheme not in ("http", "https") or not urlparse(url).netloc:
        raise OcpiError(E.INVALID_PARAMETERS, f"credentials.url must be an http(s) URL, got {url!r}")
    roles = require(body, "roles", list, where="credentials")
    if not roles:
        raise OcpiError(E.INVALID_PARAMETERS, "credentials.roles must list at least one role")
    clean = []
    for i, role in enumerate(roles):
        where = f"credentials.roles[{i}]"
        require(role, "role", str, where=where)
        cc = require(role, "country_code", str, where=where)
        pid = require(role, "party_id", str, where=where)
        if len(cc) != 2 or len(pid) != 3:
            raise OcpiError(E.INVALID_PARAMETERS, f"{where}: country_code needs 2 and party_id 3 characters")
        require(role, "business_details", dict, where=where)
        clean.append(role)
    return token, url, clean


class CredentialsModule:
    """Versions and credentials endpoints of ``OcpiCpo``, and the calls we initiate."""

    # ================================================================== versions
    async def _get_versions(self, request):
        self._auth(request, token_a=True, pending=True)
        return Reply([{"version": VERSION, "url": f"{self.base_url}/{VERSION}"}])

    async def _get_version_details(self, request):
        self._auth(request, token_a=True, pending=True)
        base = f"{self.base_url}/{VERSION}"
        return Reply({"version": VERSION, "endpoints": [
            {"identifier": ident, "role": role, "url": f"{base}/{ident}"} for ident, role in _MODULES]})

    # ================================================================== credentials
    def credentials(self, token: str) -> dict:
        site = self.service.site
        name = self.business_name or site.operator or site.name or site.site_id
        return credentials_object(token, base_url=self.base_url, country_code=self.country_code,
                                  party_id=self.party_id, name=name)

    def _parse_credentials(self, body) -> tuple[str, str, list]:
        """A partner's Credentials, refused when they point back at this charger: our own
        versions URL (or a token we issued) would register the charger with itself, and every
        later call of the partner's registration would land here instead of at the partner."""
        token, url, roles = parse_credentials(body)
        ours = self.base_url.rstrip("/").lower()
        if url.rstrip("/").lower() == ours or url.lower().startswith(ours + "/"):
            raise OcpiError(E.INVALID_PARAMETERS, f"credentials.url {url!r} is this charger's own API; it must be "
                                                  f"the versions URL of the party registering")
        hashed = token_hash(token)
        if self.store.party_by_hash(hashed) is not None or self.store.has_token_a(hashed):
            raise OcpiError(E.INVALID_PARAMETERS, "credentials.token is a token this charger issued; it must be "
                                                  "the token for calling the party registering")
        return token, url, roles

    @staticmethod
    def _ids_taken(exc: PartyIdsTaken) -> OcpiError:
        return MethodNotAllowed(f"party ids {', '.join(exc.ids)} are registered already; the registered party "
                                f"updates its registration with PUT and its current credentials token")

    async def _get_credentials(self, request):
        caller = self._auth(request, pending=True)
        return Reply(self.credentials(caller.token))

    async def _post_credentials(self, request):
        caller = self._auth(request, token_a=True, pending=True)
        if caller.party is not None:
            raise MethodNotAllowed("already registered with this token; use PUT to update or DELETE to unregister")
        token_b, url, roles = self._parse_credentials(await self._body(request))
        try:
            self.store.check_roles_free(roles)
        except PartyIdsTaken as exc:
            raise self._ids_taken(exc) from None
        _, endpoints = await self._client().discover(url, token=token_b)
        token_c = self._new_token()
        try:
            party = self.store.register_party(incoming_token=token_c, outgoing_token=token_b, versions_url=url,
                                              version=VERSION, endpoints=endpoints, roles=roles,
                                              now_s=self._clock(), used_token_a_hash=caller.token_a_hash)
        except PartyIdsTaken as exc:
            raise self._ids_taken(exc) from None
        if party is None:
            raise Unauthorized("this registration token was used meanwhile")
        log.info("OCPI: %s registered with us", party.label)
        self._initial_push(party)
        return Reply(self.credentials(token_c))

    async def _put_credentials(self, request):
        caller = self._auth(request, token_a=True, pending=True)
        if caller.party is None or caller.party.state != "registered":
            raise MethodNotAllowed("not registered; use POST to register")
        token_b, url, roles = self._parse_credentials(await self._body(request))
        try:
            self.store.check_roles_free(roles, keep_pk=caller.party.pk)
        except PartyIdsTaken as exc:
            raise self._ids_taken(exc) from None
        _, endpoints = await self._client().discover(url, token=token_b)
        token_c = self._new_token()
        self.store.update_party(caller.party.pk, incoming_token=token_c, outgoing_token=token_b, versions_url=url,
                                version=VERSION, endpoints=endpoints, roles=roles, now_s=self._clock())
        return Reply(self.credentials(token_c))

    async def _delete_credentials(self, request):
        caller = self._auth(request, token_a=True, pending=True)
        if caller.party is None or caller.party.state != "registered":
            raise MethodNotAllowed("not registered; nothing to delete")
        self.store.delete_party(caller.party.pk)
        log.info("OCPI: %s unregistered", caller.party.label)
        return Reply(None)

    def create_token_a(self, label: str = "") -> str:
        """A one-time registration token for an eMSP (``urja ocpi token create`` does the same)."""
        token = self._new_token()
        self.store.add_token_a(token, label=label, now_s=self._clock())
        return token

    async def register(self, versions_url: str, token_a: str) -> Party:
        """Register this charger with an eMSP or hub that gave us ``token_a`` (we are the client)."""
        return await register_with(self._client(), self.store, versions_url=versions_url, token_a=token_a,
                                   credentials=self.credentials, new_token=self._new_token, clock=self._clock,
                                   on_registered=self._initial_push)

    async def rotate(self, party_pk: int) -> Party:
        """Fresh tokens both ways with a registered partner (PUT on their credentials)."""
        party = self.store.party(party_pk)
        if party is None or party.state != "registered":
            raise OcpiError(E.INVALID_PARAMETERS, f"no registered party {party_pk}")
        return await rotate_with(self._client(), self.store, party, credentials=self.credentials,
                                 new_token=self._new_token, clock=self._clock)

    async def unregister(self, party_pk: int) -> None:
        """Tell a partner we leave (DELETE on their credentials) and forget it either way."""
        party = self.store.party(party_pk)
        if party is None:
            raise OcpiError(E.INVALID_PARAMETERS, f"no registered party {party_pk}")
        url = party.endpoint("credentials", "RECEIVER") or party.endpoint("credentials", "SENDER")
        try:
            if url and party.outgoing_token:
                await self._client().call("DELETE", url, token=party.outgoing_token)
        finally:
            self.store.delete_party(party_pk)


def _credentials_url(endpoints: list) -> str:
    """The partner's credentials module (its RECEIVER interface when it names roles)."""
    return next((e["url"] for e in endpoints if e["identifier"] == "credentials" and e.get("role") == "RECEIVER"),
                None) or next(e["url"] for e in endpoints if e["identifier"] == "credentials")


async def _exchange_credentials(client: OcpiClient, method: str, url: str, token: str, ours: dict) -> tuple:
    """Send our credentials (POST to register, PUT to update); returns theirs (token, url, roles)."""
    status, reply = await client.call(method, url, token=token, body=ours)
    data = reply.get("data")
    if status != 200 or reply.get("status_code") != 1000 or not isinstance(data, dict):
        raise PartnerError(E.UNABLE_TO_USE_CLIENT_API,
                           f"{method} {url}: HTTP {status}, status_code {reply.get('status_code')!r}: "
                           f"{reply.get('status_message', '')}")
    return parse_credentials(data)


async def rotate_with(client: OcpiClient, store: OcpiStore, party: Party, *, credentials, new_token,
                      clock) -> Party:
    """Update a registration from our side (OCPI credentials PUT): the partner gets a new token
    for calling us and answers with a new token for calling it; its endpoints are read anew.

    Why now and not only at registration: a token that leaked, a partner that moved or added
    modules. The new token is accepted (like a registration's token B) before the PUT, since
    the partner may check our versions with it while handling the PUT; until the partner has
    answered, the old token keeps working, and if the PUT fails nothing changes.
    """
    if not party.outgoing_token:
        raise OcpiError(E.INVALID_PARAMETERS, f"{party.label} has given us no token to call it with")
    _, endpoints = await client.discover(party.versions_url, token=party.outgoing_token)
    url = _credentials_url(endpoints)
    token_b = new_token()
    pending = store.add_pending(incoming_token=token_b, versions_url=party.versions_url, version=VERSION,
                                endpoints=endpoints, now_s=clock())
    try:
        token_c, their_url, roles = await _exchange_credentials(client, "PUT", url, party.outgoing_token,
                                                                credentials(token_b))
    except BaseException:
        store.delete_party(pending.pk)
        raise
    updated = store.finish_rotation(party.pk, pending_pk=pending.pk, outgoing_token=token_c, versions_url=their_url,
                                    endpoints=endpoints, roles=roles, now_s=clock())
    if their_url != party.versions_url:  # the partner moved: read its endpoints where it is now
        try:
            _, endpoints = await client.discover(their_url, token=token_c)
            updated = store.update_party(party.pk, endpoints=endpoints, now_s=clock())
        except PartnerError as exc:
            log.warning("OCPI: %s moved to %s but its endpoints could not be read there (%s); "
                        "the old ones stay until the next update", updated.label, their_url, exc)
    log.info("OCPI: credentials with %s renewed", updated.label)
    return updated


async def register_with(client: OcpiClient, store: OcpiStore, *, versions_url: str, token_a: str, credentials,
                        new_token, clock, on_registered=None) -> Party:
    """Registration where we are the client: discover with token A, offer token B, keep token C.

    Token B is stored (hashed) before the POST so the partner may call our versions with it
    while handling our request; a failed registration removes it again.
    """
    _, endpoints = await client.discover(versions_url, token=token_a)
    url = _credentials_url(endpoints)
    token_b = new_token()
    pending = store.add_pending(incoming_token=token_b, versions_url=versions_url, version=VERSION,
                                endpoints=endpoints, now_s=clock())
    try:
        token_c, their_url, roles = await _exchange_credentials(client, "POST", url, token_a, credentials(token_b))
        party = store.complete_pending(pending.pk, outgoing_token=token_c, roles=roles, versions_url=their_url,
                                       now_s=clock())
    except BaseException:
        store.delete_party(pending.pk)
        raise
    if on_registered is not None:
        on_registered(party)
    return party
