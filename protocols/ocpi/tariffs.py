"""The tariffs module (SENDER): the charger's one tariff, shown to every registered party."""
from __future__ import annotations


class TariffsModule:
    """GET of the tariff list, paged like every list."""

    async def _get_tariffs(self, request):
        self._auth(request)
        return self._page(request, [self.render.tariff()])
