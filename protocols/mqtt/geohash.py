"""Geohash cells and the set of cells that covers a searched circle.

Searches travel only to the cells around the searched place, so a charger far away never
receives them. Correctness matters more than tightness here: a cell missing from a cover is a
charger that can never be found, while a spare cell only costs one message that nobody
answers. The cover is therefore built from the exact latitude/longitude bounds of the
spherical cap and pruned only with an exact point-to-cell distance.

Pure Python, no dependencies, so the same module can run on a small controller.
"""
from __future__ import annotations

import math

EARTH_RADIUS_KM = 6371.0088
_BASE32 = "0123456789bcdefghjkmnpqrstuvwxyz"
_DECODE = {c: i for i, c in enumerate(_BASE32)}
MAX_PRECISION = 12
MAX_RADIUS_KM = 2000  # wider circles are refused before any cell is computed


class GeohashError(ValueError):
    """A coordinate, radius, precision or cell name outside what a geohash can express."""


def _check_point(lat: float, lon: float) -> None:
    if not (isinstance(lat, (int, float)) and -90.0 <= lat <= 90.0):
        raise GeohashError(f"latitude {lat!r} must lie in [-90, 90] degrees")
    if not (isinstance(lon, (int, float)) and -180.0 <= lon <= 180.0):
        raise GeohashError(f"longitude {lon!r} must lie in [-180, 180] degrees")


def _check_precision(precision: int) -> None:
    if isinstance(precision, bool) or not isinstance(precision, int) or not 1 <= precision <= MAX_PRECISION:
        raise GeohashError(f"precision {precision!r} must be an integer from 1 to {MAX_PRECISION}")


def _bits(precision: int) -> tuple[int, int]:
    """Number of longitude and latitude bits in a cell name of ``precision`` characters."""
    total = 5 * precision
    return (total + 1) // 2, total // 2


def _index(lat: float, lon: float, precision: int) -> tuple[int, int]:
    lon_bits, lat_bits = _bits(precision)
    nlon, nlat = 1 << lon_bits, 1 << lat_bits
    ix = min(nlon - 1, int((lon + 180.0) / 360.0 * nlon))
    iy = min(nlat - 1, int((lat + 90.0) / 180.0 * nlat))
    return ix, iy


