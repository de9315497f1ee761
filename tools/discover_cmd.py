"""``urja discover --near LAT,LON --radius-km R``: chargers near a place, each one verified.

Every charger listed has proved who it is (agency certificate -> signed answer); prices and
availability are what the charger signed just now. With a node certificate the command asks
the chargers (a live search); without one it reads their retained, signed catalogs.
"""
from __future__ import annotations

import json
import sys
import time


def register(subparsers) -> None:
    from protocols.node.options import add_node_options

    p = subparsers.add_parser("discover", help="find verified chargers near a place on the network")
    p.add_argument("--near", required=True, help="LAT,LON in degrees, e.g. 12.9716,77.5946")
    p.add_argument("--radius-km", type=float, default=5.0, help="search radius in km (default 5; at most what a search reaches: about 1,000 km between 60 S and 60 N)")
    p.add_argument("--connector", help="only chargers with this connector type, e.g. IEC_62196_T2")
    p.add_argument("--retained", action="store_true", help="read retained catalogs only, even with a certificate")
    p.add_argument("--json", action="store_true", help="print JSON")
    p.add_argument("--cds", help="ask this Beckn 2.0 catalog discovery service (default: [node] cds_url); "
                                 "without one the chargers are asked over MQTT")
    add_node_options(p)
    p.set_defaults(func=handle)


def parse_near(text: str) -> tuple[float, float]:
    try:
        lat_s, lon_s = text.split(",")
        lat, lon = float(lat_s), float(lon_s)
    except ValueError:
        raise ValueError(f"--near {text!r} must be LAT,LON in degrees, e.g. 12.9716,77.5946") from None
    if not (-90 <= lat <= 90 and -180 <= lon <= 180):
        raise ValueError(f"--near {text!r}: latitude must be -90..90 and longitude -180..180")
    return lat, lon


def check_radius(radius_km: float, lat: float, lon: float, near: str) -> None:
    """Refuse, before connecting, a circle that no search can cover: the charger's own rule
    (``search_reaches``), so what is asked here is what a charger answers."""
    from protocols.mqtt.topics import MAX_SEARCH_CELLS, SEARCH_PRECISIONS, search_reach_km, search_reaches

    if not radius_km > 0:
        raise ValueError(f"--radius-km {radius_km:g} must be more than 0")
    if not search_reaches(lat, lon, radius_km):
        raise ValueError(f"--radius-km {radius_km:g} is beyond a search's reach from {near}: at most "
                         f"{search_reach_km(lat, lon):,} km there ({MAX_SEARCH_CELLS} geohash cells of precision "
                         f"{min(SEARCH_PRECISIONS)})")


async def run(args, *, clock=time.time) -> list:
    from protocols.node.setup import build_node

    lat, lon = parse_near(args.near)
    check_radius(args.radius_km, lat, lon, args.near)
    node = build_node(args, clock=clock)
    cds_url = getattr(args, "cds", None) or node.cds_url
    if cds_url is not None:  # a 2.0 network's catalog discovery service answers for every charger
        from protocols.node.cds import discover_via_cds

        try:
            return await discover_via_cds(node, cds_url, lat, lon, args.radius_km, connector_type=args.connector,
                                          timeout_s=args.timeout)
        finally:
            if node.registry is not None:
                await node.registry.close()
    async with node:
        if node.certificate is not None and not args.retained:
            return await node.discover(lat, lon, args.radius_km, connector_type=args.connector,
                                       timeout_s=args.timeout)
        return await node.discover_retained(lat, lon, args.radius_km, connector_type=args.connector,
                                            timeout_s=args.timeout)


def handle(args) -> int:
    import asyncio

    from drivers.configfile import ConfigError
    from protocols.errors import ProtocolError

    try:
        found = asyncio.run(run(args))
    except (ValueError, ConfigError, ProtocolError) as exc:
        print(f"urja discover: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps([c.as_dict() for c in found], indent=2))
        return 0
    if not found:
        print(f"no verified charger within {args.radius_km:g} km of {args.near}")
        return 0
    print(f"{len(found)} verified charger(s) within {args.radius_km:g} km of {args.near}:")
    for c in found:
        free = sum(1 for k in c.connectors if k.available)
        kinds = ", ".join(sorted({f"{k.connector_type} {k.power_kw} kW" for k in c.connectors}))
        price = f"{c.price} {c.currency}" if c.price else "price on request"
        dist = f"{c.distance_km:.1f} km" if c.distance_km is not None else "?"
        print(f"  {c.subscriber_id:<28} {dist:>8}  {free}/{len(c.connectors)} free  {price:<16} {kinds}  "
              f"{c.name or ''}  [verified key {c.key_id}]")
    return 0
