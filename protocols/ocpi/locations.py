"""The locations module (SENDER): the charger is one location whose EVSEs are its connectors."""
from __future__ import annotations

from protocols.ocpi import errors as E
from protocols.ocpi.errors import OcpiError
from protocols.ocpi.middleware import Reply


class LocationsModule:
    """GET of the location, one EVSE or one connector (shown to every registered party)."""

    def _location_or_404(self, location_id: str):
        if location_id != self.render.location_id:
            raise OcpiError(E.UNKNOWN_LOCATION, f"unknown location {location_id!r}", http_status=404)
        return self.render.location(config_updated_s=self.config_updated_s)

    async def _get_locations(self, request):
        self._auth(request)
        return self._page(request, [self.render.location(config_updated_s=self.config_updated_s)])

    async def _get_location(self, request):
        self._auth(request)
        info = request.match_info
        location = self._location_or_404(info["location_id"])
        if "evse_uid" not in info:
            return Reply(location)
        evse = next((e for e in location["evses"] if e["uid"] == info["evse_uid"]), None)
        if evse is None:
            raise OcpiError(E.UNKNOWN_LOCATION, f"unknown EVSE {info['evse_uid']!r} at location "
                                                f"{info['location_id']!r}", http_status=404)
        if "connector_id" not in info:
            return Reply(evse)
        connector = next((c for c in evse["connectors"] if c["id"] == info["connector_id"]), None)
        if connector is None:
            raise OcpiError(E.UNKNOWN_LOCATION, f"unknown connector {info['connector_id']!r} on EVSE "
                                                f"{info['evse_uid']!r}", http_status=404)
        return Reply(connector)
