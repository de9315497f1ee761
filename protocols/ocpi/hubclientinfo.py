"""The hubclientinfo module (RECEIVER): what a hub says of the parties connected to it.

A hub pushes a ClientInfo for each party behind it (CONNECTED, OFFLINE, PLANNED, SUSPENDED).
The charger keeps them per hub registration and heeds them: a party the hub reports
SUSPENDED may not speak through the hub and gets no Session, CDR or command result any more
(its queued pushes are dropped); one reported OFFLINE gets its pushes later (they stay
queued and are retried). A configuration module: routing headers are not used with it.
"""
from __future__ import annotations

from protocols.ocpi import errors as E
from protocols.ocpi.errors import OcpiError
from protocols.ocpi.middleware import Reply
from protocols.ocpi.wire import format_time, parse_time, require, require_enum

ROLES = ("CPO", "EMSP", "HUB", "NAP", "NSP", "OTHER", "SCSP")
STATUSES = ("CONNECTED", "OFFLINE", "PLANNED", "SUSPENDED")


class HubClientInfoModule:
    """GET and PUT of a ClientInfo object, from a registration with role HUB only."""

    def _hub_caller(self, request):
        party = self._auth(request, pending=False).party
        if not party.is_hub:
            raise OcpiError(E.CLIENT_ERROR, f"{party.label} is not registered with role HUB; only a hub "
                                            f"reports ClientInfo", http_status=403)
        info = request.match_info
        cc, pid = info["country_code"], info["party_id"]
        if len(cc) != 2 or len(pid) != 3:
            raise OcpiError(E.INVALID_PARAMETERS, "country_code needs 2 and party_id 3 characters")
        return party, cc, pid

    async def _get_client_info(self, request):
        party, cc, pid = self._hub_caller(request)
        found = self.store.client_infos(party.pk, cc, pid)
        if not found:
            raise OcpiError(E.CLIENT_ERROR, f"no ClientInfo for {cc}*{pid}", http_status=404)
        newest = max(found, key=lambda i: i["last_updated_s"])
        return Reply({"party_id": pid, "country_code": cc, "role": newest["role"], "status": newest["status"],
                      "last_updated": format_time(newest["last_updated_s"])})

    async def _put_client_info(self, request):
        party, cc, pid = self._hub_caller(request)
        body = await self._body(request)
        where = "ClientInfo"
        for name, value in (("country_code", cc), ("party_id", pid)):
            if require(body, name, str, where=where) != value:
                raise OcpiError(E.INVALID_PARAMETERS, f"{where}.{name} differs from the URL ({cc}/{pid})")
        require_enum(body, "role", ROLES, where=where)
        require_enum(body, "status", STATUSES, where=where)
        updated_s = parse_time(require(body, "last_updated", str, where=where), f"{where}.last_updated")
        created = self.store.put_client_info(party.pk, body, last_updated_s=updated_s)
        return Reply(None, http_status=201 if created else 200)
