"""The cdrs module (SENDER): a finished session's CDR, priced like its signed receipt."""
from __future__ import annotations

from protocols.ocpi.freshness import CDR_ISSUE_SLACK_S
from protocols.ocpi.wire import page_params


class CdrsModule:
    """GET of the caller's CDRs; a CDR exists once the session's receipt does."""

    def cdr_for(self, session, ref=None) -> dict | None:
        receipt = self.service.receipt(session.session_id)
        if receipt is None:
            return None
        return self.cdr_object(session, receipt, ref)

    async def _get_cdrs(self, request):
        caller = self._auth(request)
        _, _, date_from, date_to = page_params(request.query)
        items = []
        for session in self._sessions_changed(date_from, date_to, kind="cdr", slack_s=CDR_ISSUE_SLACK_S):
            if session.stop_s is None:
                continue
            visible, ref = self._visible_to(session, caller.party, caller.acting)
            if visible:
                cdr = self.cdr_for(session, ref)
                if cdr is not None and self._in_window(cdr, date_from, date_to):
                    items.append(cdr)
        items.sort(key=lambda o: (o["last_updated"], o["id"]))
        return self._page(request, items, filtered=True)
