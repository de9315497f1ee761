"""The charger's own objects rendered as OCPI 2.2.1 objects.

Pure functions of the facade's snapshots: the same session, tariff and receipt that feed the
network binding and the receipt are shown to eMSPs, so the numbers cannot drift apart.
"""
from __future__ import annotations

import base64
import re
from decimal import ROUND_HALF_UP, Decimal

from protocols.ocpi.wire import format_time

CONNECTOR_TYPES = frozenset((
    "CHADEMO", "CHAOJI", *(f"DOMESTIC_{c}" for c in "ABCDEFGHIJKLMNO"), "GBT_AC", "GBT_DC",
    "IEC_60309_2_single_16", "IEC_60309_2_three_16", "IEC_60309_2_three_32", "IEC_60309_2_three_64",
    "IEC_62196_T1", "IEC_62196_T1_COMBO", "IEC_62196_T2", "IEC_62196_T2_COMBO", "IEC_62196_T3A",
    "IEC_62196_T3C", "NEMA_5_20", "NEMA_6_30", "NEMA_6_50", "NEMA_10_30", "NEMA_10_50", "NEMA_14_30",
    "NEMA_14_50", "PANTOGRAPH_BOTTOM_UP", "PANTOGRAPH_TOP_DOWN", "TESLA_R", "TESLA_S"))

# Names boards and site files use for sockets, mapped onto OCPI ConnectorType. Indian 3-pin
# sockets: 6 A (IS 1293 / BS 546 small) is type D, 16 A (BS 546 large) is type M.
_STANDARD_ALIASES = {
    "type2": "IEC_62196_T2", "t2": "IEC_62196_T2", "iec_62196_t2": "IEC_62196_T2",
    "type1": "IEC_62196_T1", "ccs2": "IEC_62196_T2_COMBO", "ccs1": "IEC_62196_T1_COMBO",
    "chademo": "CHADEMO", "gbt_ac": "GBT_AC", "gbt_dc": "GBT_DC",
    "is_1293": "DOMESTIC_M", "is1293": "DOMESTIC_M", "india_16a": "DOMESTIC_M", "in_16a": "DOMESTIC_M",
    "domestic_16a": "DOMESTIC_M", "bs546_15a": "DOMESTIC_M", "type_m": "DOMESTIC_M",
    "india_6a": "DOMESTIC_D", "in_6a": "DOMESTIC_D", "domestic_6a": "DOMESTIC_D", "type_d": "DOMESTIC_D",
    "socket": "DOMESTIC_M", "3pin": "DOMESTIC_M", "industrial_16a": "IEC_60309_2_single_16",
}

EVSE_STATUSES = ("AVAILABLE", "BLOCKED", "CHARGING", "INOPERATIVE", "OUTOFORDER", "PLANNED", "REMOVED",
                 "RESERVED", "UNKNOWN")


def connector_standard(value) -> str:
    """OCPI ConnectorType for a board's connector name; a socket without a name is taken as the
    common Indian 16 A 3-pin socket, since that is what a pilot-less charger offers here."""
    if isinstance(value, str):
        if value in CONNECTOR_TYPES:
            return value
        key = value.strip().lower().replace("-", "_").replace(" ", "_")
        if key.upper() in CONNECTOR_TYPES:
            return key.upper()
        if key in _STANDARD_ALIASES:
            return _STANDARD_ALIASES[key]
    return "DOMESTIC_M"


def evse_id(country_code: str, party_id: str, evse_uid) -> str:
    """eMI3 EVSE id (``IN*URJ*E...``) built from our EVSE uid."""
    tail = re.sub(r"[^A-Z0-9]", "", str(evse_uid).upper())[:30] or "1"
    return f"{country_code}*{party_id}*E{tail}"


def location_id(site) -> str:
    return str(site.site_id)[:36]


_FOUR = Decimal("0.0001")


def _coord(value: float) -> str:
    return f"{float(value):.6f}"


