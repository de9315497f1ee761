"""The tokens module (RECEIVER): eMSPs push their tokens (GET/PUT/PATCH), each party only
its own (its country_code and party_id; a hub those of the party it speaks for, or of any
party behind it in a broadcast); cards at the charger are checked against them
(``protocols.ocpi.authorization``). Tokens are kept and shown without null members: the
Token schema has no nulls, and an eMSP's ``"visual_number": null`` means "none"."""
from __future__ import annotations

from protocols.ocpi import errors as E
from protocols.ocpi.errors import OcpiError
from protocols.ocpi.middleware import Caller, Reply
from protocols.ocpi.wire import parse_time, require, require_enum

TOKEN_TYPES = ("AD_HOC_USER", "APP_USER", "OTHER", "RFID")
WHITELIST_TYPES = ("ALWAYS", "ALLOWED", "ALLOWED_OFFLINE", "NEVER")


class TokensModule:
    """GET, PUT and PATCH of a pushed token."""

    def _token_path(self, request, caller: Caller) -> tuple[str, str, str, str]:
        info = request.match_info
        cc, pid, uid = info["country_code"], info["party_id"], info["uid"]
        token_type = request.query.get("type", "RFID")
        if token_type not in TOKEN_TYPES:
            raise OcpiError(E.INVALID_PARAMETERS, f"query type={token_type!r}; allowed: {', '.join(TOKEN_TYPES)}")
        if not self._may_act_for(caller, cc, pid):
            raise OcpiError(E.INVALID_PARAMETERS, f"tokens of {cc}*{pid} cannot be managed by {caller.party.label}")
        if len(uid) > 36:
            raise OcpiError(E.INVALID_PARAMETERS, "token uid is longer than 36 characters")
        return cc, pid, uid, token_type

    @staticmethod
    def _check_token_fields(token: dict, where: str, *, partial: bool) -> None:
        for name, limit in (("country_code", 2), ("party_id", 3), ("uid", 36), ("contract_id", 36),
                            ("visual_number", 64), ("issuer", 64), ("group_id", 36), ("language", 2)):
            optional = partial or name in ("visual_number", "group_id", "language")
            require(token, name, str, where=where, max_len=limit, optional=optional)
        require_enum(token, "type", TOKEN_TYPES, where=where, optional=partial)
        require_enum(token, "whitelist", WHITELIST_TYPES, where=where, optional=partial)
        require(token, "valid", bool, where=where, optional=partial)
        parse_time(require(token, "last_updated", str, where=where), f"{where}.last_updated")
        for name in ("default_profile_type",):
            require_enum(token, name, ("CHEAP", "FAST", "GREEN", "REGULAR"), where=where, optional=True)
        if token.get("energy_contract") is not None:
            require(token["energy_contract"], "supplier_name", str, where=f"{where}.energy_contract")

    async def _get_token(self, request):
        caller = self._auth(request)
        cc, pid, uid, token_type = self._token_path(request, caller)
        token = self.store.token(cc, pid, uid, token_type)
        if token is None:
            raise OcpiError(E.UNKNOWN_TOKEN, f"unknown token {cc}*{pid} {uid!r} ({token_type})", http_status=404)
        return Reply(token)

    async def _put_token(self, request):
        caller = self._auth(request)
        party = caller.party
        cc, pid, uid, token_type = self._token_path(request, caller)
        token = await self._body(request)
        self._check_token_fields(token, "token", partial=False)
        if (token["country_code"], token["party_id"], token["uid"], token["type"]) != (cc, pid, uid, token_type):
            raise OcpiError(E.INVALID_PARAMETERS, "token country_code/party_id/uid/type differ from the URL "
                                                  f"({cc}/{pid}/{uid}?type={token_type})")
        created = self.store.put_token(token, owner_pk=party.pk,
                                       last_updated_s=parse_time(token["last_updated"], "token.last_updated"))
        return Reply(None, http_status=201 if created else 200)

    async def _patch_token(self, request):
        caller = self._auth(request)
        party = caller.party
        cc, pid, uid, token_type = self._token_path(request, caller)
        patch = await self._body(request)
        self._check_token_fields(patch, "token", partial=True)
        existing = self.store.token(cc, pid, uid, token_type)
        if existing is None:
            raise OcpiError(E.UNKNOWN_TOKEN, f"unknown token {cc}*{pid} {uid!r} ({token_type})", http_status=404)
        for name, value in (("country_code", cc), ("party_id", pid), ("uid", uid), ("type", token_type)):
            if name in patch and patch[name] != value:
                raise OcpiError(E.INVALID_PARAMETERS, f"token.{name} cannot be changed by PATCH")
        merged = {**existing, **patch}
        self.store.put_token(merged, owner_pk=party.pk,
                             last_updated_s=parse_time(merged["last_updated"], "token.last_updated"))
        return Reply(None)