def _name(ix: int, iy: int, precision: int) -> str:
    lon_bits, lat_bits = _bits(precision)
    value = 0
    # Bits interleave starting with longitude, most significant first.
    for i in range(5 * precision):
        if i % 2 == 0:
            bit = (ix >> (lon_bits - 1 - i // 2)) & 1
        else:
            bit = (iy >> (lat_bits - 1 - i // 2)) & 1
        value = (value << 1) | bit
    chars = []
    for _ in range(precision):
        chars.append(_BASE32[value & 31])
        value >>= 5
    return "".join(reversed(chars))


def encode(lat: float, lon: float, precision: int) -> str:
    """The cell of ``precision`` characters that contains the point."""
    _check_point(lat, lon)
    _check_precision(precision)
    ix, iy = _index(lat, lon, precision)
    return _name(ix, iy, precision)


def bounds(cell: str) -> tuple[float, float, float, float]:
    """``(lat_min, lat_max, lon_min, lon_max)`` of a cell; a point on the min edges belongs to it."""
    if not isinstance(cell, str) or not 1 <= len(cell) <= MAX_PRECISION:
        raise GeohashError(f"cell {cell!r} must be 1 to {MAX_PRECISION} geohash characters")
    value = 0
    for c in cell:
        if c not in _DECODE:
            raise GeohashError(f"cell {cell!r} holds {c!r}, not a geohash character ({_BASE32})")
        value = (value << 5) | _DECODE[c]
    precision = len(cell)
    lon_bits, lat_bits = _bits(precision)
    ix = iy = 0
    for i in range(5 * precision):
        bit = (value >> (5 * precision - 1 - i)) & 1
        if i % 2 == 0:
            ix = (ix << 1) | bit
        else:
            iy = (iy << 1) | bit
    w, h = 360.0 / (1 << lon_bits), 180.0 / (1 << lat_bits)
    return -90.0 + iy * h, -90.0 + (iy + 1) * h, -180.0 + ix * w, -180.0 + (ix + 1) * w


def distance_km(lat1: float, lon1: float, lat2: float, lon2: float) -> float:
    """Great-circle distance (haversine on a sphere of mean Earth radius)."""
    p1, p2 = math.radians(lat1), math.radians(lat2)
    dp, dl = p2 - p1, math.radians(lon2 - lon1)
    a = math.sin(dp / 2) ** 2 + math.cos(p1) * math.cos(p2) * math.sin(dl / 2) ** 2
    return 2 * EARTH_RADIUS_KM * math.asin(min(1.0, math.sqrt(a)))


def _wrap_deg(d: float) -> float:
    return (d + 180.0) % 360.0 - 180.0


def _distance_to_cell_km(lat: float, lon: float, cell_bounds) -> float:
    """Exact shortest distance from a point to a lat/lon rectangle, or 0 when unsure (keeps the cell)."""
    lat_lo, lat_hi, lon_lo, lon_hi = cell_bounds
    d_lo, d_hi = _wrap_deg(lon - lon_lo), _wrap_deg(lon - lon_hi)
    if d_lo >= 0 and d_hi <= 0:  # inside the cell's longitude span: nearest point is on this meridian
        if lat_lo <= lat <= lat_hi:
            return 0.0
        nearest = lat_lo if lat < lat_lo else lat_hi
        return distance_km(lat, lon, nearest, lon)
    edge = lon_lo if abs(d_lo) <= abs(d_hi) else lon_hi
    dl = math.radians(_wrap_deg(lon - edge))
    if abs(dl) >= math.pi / 2:
        return 0.0
    # Foot of the perpendicular from the point to the edge meridian's great circle; the distance
    # grows monotonically away from it, so clamping to the edge gives the nearest edge point.
    foot = math.degrees(math.atan2(math.tan(math.radians(lat)), math.cos(dl)))
    return distance_km(lat, lon, min(lat_hi, max(lat_lo, foot)), edge)


def check_circle(lat: float, lon: float, radius_km: float) -> None:
    """Refuse a centre or radius no cover can be computed for, before any cell is."""
    _check_point(lat, lon)
    if not (isinstance(radius_km, (int, float)) and 0 <= radius_km <= MAX_RADIUS_KM):
        raise GeohashError(f"radius {radius_km!r} km must lie in [0, {MAX_RADIUS_KM}]")


def _cover_cells(lat: float, lon: float, radius_km: float, precision: int):
    """Yield the cells of ``precision`` that hold a point within ``radius_km``, row by row, the
    centre's own cell first; a cell may come twice. A generator, so that a caller counting
    against a budget stops computing at the first cell over it."""
    check_circle(lat, lon, radius_km)
    _check_precision(precision)
    d_deg = math.degrees(radius_km / EARTH_RADIUS_KM)
    lat_min, lat_max = lat - d_deg, lat + d_deg
    lon_bits, lat_bits = _bits(precision)
    nlon, nlat = 1 << lon_bits, 1 << lat_bits
    if lat_min <= -90.0 or lat_max >= 90.0:
        lat_min, lat_max = max(-90.0, lat_min), min(90.0, lat_max)
        lon_span = None  # the cap holds a pole: every longitude
    else:
        ratio = math.sin(math.radians(d_deg)) / math.cos(math.radians(lat))
        lon_span = None if ratio >= 1 else math.degrees(math.asin(ratio))
    _, iy0 = _index(lat_min, 0.0, precision)
    _, iy1 = _index(lat_max, 0.0, precision)
    if lon_span is None or 2 * lon_span >= 360.0 - 360.0 / nlon:
        columns = range(nlon)
    else:
        w = 360.0 / nlon
        ix0 = math.floor((lon - lon_span + 180.0) / w)
        ix1 = math.floor((lon + lon_span + 180.0) / w)
        columns = [i % nlon for i in range(ix0, ix1 + 1)]
    yield encode(lat, lon, precision)
    for iy in range(iy0, min(iy1, nlat - 1) + 1):
        for ix in columns:
            name = _name(ix, iy, precision)
            if _distance_to_cell_km(lat, lon, bounds(name)) <= radius_km:
                yield name


def cover(lat: float, lon: float, radius_km: float, precision: int) -> list[str]:
    """All cells of ``precision`` holding at least one point within ``radius_km`` of the centre, sorted."""
    return sorted(set(_cover_cells(lat, lon, radius_km, precision)))


def bounded_cover(lat: float, lon: float, radius_km: float, precision: int, max_cells: int) -> list[str] | None:
    """``cover``, or None as soon as it is known to hold more than ``max_cells`` cells.

    The count stops at the first cell over the budget, so asking whether a wide circle fits
    costs about ``max_cells`` rows of cells, never its whole fine cover (a 1,000 km circle has
    some 130,000 cells at precision 5)."""
    cells: set[str] = set()
    for name in _cover_cells(lat, lon, radius_km, precision):
        cells.add(name)
        if len(cells) > max_cells:
            return None
    return sorted(cells)


def choose_cover(lat: float, lon: float, radius_km: float, precisions, max_cells: int) -> tuple[int, list[str]]:
    """The finest precision in ``precisions`` whose cover has at most ``max_cells`` cells.

    Precisions are tried coarsest first and the first one over the budget ends the search: a
    finer cover never has fewer cells (every cell of a coarser cover holds a cell of the finer
    one), so no finer precision could fit, and its cover is never built."""
    best = None
    for p in sorted(precisions):
        cells = bounded_cover(lat, lon, radius_km, p, max_cells)
        if cells is None:
            break
        best = (p, cells)
    if best is None:
        coarsest = min(precisions)
        raise GeohashError(
            f"a {radius_km} km radius needs more than {max_cells} cells even at precision {coarsest}; "
            "search a smaller area"
        )
    return best