class Renderer:
    """Builds OCPI objects for one charger (country code, party id and site fixed).

    ``can_unlock`` says whether the charger can release a cable lock. Only then do EVSEs
    advertise UNLOCK_CAPABLE: an eMSP offers its drivers an unlock button from that capability,
    and on a lockless socket every press would end in NOT_SUPPORTED. It is False until the
    charger's facade can say otherwise.
    """

    def __init__(self, *, service, country_code: str, party_id: str, can_unlock: bool = False):
        self.service = service
        self.country_code = country_code
        self.party_id = party_id
        self.can_unlock = bool(can_unlock)

    # ----------------------------------------------------------------- locations
    @property
    def location_id(self) -> str:
        return location_id(self.service.site)

    def connector(self, view) -> dict:
        phases = view.phases or 1
        power_type = view.power_type or ("AC_3_PHASE" if phases == 3 else "AC_1_PHASE")
        out = {
            "id": str(view.connector_id),
            "standard": connector_standard(view.standard),
            "format": view.format if view.format in ("SOCKET", "CABLE") else "SOCKET",
            "power_type": power_type,
            "max_voltage": int(view.max_voltage_v or 230),
            "max_amperage": int(view.max_current_a or 16),
            "last_updated": format_time(self._updated(view)),
        }
        if view.max_power_w:
            out["max_electric_power"] = int(view.max_power_w)
        tariff_id = self.tariff_id()
        if tariff_id:
            out["tariff_ids"] = [tariff_id]
        return out

    def _updated(self, view) -> float:
        return float(view.last_updated_s) if view.last_updated_s is not None else self.service.now_s()

    def evse(self, views) -> dict:
        """One EVSE from its connectors; its ``last_updated`` is the newest of theirs."""
        first = views[0]
        status = first.status if first.status in EVSE_STATUSES else "UNKNOWN"
        capabilities = ["REMOTE_START_STOP_CAPABLE", "RESERVABLE"]
        if self.can_unlock:
            capabilities.append("UNLOCK_CAPABLE")
        out = {
            "uid": str(first.evse_uid),
            "evse_id": evse_id(self.country_code, self.party_id, first.evse_uid),
            "status": status,
            "capabilities": capabilities,
            "connectors": [self.connector(v) for v in views],
            "last_updated": format_time(max(self._updated(v) for v in views)),
        }
        return out

    def evses(self) -> list[dict]:
        groups: dict = {}
        for view in self.service.connectors():
            groups.setdefault(str(view.evse_uid), []).append(view)
        return [self.evse(views) for views in groups.values()]

    def location(self, *, config_updated_s: float = 0.0) -> dict:
        site = self.service.site
        place = site.place
        evses = self.evses()
        newest = max([config_updated_s] + [_epoch(e["last_updated"]) for e in evses])
        out = {
            "country_code": self.country_code,
            "party_id": self.party_id,
            "id": self.location_id,
            "publish": True,
            "name": (site.name or site.site_id)[:255],
            "address": (place.address or site.name or "-")[:45],
            "city": (place.city or "-")[:45],
            "country": place.country,
            "coordinates": {"latitude": _coord(place.lat), "longitude": _coord(place.lon)},
            "evses": evses,
            "time_zone": place.timezone,
            "last_updated": format_time(newest),
        }
        if place.postal_code:
            out["postal_code"] = place.postal_code[:10]
        if place.state:
            out["state"] = place.state[:20]
        if site.operator:
            out["operator"] = {"name": site.operator[:100]}
        hours = getattr(site, "opening_hours", None)
        if hours is not None:  # the hours the charger starts sessions in; a running one goes on
            out["opening_times"] = hours.ocpi()
            out["charging_when_closed"] = True
        return out

    def connector_view(self, evse_uid: str, connector_id: str | None = None):
        for view in self.service.connectors():
            if str(view.evse_uid) == evse_uid and (connector_id is None or str(view.connector_id) == connector_id):
                return view
        return None

    # ----------------------------------------------------------------- tariffs
    def tariff_id(self) -> str | None:
        try:
            return str(self.service.tariff().get("id") or "")[:36] or None
        except Exception:  # noqa: BLE001 - a charger without a tariff still shows its location
            return None

    def tariff(self) -> dict:
        data = dict(self.service.tariff())
        data["country_code"] = self.country_code
        data["party_id"] = self.party_id
        data.setdefault("last_updated", format_time(self.service.now_s()))
        return data

    # ----------------------------------------------------------------- sessions
    def cdr_token(self, session, ref) -> dict:
        if ref is not None:
            return dict(ref.cdr_token)
        uid = str(session.token or session.auth_id or session.session_id)[:36]
        kind = {"allow_list": "RFID", "contract": "AD_HOC_USER", "ocpi": "APP_USER"}.get(session.source, "AD_HOC_USER")
        return {"country_code": self.country_code, "party_id": self.party_id, "uid": uid, "type": kind,
                "contract_id": uid}

    @staticmethod
    def auth_method(session, ref) -> str:
        if ref is not None:
            return ref.auth_method
        return "WHITELIST" if session.source in ("allow_list", "free_vend") else "COMMAND"

    def charging_periods(self, session) -> list[dict]:
        """The session's periods as a clearing house checks them: energy only where there was
        charging time, start times strictly increasing, currents per phase, 4 decimals.

        The tariff engine's periods (``agent.core``) may start with a reading taken before
        charging was seen (energy, no charging time) and may repeat a start time when a
        reading lands on a period boundary; both are folded here rather than in the engine,
        whose periods also price the session."""
        view = self.connector_view(str(session.evse_uid), str(session.connector_id))
        phases = max(1, int(getattr(view, "phases", None) or 1))
        out = []
        for period in plausible_periods(session.periods or ()):
            dims = [{"type": "ENERGY", "volume": decimals4(period["energy_wh"] / 1000)}]
            if period["time_s"]:
                dims.append({"type": "TIME", "volume": decimals4(period["time_s"] / 3600)})
            if period["parking_s"]:
                dims.append({"type": "PARKING_TIME", "volume": decimals4(period["parking_s"] / 3600)})
            for kind, key in (("MIN_CURRENT", "min_current_ma"), ("MAX_CURRENT", "max_current_ma")):
                if period[key] is not None:  # the engine sums the phases; OCPI means one phase
                    dims.append({"type": kind, "volume": decimals4(period[key] / 1000 / phases)})
            for kind, key in (("MIN_POWER", "min_power_w"), ("MAX_POWER", "max_power_w")):
                if period[key] is not None:
                    dims.append({"type": kind, "volume": decimals4(period[key] / 1000)})
            item = {"start_date_time": format_time(period["start_s"]), "dimensions": dims}
            if session.tariff_id:
                item["tariff_id"] = str(session.tariff_id)[:36]
            out.append(item)
        return out

    def session(self, session, ref=None) -> dict:
        currency = session.currency or (session.cost.currency if session.cost is not None else "INR")
        out = {
            "country_code": self.country_code,
            "party_id": self.party_id,
            "id": str(session.session_id)[:36],
            "start_date_time": format_time(session.start_s if session.start_s is not None else session.last_updated_s),
            "kwh": decimals4((session.energy_wh or 0) / 1000),
            "cdr_token": self.cdr_token(session, ref),
            "auth_method": self.auth_method(session, ref),
            "location_id": self.location_id,
            "evse_uid": str(session.evse_uid),
            "connector_id": str(session.connector_id),
            "currency": currency,
            "status": session.status if session.status in ("ACTIVE", "COMPLETED", "INVALID", "PENDING",
                                                           "RESERVATION") else "PENDING",
            "last_updated": format_time(session.last_updated_s if session.last_updated_s is not None
                                        else self.service.now_s()),
        }
        if session.stop_s is not None:
            out["end_date_time"] = format_time(session.stop_s)
        if ref is not None and ref.authorization_reference:
            out["authorization_reference"] = ref.authorization_reference
        if session.meter_serial:
            out["meter_id"] = str(session.meter_serial)[:255]
        periods = self.charging_periods(session)
        if periods:
            out["charging_periods"] = periods
        if session.cost is not None:
            out["total_cost"] = session.cost.to_ocpi()["total_cost"]
        return out

    # ----------------------------------------------------------------- CDRs
    def cdr(self, session, receipt: dict, ref=None) -> dict:
        """A CDR from the signed receipt: its readings, times and totals are the billed ones."""
        view = self.connector_view(str(session.evse_uid), str(session.connector_id))
        site = self.service.site
        place = site.place
        start_s = _epoch(receipt["start"]["time"]) if "start" in receipt else session.start_s
        stop_s = _epoch(receipt["stop"]["time"]) if "stop" in receipt else session.stop_s
        energy_wh = receipt.get("energy_wh", session.energy_wh or 0)
        cdr_id = str(receipt.get("receipt_id") or session.session_id)
        if len(cdr_id) > 36:
            cdr_id = str(session.session_id)[:36]
        currency = receipt.get("currency") or session.currency or "INR"
        out = {
            "country_code": self.country_code,
            "party_id": self.party_id,
            "id": cdr_id,
            "start_date_time": format_time(start_s),
            "end_date_time": format_time(stop_s),
            "session_id": str(session.session_id)[:36],
            "cdr_token": self.cdr_token(session, ref),
            "auth_method": self.auth_method(session, ref),
            "cdr_location": {
                "id": self.location_id,
                "name": (site.name or site.site_id)[:255],
                "address": (place.address or site.name or "-")[:45],
                "city": (place.city or "-")[:45],
                "country": place.country,
                "coordinates": {"latitude": _coord(place.lat), "longitude": _coord(place.lon)},
                "evse_uid": str(session.evse_uid),
                "evse_id": evse_id(self.country_code, self.party_id, session.evse_uid),
                "connector_id": str(session.connector_id),
                "connector_standard": connector_standard(view.standard if view else None),
                "connector_format": (view.format if view and view.format in ("SOCKET", "CABLE") else "SOCKET"),
                "connector_power_type": (view.power_type if view and view.power_type else
                                         ("AC_3_PHASE" if view and view.phases == 3 else "AC_1_PHASE")),
            },
            "currency": currency,
            "total_energy": decimals4(energy_wh / 1000),
            "total_time": decimals4(max(0.0, stop_s - start_s) / 3600),
            "last_updated": format_time(_epoch(receipt["issued_at"]) if "issued_at" in receipt else stop_s),
        }
        if ref is not None and ref.authorization_reference:
            out["authorization_reference"] = ref.authorization_reference
        meter = receipt.get("meter") or {}
        if meter.get("serial") or session.meter_serial:
            out["meter_id"] = str(meter.get("serial") or session.meter_serial)[:255]
        if place.postal_code:
            out["cdr_location"]["postal_code"] = place.postal_code[:10]
        if place.state:
            out["cdr_location"]["state"] = place.state[:20]
        try:
            out["tariffs"] = [self.tariff()]
        except Exception:  # noqa: BLE001 - a CDR stays valid without the tariff copy
            pass
        periods = self.charging_periods(session)
        out["charging_periods"] = periods or [{
            "start_date_time": format_time(start_s),
            "dimensions": [{"type": "ENERGY", "volume": decimals4(energy_wh / 1000)},
                           {"type": "TIME", "volume": decimals4(max(0.0, stop_s - start_s) / 3600)}]}]
        if session.cost is not None:
            totals = session.cost.to_ocpi()
            for key in ("total_cost", "total_energy_cost", "total_time_cost", "total_parking_cost",
                        "total_fixed_cost", "total_parking_time"):
                out[key] = decimals4(totals[key]) if key == "total_parking_time" else totals[key]
            if "total_reservation_cost" in totals:
                out["total_reservation_cost"] = totals["total_reservation_cost"]
        else:
            cost = receipt.get("cost_paise") or {}
            total = cost.get("total", 0) / 100
            tax = cost.get("tax", 0) / 100
            out["total_cost"] = {"excl_vat": round(total - tax, 2), "incl_vat": total}
        if receipt.get("receipt_id") and len(str(receipt["receipt_id"])) <= 39:
            out["invoice_reference_id"] = str(receipt["receipt_id"])
        signed = signed_data(receipt)
        if signed is not None:
            out["signed_data"] = signed
        return out


