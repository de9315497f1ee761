"""The sessions module (SENDER), and the one rule of who may see a session."""
from __future__ import annotations

from protocols.ocpi import errors as E
from protocols.ocpi.errors import OcpiError
from protocols.ocpi.middleware import Reply
from protocols.ocpi.store import Party
from protocols.ocpi.wire import page_params, require


def owner_ids(ref) -> tuple[str, str]:
    """The party a session belongs to: the issuer of the token it was started or authorized with
    (the eMSP behind a hub when the hub relayed it)."""
    return ref.cdr_token.get("country_code"), ref.cdr_token.get("party_id")


class SessionsModule:
    """GET of the caller's sessions; ``_visible_to`` also guards CDRs, pushes and commands."""

    def _visible_to(self, session, party: Party, acting=None) -> tuple[bool, object]:
        """An eMSP sees only the sessions tied to it: started by its START_SESSION or authorized
        with one of its tokens (the store's session reference says which). Sessions no eMSP
        started (free vend, the site's allow-list, network customers) and other eMSPs' sessions
        are the operator's business data: showing them would hand a competitor the charger's
        utilisation. Through a hub the same holds per party behind it: ``acting`` (the party a
        request speaks for) sees only the sessions of its own tokens."""
        ref = self.store.session_ref(session.reference)
        visible = ref is not None and ref.owner_pk == party.pk and (acting is None or owner_ids(ref) == acting)
        return visible, ref

    async def _get_sessions(self, request):
        caller = self._auth(request)
        _, _, date_from, date_to = page_params(request.query)
        items = []
        for session in self._sessions_changed(date_from, date_to):
            visible, ref = self._visible_to(session, caller.party, caller.acting)
            if visible:
                item = self.session_object(session, ref)
                if self._in_window(item, date_from, date_to):
                    items.append(item)
        items.sort(key=lambda o: (o["last_updated"], o["id"]))
        return self._page(request, items, filtered=True)

    async def _put_charging_preferences(self, request):
        """Charging preferences (smart charging) are not supported by this charger: for a session
        of the caller the answer is NOT_POSSIBLE, as 2.2.1 has a CPO that cannot fulfil them
        answer; an unknown or another party's session is answered as unknown."""
        caller = self._auth(request)
        session_id = request.match_info["session_id"]
        body = await self._body(request)
        require(body, "profile_type", str, where="charging_preferences")
        session = self._session(session_id)
        if session is None or not self._visible_to(session, caller.party, caller.acting)[0]:
            raise OcpiError(E.INVALID_PARAMETERS, f"unknown session {session_id!r}", http_status=404)
        return Reply("NOT_POSSIBLE")
