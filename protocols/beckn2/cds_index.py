"""What the reference catalog service knows: published catalogs, indexed by place.

A catalog's resources are found by where their charging station is
(``resourceAttributes.chargingStation.serviceLocation.geo``, else the provider's
``availableAt``), a GeoJSON ``Point`` ``[lon, lat]``. Each is filed under its geohash cell at
every search precision the MQTT binding uses, so a circle is answered from the same cells a
search on MQTT would go to (``topics.search_cells``: the same reach, the same refusal beyond it)
and then by exact distance.

A discover asks with the spec's shapes (``beckn.yaml`` Intent):

- ``spatial: [{"op": "S_DWITHIN", "geometry": Point, "distanceMeters": m}]``: a circle;
- ``spatial: [{"op": "S_WITHIN", "geometry": Polygon}]``: an area, e.g. a geohash cell
  (``geohash_polygon``);
- ``filters: {"type": "jsonpath", "expression": "$[?(@.resourceAttributes.connectorType == 'CCS2')]"}``:
  equality on a resource's fields, several joined by ``&&``; no other JSONPath is understood;
- ``textSearch``: words that must all occur in the resource's or the catalog's names.

The answer is each matching catalog with only its matching resources, and the offers that
cover them.
"""
from __future__ import annotations

import copy
import math
import re
from dataclasses import dataclass, field
from typing import Any, Callable

from protocols.beckn2.cds_wire import WireError
from protocols.mqtt import geohash
from protocols.mqtt.topics import SEARCH_PRECISIONS, TopicError, search_cells

MAX_RESOURCES = 64
MAX_POLYGON_POINTS = 256
_FILTER_RE = re.compile(r"^\$\[\?\((.+)\)\]$")
_TERM_RE = re.compile(r"^@\.([A-Za-z_][A-Za-z0-9_:@]*(?:\.[A-Za-z_][A-Za-z0-9_:@]*)*)\s*==\s*'([^'\\]*)'$")


@dataclass(frozen=True)
class Circle:
    lat: float
    lon: float
    radius_km: float
    cells: tuple[str, ...] = ()  # the search cover (``topics.search_cells``), computed once

    def contains(self, lat: float, lon: float) -> bool:
        return geohash.distance_km(self.lat, self.lon, lat, lon) <= self.radius_km


@dataclass(frozen=True)
class Polygon:
    ring: tuple[tuple[float, float], ...]  # (lon, lat), closed

    def contains(self, lat: float, lon: float) -> bool:
        inside = False
        pts = self.ring
        for (x1, y1), (x2, y2) in zip(pts, pts[1:], strict=False):
            if (y1 > lat) != (y2 > lat) and lon < x1 + (lat - y1) * (x2 - x1) / (y2 - y1):
                inside = not inside
        return inside or any(abs(x - lon) < 1e-12 and abs(y - lat) < 1e-12 for x, y in pts)


@dataclass(frozen=True)
class DiscoverQuery:
    area: Circle | Polygon | None = None
    terms: tuple[tuple[tuple[str, ...], str], ...] = ()
    words: tuple[str, ...] = ()

    def matches(self, resource: dict, point: tuple[float, float] | None, names: Callable[[], str]) -> bool:
        if self.area is not None and (point is None or not self.area.contains(*point)):
            return False
        for path, value in self.terms:
            node: Any = resource
            for key in path:
                node = node.get(key) if isinstance(node, dict) else None
            if node is None or str(node) != value:
                return False
        if not self.words:
            return True
        text = names()
        return all(w in text for w in self.words)


def geohash_polygon(cell: str) -> dict:
    """The GeoJSON Polygon of a geohash cell, to ask for everything inside it."""
    lat_min, lat_max, lon_min, lon_max = geohash.bounds(cell)
    return {"type": "Polygon", "coordinates": [[[lon_min, lat_min], [lon_max, lat_min], [lon_max, lat_max],
                                                [lon_min, lat_max], [lon_min, lat_min]]]}


def _number(value: object, field_: str) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise WireError(field_, f"must be a number (got {value!r})")
    return float(value)


