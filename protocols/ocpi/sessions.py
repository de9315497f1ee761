"""The sessions module (SENDER), and the one rule of who may see a session."""
from __future__ import annotations

from protocols.ocpi.store import Party
from protocols.ocpi.wire import page_params


class SessionsModule:
    """GET of the caller's sessions; ``_visible_to`` also guards CDRs, pushes and commands."""

    def _visible_to(self, session, party: Party) -> tuple[bool, object]:
        """An eMSP sees only the sessions tied to it: started by its START_SESSION or authorized
        with one of its tokens (the store's session reference says which). Sessions no eMSP
        started (free vend, the site's allow-list, network customers) and other eMSPs' sessions
        are the operator's business data: showing them would hand a competitor the charger's
        utilisation."""
        ref = self.store.session_ref(session.reference)
        return (ref is not None and ref.owner_pk == party.pk), ref

    async def _get_sessions(self, request):
        party = self._auth(request).party
        _, _, date_from, date_to = page_params(request.query)
        items = []
        for session in self.service.sessions(since_s=date_from, until_s=date_to):
            visible, ref = self._visible_to(session, party)
            if visible:
                items.append((session, ref))
        return self._page(request, items, render=lambda item: self.render.session(*item))