def signed_data(receipt: dict) -> dict | None:
    """OCPI SignedData from the receipt's OCMF document.

    OCMF keeps start and end readings in one signed document, so both signed values carry the
    whole document (base64) and a plain-text line with their own reading.
    """
    ocmf = receipt.get("ocmf")
    if not isinstance(ocmf, str) or not ocmf:
        return None
    blob = base64.b64encode(ocmf.encode("utf-8")).decode("ascii")
    if len(blob) > 5000:
        return None
    values = []
    for nature, key in (("Start", "start"), ("End", "stop")):
        reading = receipt.get(key) or {}
        plain = f"{reading.get('time', '')} {reading.get('meter_wh', '')} Wh"
        values.append({"nature": nature, "plain_data": plain[:512], "signed_data": blob})
    out = {"encoding_method": "OCMF", "encoding_method_version": 1, "signed_values": values}
    return out


def decimals4(value: float) -> float:
    """A quantity with at most the 4 decimals OCPI's number type carries; halves round away
    from zero (2.2.1 fixes 4 decimals for its numbers and leaves the rounding to the parties;
    half-up is the commercial rounding invoices use)."""
    return float(Decimal(repr(float(value))).quantize(_FOUR, rounding=ROUND_HALF_UP))


def plausible_periods(periods) -> list[dict]:
    """Periods ordered by start, one per start time, energy only where there is charging time.

    Periods sharing a start are added up (minimum of minimums, maximum of maximums). Energy of
    a period without charging time moves into the next period with charging time (at the end,
    the last one before): a period left with nothing else is absorbed whole and lends that
    period its earlier start; one with parking or reservation time keeps that time. Without
    any charging time at all the periods stay as they are: nowhere truthful takes the energy."""
    merged: list[dict] = []
    for p in sorted(periods, key=lambda p: p.start_s):
        item = {name: getattr(p, name) for name in _PERIOD_FIELDS}
        if merged and merged[-1]["start_s"] == item["start_s"]:
            _add(merged[-1], item)
        else:
            merged.append(item)
    if not any(p["time_s"] for p in merged):
        return merged
    out: list[dict] = []
    carried_wh, carried_start_s = 0, None
    for item in merged:
        if item["energy_wh"] and not item["time_s"]:
            carried_wh += item["energy_wh"]
            item["energy_wh"] = 0
            if not (item["parking_s"] or item["reservation_s"]):
                carried_start_s = item["start_s"] if carried_start_s is None else carried_start_s
                continue
            out.append(item)
            continue
        if item["time_s"] and carried_wh:
            item["energy_wh"] += carried_wh
            carried_wh = 0
            if carried_start_s is not None:
                item["start_s"] = carried_start_s
        carried_start_s = None
        out.append(item)
    if carried_wh:
        next(p for p in reversed(out) if p["time_s"])["energy_wh"] += carried_wh
    return out


_PERIOD_FIELDS = ("start_s", "energy_wh", "time_s", "parking_s", "min_current_ma", "max_current_ma",
                  "min_power_w", "max_power_w", "reservation_s")


def _add(into: dict, other: dict) -> None:
    for name in ("energy_wh", "time_s", "parking_s", "reservation_s"):
        into[name] = (into[name] or 0) + (other[name] or 0)
    for name, pick in (("min_current_ma", min), ("max_current_ma", max), ("min_power_w", min),
                       ("max_power_w", max)):
        values = [v for v in (into[name], other[name]) if v is not None]
        into[name] = pick(values) if values else None


def _epoch(text: str) -> float:
    from protocols.ocpi.wire import parse_time

    return parse_time(text, "time")
