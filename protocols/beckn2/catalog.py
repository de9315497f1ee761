"""The charger's catalog as a Beckn 2.0 ``Catalog`` (what ``on_discover`` and publishing carry).

One connector is one ``Resource`` (its EVSE), typed by the EvChargingService pack
(``ChargingService``: connector type, power, station and place); the tariff is one ``Offer``
over all of them, typed by the EvChargingOffer pack, with the unit price as a
``PriceSpecification`` and the charger's signed offer (tariff, prices, validity; a detached
Ed25519 signature over canonical JSON) in ``descriptor.docs``; the site owner is the
``Provider`` (EvChargingPointOperator pack) and the agency certificate that vouches for the
charger's key is in the catalog's ``descriptor.docs``. A resource's ``descriptor.code`` is its
availability (Available, Occupied, Reserved, Unavailable) and ``shortDesc`` the connector
standard as OCPI names it, because the pack's four connector types do not name every socket.

Public API::

    catalog_v2(bpp, *, now_s=None) -> dict        the charger's current signed catalog (2.0)
    catalog_from_v1(catalog, *, bpp_id, bpp_uri) -> dict
    catalog_to_v1(catalog) -> dict                what the reference node reads
"""
from __future__ import annotations

from typing import Any

from protocols.beckn.tags import tag_group, tag_values
from protocols.beckn.vocabulary import TAG_SPECS
from protocols.beckn2 import documents as docs_
from protocols.beckn2 import vocabulary as v
from protocols.beckn2.contract import decimal_text, descriptor_v1, descriptor_v2, number, price_v1, price_v2

EVSE_MARK = ":evse:"
_STANDARDS = {val: key for key, val in v.CONNECTOR_TYPES.items()}


def catalog_v2(bpp, *, now_s: float | None = None, bpp_uri: str | None = None) -> dict:
    """The charger's signed catalog as a 2.0 ``Catalog``: the same content, cache and signed
    offer as the 1.1 ``on_search`` (``Bpp._catalog``), so both profiles show one truth.
    ``bpp_uri``: where buyers reach the charger when that is not its own binding (a bridge)."""
    held = bpp._catalog(bpp.clock() if now_s is None else now_s)
    return catalog_from_v1(held.message["catalog"], bpp_id=bpp.bpp_id, bpp_uri=bpp_uri or bpp.bpp_uri)


def _gps(text: Any) -> tuple[float, float] | None:
    try:
        lat, lon = (float(x) for x in str(text).split(","))
    except ValueError:
        return None
    return lat, lon


def _location(loc: dict) -> dict | None:
    gps = _gps(loc.get("gps"))
    if gps is None:
        return None
    out: dict = {"geo": {"type": "Point", "coordinates": [gps[1], gps[0]]}}
    address = {}
    for k1, k2, inner in (("address", "streetAddress", None), ("city", "addressLocality", "name"),
                          ("state", "addressRegion", "name"), ("country", "addressCountry", "code"),
                          ("area_code", "postalCode", None)):
        val = loc.get(k1)
        if inner and isinstance(val, dict):
            val = val.get(inner)
        if isinstance(val, str) and val:
            address[k2] = val
    if address:
        out["address"] = address
    return out


HOURS_TAG = "opening-hours"  # the 1.1 provider's tag group (``protocols.beckn.catalog``)


def _windows(hours: dict | None) -> list[dict]:
    """The 1.1 opening-hours tags as 2.0 ``TimePeriod``s, one a day and period (none: always open)."""
    out = []
    for day, spans in (hours or {}).items():
        if day.title() not in _DAY_NAMES:
            continue
        for span in spans.split(","):
            begin, _, end = span.partition("-")
            out.append({"@type": "TimePeriod", "dayOfWeek": day.title(), "startTime": f"{begin}:00",
                        "endTime": f"{end}:00"})
    return out


def _hours_v1(windows: Any) -> dict | None:
    if not isinstance(windows, list):
        return None
    hours: dict = {}
    for w in windows:
        if isinstance(w, dict) and w.get("dayOfWeek") in _DAY_NAMES and isinstance(w.get("startTime"), str) \
                and isinstance(w.get("endTime"), str):
            span = f"{w['startTime'][:5]}-{w['endTime'][:5]}"
            day = w["dayOfWeek"].upper()
            hours[day] = f"{hours[day]},{span}" if day in hours else span
    return hours or None


_DAY_NAMES = ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday")