def _point(geo: object, field_: str) -> tuple[float, float]:
    """A GeoJSON Point as (lat, lon)."""
    if not isinstance(geo, dict) or geo.get("type") != "Point":
        raise WireError(field_, "must be a GeoJSON Point")
    coords = geo.get("coordinates")
    if not isinstance(coords, list) or len(coords) < 2:
        raise WireError(f"{field_}.coordinates", "must be [longitude, latitude]")
    lon, lat = _number(coords[0], f"{field_}.coordinates[0]"), _number(coords[1], f"{field_}.coordinates[1]")
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise WireError(f"{field_}.coordinates", f"[{lon:g}, {lat:g}] is not a place (longitude first)")
    return lat, lon


def _polygon(geo: dict, field_: str) -> Polygon:
    rings = geo.get("coordinates")
    if not isinstance(rings, list) or not rings or not isinstance(rings[0], list) or len(rings[0]) < 4:
        raise WireError(f"{field_}.coordinates", "a Polygon needs a closed ring of at least 4 positions")
    ring = rings[0]
    if len(ring) > MAX_POLYGON_POINTS:
        raise WireError(f"{field_}.coordinates", f"at most {MAX_POLYGON_POINTS} positions")
    pts = []
    for i, pos in enumerate(ring):
        lat, lon = _point({"type": "Point", "coordinates": pos}, f"{field_}.coordinates[0][{i}]")
        pts.append((lon, lat))
    if pts[0] != pts[-1]:
        raise WireError(f"{field_}.coordinates", "the ring must end where it starts")
    return Polygon(tuple(pts))


def _area(spatial: object) -> Circle | Polygon | None:
    if spatial is None:
        return None
    if not isinstance(spatial, list) or len(spatial) != 1 or not isinstance(spatial[0], dict):
        raise WireError("message.intent.spatial", "give exactly one spatial constraint")
    c = spatial[0]
    where = "message.intent.spatial[0]"
    op = c.get("op")
    if op == "S_DWITHIN":
        lat, lon = _point(c.get("geometry"), f"{where}.geometry")
        metres = _number(c.get("distanceMeters"), f"{where}.distanceMeters")
        if not metres > 0:
            raise WireError(f"{where}.distanceMeters", "must be more than 0")
        try:
            cells = search_cells(lat, lon, metres / 1000.0)
        except TopicError as exc:
            raise WireError(f"{where}.distanceMeters", str(exc)) from None
        return Circle(lat, lon, metres / 1000.0, tuple(cells))
    if op == "S_WITHIN" and isinstance(c.get("geometry"), dict) and c["geometry"].get("type") == "Polygon":
        return _polygon(c["geometry"], f"{where}.geometry")
    raise WireError(f"{where}.op", f"{op!r} is not understood here (allowed: S_DWITHIN with a Point and "
                                   "distanceMeters, S_WITHIN with a Polygon)")


def _terms(filters: object) -> tuple[tuple[tuple[str, ...], str], ...]:
    if filters is None:
        return ()
    expression = filters.get("expression") if isinstance(filters, dict) else None
    m = _FILTER_RE.match(expression.strip()) if isinstance(expression, str) else None
    terms = []
    for part in (m.group(1).split("&&") if m else ()):
        t = _TERM_RE.match(part.strip())
        if t is None:
            m = None
            break
        if ":" in t.group(1):
            raise WireError("message.intent.filters.expression",
                            f"{t.group(1)!r} uses prefixed names (beckn:id, beckn:itemAttributes) of the 2.0 release "
                            "candidate; the LTS resource has id and resourceAttributes")
        terms.append((tuple(t.group(1).split(".")), t.group(2)))
    if m is None or not terms:
        raise WireError("message.intent.filters.expression",
                        f"{expression!r} is not understood here (allowed: $[?(@.PATH == 'VALUE' && ...)] over a "
                        "resource, e.g. $[?(@.resourceAttributes.connectorType == 'CCS2')])")
    return tuple(terms)


def parse_discover(message: dict) -> DiscoverQuery:
    """The query a discover message asks; ``WireError`` names the part not understood."""
    intent = message.get("intent")
    if not isinstance(intent, dict):
        raise WireError("message.intent", "must be an object (Beckn 2.0 puts every discover qualifier in it)")
    unknown = sorted(set(intent) - {"spatial", "filters", "textSearch"})
    if unknown:
        raise WireError(f"message.intent.{unknown[0]}", "is not understood here (allowed: spatial, filters, textSearch)")
    text = intent.get("textSearch") or message.get("textSearch") or ""
    if not isinstance(text, str) or len(text) > 200:
        raise WireError("message.intent.textSearch", "must be a string of at most 200 characters")
    return DiscoverQuery(_area(intent.get("spatial")), _terms(intent.get("filters")), tuple(text.lower().split()))


