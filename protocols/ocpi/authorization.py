"""Whether an eMSP's token may charge here now: the whitelist rules of OCPI 2.2.1 and the
eMSP's real-time authorization, and tying the session the charger then starts to that eMSP.

``OcpiCpo`` registers itself with the facade as a token authority, so a card shown at the
charger that an eMSP has pushed is decided here (after the site's own allow-list).
"""
from __future__ import annotations

import asyncio

from protocols.ocpi import errors as E
from protocols.ocpi.errors import PartnerError
from protocols.ocpi.store import Party


class AuthDecision:
    """The outcome of authorizing an eMSP token (whitelist, real-time, offline fallback)."""

    __slots__ = ("allowed", "reason", "token", "owner_pk", "authorization_reference", "auth_method")

    def __init__(self, allowed, reason, *, token=None, owner_pk=None, authorization_reference=None,
                 auth_method="WHITELIST"):
        self.allowed = allowed
        self.reason = reason
        self.token = token
        self.owner_pk = owner_pk
        self.authorization_reference = authorization_reference
        self.auth_method = auth_method

    def __repr__(self):
        return f"AuthDecision({self.allowed}, {self.reason!r})"


class TokenAuthorization:
    """``authorize``/``decide_token`` and ``remember_authorization`` of ``OcpiCpo``."""

    async def authorize(self, uid: str, *, token_type: str | None = None, evse_uid: str | None = None) -> AuthDecision:
        """Whether an eMSP token (e.g. an RFID card at the socket) may charge here now."""
        found = self.store.find_token(uid, token_type)
        if found is None:
            return AuthDecision(False, "unknown token")
        token, owner_pk = found
        party = self.store.party(owner_pk)
        if party is None:
            return AuthDecision(False, "the token's eMSP is no longer registered")
        return await self._decide(token, party, evse_uid=evse_uid)

    async def decide_token(self, uid: str, *, token_type: str | None = None,
                           evse_uid: str | None = None) -> AuthDecision | None:
        """The charger's question for a card at its reader (``agent.service.TokenAuthority``):
        None when no registered eMSP has pushed this token, otherwise ``authorize``'s answer."""
        if self.store.find_token(uid, token_type) is None:
            return None
        return await self.authorize(uid, token_type=token_type, evse_uid=evse_uid)

    def bind_session(self, reference: str, decision: AuthDecision) -> None:
        self.remember_authorization(reference, decision)

    def remember_authorization(self, reference: str, decision: AuthDecision) -> None:
        """Tie a session the charger starts after ``authorize`` (its ``reference``) to the eMSP
        token, so its Session and CDR name that token and go to that eMSP only."""
        if not decision.allowed or decision.token is None:
            raise ValueError("only an allowed decision can be remembered")
        token = decision.token
        self.store.add_session_ref(reference, owner_pk=decision.owner_pk, cdr_token={
            "country_code": token["country_code"], "party_id": token["party_id"], "uid": token["uid"],
            "type": token.get("type", "RFID"), "contract_id": token.get("contract_id", token["uid"])},
            auth_method=decision.auth_method, authorization_reference=decision.authorization_reference,
            now_s=self._clock())

    async def _decide(self, token: dict, party: Party, *, evse_uid=None) -> AuthDecision:
        """Whitelist semantics: ALWAYS and ALLOWED decide locally; ALLOWED_OFFLINE asks the eMSP
        and falls back to ``valid`` when it cannot be reached; NEVER must be asked."""
        stored = self.store.token(token.get("country_code", ""), token.get("party_id", ""), token["uid"],
                                  token.get("type", "RFID"))
        token = stored or token
        valid = token.get("valid", True)
        whitelist = token.get("whitelist", "ALLOWED")
        common = {"token": token, "owner_pk": party.pk}
        if not valid:
            return AuthDecision(False, "token is not valid", **common)
        if whitelist in ("ALWAYS", "ALLOWED"):
            return AuthDecision(True, f"whitelist {whitelist}", **common)
        try:
            info = await self._authorize_remote(token, party, evse_uid=evse_uid)
        except PartnerError as exc:
            if whitelist == "ALLOWED_OFFLINE":
                return AuthDecision(True, f"eMSP unreachable, allowed offline ({exc.message})", **common)
            return AuthDecision(False, f"eMSP authorization failed: {exc.message}", **common)
        allowed = info.get("allowed")
        return AuthDecision(allowed == "ALLOWED", f"eMSP says {allowed}", auth_method="AUTH_REQUEST",
                            authorization_reference=info.get("authorization_reference"), **common)

    async def _authorize_remote(self, token: dict, party: Party, *, evse_uid=None) -> dict:
        url = party.endpoint("tokens", "SENDER")
        if not url or not party.outgoing_token:
            raise PartnerError(E.NO_MATCHING_ENDPOINTS, f"{party.label} offers no tokens SENDER endpoint")
        body = {"location_id": self.render.location_id}
        if evse_uid:
            body["evse_uids"] = [evse_uid]
        to = (token.get("country_code"), token.get("party_id"))
        try:
            status, reply = await asyncio.wait_for(
                self._client().call("POST", f"{url.rstrip('/')}/{token['uid']}/authorize", token=party.outgoing_token,
                                    body=body, params={"type": token.get("type", "RFID")}, to_party=to),
                self.authorize_timeout_s)
        except asyncio.TimeoutError:
            raise PartnerError(E.UNABLE_TO_USE_CLIENT_API, "authorize request timed out") from None
        data = reply.get("data")
        if status == 404 or reply.get("status_code") == E.UNKNOWN_TOKEN:
            return {"allowed": "NOT_ALLOWED"}
        if status != 200 or reply.get("status_code") != 1000:
            raise PartnerError(E.UNABLE_TO_USE_CLIENT_API, f"authorize answered HTTP {status}, "
                                                           f"status_code {reply.get('status_code')!r}")
        if not isinstance(data, dict):
            raise PartnerError(E.UNABLE_TO_USE_CLIENT_API, "authorize answered HTTP 200, status_code 1000, but "
                                                           f"its data is {_shape(data)}, not an AuthorizationInfo "
                                                           "object")
        return data


def _shape(data) -> str:
    """What a partner sent where an object belongs, for a log line that says what was wrong."""
    if isinstance(data, list):
        return f"a JSON array of {len(data)} item(s)"
    return "missing" if data is None else f"a JSON {type(data).__name__}"