def _resource(ful: dict, *, bpp_id: str, location: dict | None, station_id: str | None,
              windows: list | None = None) -> dict:
    specs = tag_values(ful.get("tags"), TAG_SPECS) or {}
    fid = str(ful.get("id"))
    descriptor: dict = {"name": f"Connector {fid}"}
    if specs.get("availability"):
        descriptor["code"] = specs["availability"]
    if specs.get("connector-type"):
        descriptor["shortDesc"] = specs["connector-type"]
    resource: dict = {"id": f"{bpp_id}{EVSE_MARK}{fid}", "descriptor": descriptor}
    connector = v.CONNECTOR_TYPES.get(specs.get("connector-type"))
    power = number(specs.get("power-rating-kw"))
    if connector and isinstance(power, (int, float)) and power >= 1:
        attrs: dict = {"@context": v.SERVICE_CONTEXT, "@type": "ChargingService", "evseId": fid,
                       "connectorType": connector, "maxPowerKW": power, "reservationSupported": True}
        if specs.get("charger-type") == "DC":
            attrs["powerType"] = "DC"
        if station_id is not None:
            station: dict = {"id": station_id}
            if location is not None:
                station["serviceLocation"] = location
            attrs["chargingStation"] = station
        resource["resourceAttributes"] = attrs
    if windows:
        resource["availabilityWindow"] = windows
    return resource


def _offer(offer: dict, item: dict, provider: dict, resource_ids: list) -> dict:
    docs, _ = docs_.split_tags(offer.get("tags"))
    descriptor = descriptor_v2(offer.get("descriptor"))
    if docs:
        descriptor["docs"] = docs
    out: dict = {"id": offer.get("id", "tariff"), "descriptor": descriptor, "resourceIds": resource_ids,
                 "provider": provider}
    if isinstance(item.get("price"), dict):
        out["considerations"] = [price_v2(item["price"], code="UNIT_PRICE")]
    rng = (offer.get("time") or {}).get("range") if isinstance(offer.get("time"), dict) else None
    if isinstance(rng, dict) and (rng.get("start") or rng.get("end")):
        out["validity"] = {k2: rng[k1] for k1, k2 in (("start", "startDate"), ("end", "endDate")) if rng.get(k1)}
    out["offerAttributes"] = {"@context": v.OFFER_CONTEXT, "@type": "ChargingOffer", "tariffModel": "PER_KWH"}
    return out


def catalog_from_v1(catalog: dict, *, bpp_id: str | None, bpp_uri: str | None) -> dict:
    """A 1.1 catalog (one provider: this charger) as the 2.0 ``Catalog``."""
    providers = catalog.get("providers") or [{}]
    p = providers[0] if isinstance(providers[0], dict) else {}
    bpp_id = bpp_id or p.get("id") or "charger"
    locs = [loc for loc in p.get("locations") or [] if isinstance(loc, dict)]
    location = _location(locs[0]) if locs else None
    provider: dict = {"id": p.get("id", bpp_id), "descriptor": descriptor_v2(p.get("descriptor"))
                      or {"name": bpp_id}}
    if location is not None:
        provider["availableAt"] = [location]
    operator = (p.get("descriptor") or {}).get("short_desc") or (p.get("descriptor") or {}).get("name")
    if operator:
        provider["providerAttributes"] = {"@context": v.OPERATOR_CONTEXT, "@type": "ChargingPointOperator",
                                          "operatorName": operator}
    station = locs[0].get("id") if locs else None
    windows = _windows(tag_values(p.get("tags"), HOURS_TAG))
    resources = [_resource(f, bpp_id=bpp_id, location=location, station_id=station, windows=windows)
                 for f in p.get("fulfillments") or [] if isinstance(f, dict)]
    items = [i for i in p.get("items") or [] if isinstance(i, dict)]
    item = items[0] if items else {}
    offers = [_offer(o, item, {"id": provider["id"], "descriptor": provider["descriptor"]},
                     [r["id"] for r in resources]) for o in p.get("offers") or [] if isinstance(o, dict)]
    descriptor = descriptor_v2(catalog.get("descriptor")) or {"name": provider["descriptor"].get("name", bpp_id)}
    docs, _ = docs_.split_tags(p.get("tags"))
    if docs:
        descriptor["docs"] = docs
    out: dict = {"id": f"{bpp_id}:catalog", "descriptor": descriptor, "bppId": bpp_id}
    if bpp_uri:
        out["bppUri"] = bpp_uri
    out["provider"] = provider
    out["resources"] = resources
    out["offers"] = offers
    return out