def _names(*descriptors: object) -> str:
    return " ".join(str(d.get(k, "")) for d in descriptors if isinstance(d, dict)
                    for k in ("name", "shortDesc")).lower()


@dataclass
class _Entry:
    key: tuple[str, str]
    catalog: dict
    points: list[tuple[float, float] | None]  # per resource, (lat, lon)
    cells: set[tuple[int, str]] = field(default_factory=set)


def resource_points(catalog: dict) -> list[tuple[float, float] | None]:
    """Where each resource is; ``WireError`` names a location that is not a place."""
    provider_at = None
    for i, loc in enumerate((catalog.get("provider") or {}).get("availableAt") or []):
        if isinstance(loc, dict) and "geo" in loc:
            provider_at = _point(loc["geo"], f"catalog.provider.availableAt[{i}].geo")
            break
    points = []
    for i, res in enumerate(catalog.get("resources") or []):
        attrs = res.get("resourceAttributes") if isinstance(res, dict) else None
        station = attrs.get("chargingStation") if isinstance(attrs, dict) else None
        loc = station.get("serviceLocation") if isinstance(station, dict) else None
        if isinstance(loc, dict) and "geo" in loc:
            points.append(_point(loc["geo"],
                                 f"catalog.resources[{i}].resourceAttributes.chargingStation.serviceLocation.geo"))
        else:
            points.append(provider_at)
    return points


class CatalogIndex:
    """Published catalogs by (bppId, catalog id), their resources filed by geohash cell."""

    def __init__(self):
        self._entries: dict[tuple[str, str], _Entry] = {}
        self._cells: dict[tuple[int, str], set[tuple[str, str]]] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, bpp_id: str, catalog_id: str) -> dict | None:
        entry = self._entries.get((bpp_id, catalog_id))
        return entry.catalog if entry else None

    def put(self, bpp_id: str, catalog: dict) -> None:
        """Store (or replace) a catalog already checked; an inactive one is withdrawn."""
        key = (bpp_id, catalog["id"])
        self.remove(*key)
        if catalog.get("isActive") is False:
            return
        entry = _Entry(key, copy.deepcopy(catalog), resource_points(catalog))
        for point in entry.points:
            if point is not None:
                entry.cells.update((p, geohash.encode(point[0], point[1], p)) for p in SEARCH_PRECISIONS)
        for cell in entry.cells:
            self._cells.setdefault(cell, set()).add(key)
        self._entries[key] = entry

    def remove(self, bpp_id: str, catalog_id: str) -> bool:
        entry = self._entries.pop((bpp_id, catalog_id), None)
        if entry is None:
            return False
        for cell in entry.cells:
            keys = self._cells.get(cell)
            if keys is not None:
                keys.discard(entry.key)
                if not keys:
                    del self._cells[cell]
        return True

    def _candidates(self, area) -> list[_Entry]:
        if isinstance(area, Circle):
            keys: set[tuple[str, str]] = set()
            for cell in area.cells or search_cells(area.lat, area.lon, area.radius_km):
                keys.update(self._cells.get((len(cell), cell), ()))
            return [self._entries[k] for k in sorted(keys)]
        return [self._entries[k] for k in sorted(self._entries)]

    def query(self, query: DiscoverQuery, *, limit: int) -> list[dict]:
        """Matching catalogs, each with only its matching resources (and their offers)."""
        found = []
        for entry in self._candidates(query.area):
            catalog = entry.catalog
            kept = [res for res, point in zip(catalog.get("resources") or [], entry.points, strict=True)
                    if query.matches(res, point, lambda res=res, catalog=catalog: _names(catalog.get("descriptor"),
                                                                         res.get("descriptor")))]
            if not kept:
                continue
            ids = {res.get("id") for res in kept}
            offers = [o for o in catalog.get("offers") or []
                      if not o.get("resourceIds") or ids.intersection(o.get("resourceIds"))]
            answer = {**catalog, "resources": kept}
            if "offers" in catalog:
                answer["offers"] = offers
            found.append(answer)
            if len(found) >= limit:
                break
        return found
