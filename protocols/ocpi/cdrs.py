"""The cdrs module (SENDER): a finished session's CDR, priced like its signed receipt."""
from __future__ import annotations


class CdrsModule:
    """GET of the caller's CDRs; a CDR exists once the session's receipt does."""

    def cdr_for(self, session, ref=None) -> dict | None:
        receipt = self.service.receipt(session.session_id)
        if receipt is None:
            return None
        return self.render.cdr(session, receipt, ref)

    async def _get_cdrs(self, request):
        party = self._auth(request).party
        items = []
        for session in self.service.sessions():
            if session.stop_s is None:
                continue
            visible, ref = self._visible_to(session, party)
            if visible:
                cdr = self.cdr_for(session, ref)
                if cdr is not None:
                    items.append(cdr)
        return self._page(request, items)