def _location_v1(loc: Any, loc_id: str) -> dict | None:
    if not isinstance(loc, dict):
        return None
    coords = (loc.get("geo") or {}).get("coordinates") if isinstance(loc.get("geo"), dict) else None
    if not (isinstance(coords, list) and len(coords) >= 2):
        return None
    out: dict = {"id": loc_id, "gps": f"{float(coords[1]):.6f},{float(coords[0]):.6f}"}
    addr = loc.get("address") if isinstance(loc.get("address"), dict) else {}
    if addr.get("streetAddress"):
        out["address"] = addr["streetAddress"]
    if addr.get("addressLocality"):
        out["city"] = {"name": addr["addressLocality"]}
    if addr.get("addressCountry"):
        out["country"] = {"code": addr["addressCountry"]}
    return out


def catalog_to_v1(catalog: Any) -> dict:
    """A 2.0 ``Catalog`` as the 1.1 catalog the reference node reads (name, place, price,
    connectors, signed offer, certificate)."""
    if not isinstance(catalog, dict):
        return {}
    prov = catalog.get("provider") if isinstance(catalog.get("provider"), dict) else {}
    pid = prov.get("id") or catalog.get("bppId")
    provider: dict = {"id": pid, "descriptor": descriptor_v1(prov.get("descriptor"))}
    places = prov.get("availableAt") if isinstance(prov.get("availableAt"), list) else []
    loc = _location_v1(places[0], pid) if places else None
    if loc is not None:
        provider["locations"] = [loc]
    fuls = []
    for r in catalog.get("resources") or []:
        if not isinstance(r, dict) or not isinstance(r.get("id"), str) or EVSE_MARK not in r["id"]:
            continue
        d = r.get("descriptor") if isinstance(r.get("descriptor"), dict) else {}
        attrs = r.get("resourceAttributes") if isinstance(r.get("resourceAttributes"), dict) else {}
        specs = {"charger-type": "DC" if attrs.get("powerType") == "DC" else "AC",
                 "connector-type": d.get("shortDesc") or _STANDARDS.get(attrs.get("connectorType"), "UNKNOWN")}
        if attrs.get("maxPowerKW") is not None:
            specs["power-rating-kw"] = decimal_text(attrs["maxPowerKW"])
        if d.get("code"):
            specs["availability"] = d["code"]
        fuls.append({"id": r["id"].rsplit(EVSE_MARK, 1)[1], "type": "CHARGING",
                     "tags": [tag_group(TAG_SPECS, specs, name="Charging Point Specifications")],
                     "state": {"descriptor": {"code": str(d.get("code", "unknown")).lower()}}})
    provider["fulfillments"] = fuls
    offers, item = [], {"id": "energy", "descriptor": {"code": "energy", "name": "EV charging energy"},
                        "fulfillment_ids": [f["id"] for f in fuls]}
    for o in catalog.get("offers") or []:
        if not isinstance(o, dict):
            continue
        cons = o.get("considerations") if isinstance(o.get("considerations"), list) else []
        price = price_v1(cons[0]) if cons else None
        if price is not None and "price" not in item:
            item["price"] = price
        d = o.get("descriptor") if isinstance(o.get("descriptor"), dict) else {}
        out: dict = {"id": o.get("id"), "descriptor": descriptor_v1(d), "item_ids": ["energy"]}
        val = o.get("validity") if isinstance(o.get("validity"), dict) else {}
        if val:
            out["time"] = {"range": {k1: val[k2] for k1, k2 in (("start", "startDate"), ("end", "endDate"))
                                     if val.get(k2)}}
        tags = docs_.tags_of(d.get("docs"))
        if tags:
            out["tags"] = tags
        offers.append(out)
    provider["items"] = [item]
    provider["offers"] = offers
    tags = docs_.tags_of((catalog.get("descriptor") or {}).get("docs") if isinstance(catalog.get("descriptor"),
                                                                                       dict) else None)
    resources = [r for r in catalog.get("resources") or [] if isinstance(r, dict)]
    hours = _hours_v1(resources[0].get("availabilityWindow")) if resources else None
    if hours:
        tags = list(tags or []) + [tag_group(HOURS_TAG, hours, name="Opening hours")]
    if tags:
        provider["tags"] = tags
    return {"descriptor": descriptor_v1(catalog.get("descriptor")), "providers": [provider]}
