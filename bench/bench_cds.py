"""Discovery through the reference catalog service, and how fast a change reaches it.

1. Discovery: 1,000 chargers publish their catalogs (signed ``/catalog/publish``, each its own
   key) to the reference CDS; 100 of them lie within 5 km of the search centre, 400 between 6
   and 40 km (the same geohash cells at coarse precision, so the index must sort them out) and
   500 across India. A node asks ``/discover`` for a 5 km circle and a CCS2 connector: the time
   from building the signed request to holding the verified ``on_discover`` with all 100
   catalogs (two signed HTTP exchanges, four signatures and two counter-signatures checked).
   The floor is a bare aiohttp POST round trip to a handler that answers ``{}``, measured in
   the same run, on the same loop and session kind.
2. Publish latency: one charger's availability changes; the time from ``changed()`` to the
   CDS answering a discover with the new state (the publisher's debounce set to 0, so what is
   measured is the mechanism; a deployment adds its ``debounce_s``, 2 s by default).

Everything runs in one process and one event loop on loopback: what is measured is the CPU
cost of the protocol, not a network.
"""
from __future__ import annotations

import asyncio
import json
import logging
import math
import random
import statistics
import time
from pathlib import Path

import aiohttp
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ed25519

from agent.aio import cancel_and_wait
from protocols.beckn2 import cds_wire as w
from protocols.beckn2.cds import CatalogDiscoveryService
from protocols.beckn2.cds_client import CdsDiscovery, discover_intent
from protocols.beckn2.cds_index import parse_discover
from protocols.beckn2.publish import CatalogPublisher
from protocols.http.serve import serve
from protocols.signing.keys import Ed25519Signer, PublicKeyRecord, StaticKeyLookup

NETWORK = "bench.example/cds"
CENTRE = (12.9716, 77.5946)
RADIUS_KM = 5.0
CHARGERS, INSIDE, NEAR = 1000, 100, 400
ROUNDS = 200
PUBLISH_ROUNDS = 50
EV_CONTEXT = "https://raw.githubusercontent.com/beckn/protocol-specifications-new/refs/heads/main/schema/" \
             "EvChargingService/v1/context.jsonld"


def _signer(name: str, i: int) -> Ed25519Signer:
    seed = i.to_bytes(4, "big") * 8
    return Ed25519Signer(subscriber_id=name, key_id="k1", private_key=ed25519.Ed25519PrivateKey.from_private_bytes(seed))


def _catalog(bpp_id: str, lat: float, lon: float, status: str = "Available") -> dict:
    geo = {"type": "Point", "coordinates": [round(lon, 6), round(lat, 6)]}
    rid = f"{bpp_id}/1"
    return {"id": f"{bpp_id}/catalog", "bppId": bpp_id, "descriptor": {"name": bpp_id},
            "provider": {"id": bpp_id, "descriptor": {"name": "Bench CPO"}, "availableAt": [{"geo": geo}]},
            "resources": [{"id": rid, "descriptor": {"name": "CCS2"},
                           "resourceAttributes": {"@context": EV_CONTEXT, "@type": "ChargingService",
                                                  "connectorType": "CCS2", "maxPowerKW": 60, "stationStatus": status,
                                                  "chargingStation": {"id": bpp_id, "serviceLocation": {"geo": geo}}}}],
            "offers": [{"id": f"{rid}/offer", "resourceIds": [rid]}]}


def _place(rng: random.Random, i: int) -> tuple[float, float]:
    lat0, lon0 = CENTRE
    if i < INSIDE:
        r_km, deg = RADIUS_KM * 0.95 * math.sqrt(rng.random()), rng.random() * 2 * math.pi
    elif i < INSIDE + NEAR:
        r_km, deg = 6 + 34 * rng.random(), rng.random() * 2 * math.pi
    else:
        return rng.uniform(8.5, 28.0), rng.uniform(70.0, 88.0)
    return (lat0 + r_km / 111.2 * math.sin(deg), lon0 + r_km / (111.2 * math.cos(math.radians(lat0))) * math.cos(deg))


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(round(q * (len(ordered) - 1))))]


def _ms(v: float) -> float:
    return round(v * 1000, 3)


async def _publish_all(cds_url: str, signers: list[Ed25519Signer], rng: random.Random) -> None:
    async with aiohttp.ClientSession() as session:
        for i, s in enumerate(signers):
            lat, lon = _place(rng, i)
            ctx = w.context(action="catalog/publish", message_id=str(rng_uuid(rng)), transaction_id=str(rng_uuid(rng)),
                            now_s=time.time(), network_id=NETWORK, bppId=s.subscriber_id,
                            bppUri="http://127.0.0.1:9")  # on_publish goes nowhere: only the index matters here
            body = w.encode({"context": ctx, "message": {"catalogs": [_catalog(s.subscriber_id, lat, lon)]}})
            async with session.post(cds_url + "/catalog/publish", data=body,
                                    headers=w.signed_headers(body, s, time.time())) as resp:
                if resp.status != 200:
                    raise RuntimeError(f"publish {i} refused: {await resp.text()}")


def rng_uuid(rng: random.Random):
    import uuid

    return uuid.UUID(int=rng.getrandbits(128), version=4)


async def _floor(rounds: int, body: bytes = b'{"context":{},"message":{}}') -> list[float]:
    async def handler(request):
        await request.read()
        return web.json_response({})

    app = web.Application()
    app.router.add_post("/echo", handler)
    runner, port = await serve(app, "127.0.0.1", 0)
    out = []
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(rounds + 10):
                t0 = time.perf_counter()
                async with session.post(f"http://127.0.0.1:{port}/echo", data=body) as resp:
                    await resp.read()
                out.append(time.perf_counter() - t0)
    finally:
        await runner.cleanup()
    return out[10:]


async def _discovery(cds_url: str, lookup, node_key) -> tuple[list[float], int]:
    intent = discover_intent(lat=CENTRE[0], lon=CENTRE[1], radius_km=RADIUS_KM, connector="CCS2")
    times, complete = [], 0
    async with CdsDiscovery(cds_url=cds_url, signer=node_key, lookup=lookup, clock=time.time,
                            network_id=NETWORK) as node:
        for i in range(ROUNDS + 10):
            t0 = time.perf_counter()
            found = await node.discover(intent, timeout_s=10)
            if i >= 10:
                times.append(time.perf_counter() - t0)
                complete += len(found) == INSIDE
    return times, complete


async def _publish_latency(cds_url: str, lookup, node_key, charger: Ed25519Signer) -> list[float]:
    state = {"status": "Available"}
    lat, lon = _place(random.Random(7), 0)

    def catalog():
        return _catalog(charger.subscriber_id, lat, lon, state["status"])

    app = web.Application()
    holder: dict = {}

    async def on_publish(request):
        return await holder["p"].handle_on_publish(request)

    app.router.add_post("/catalog/on_publish", on_publish)
    runner, port = await serve(app, "127.0.0.1", 0)
    publisher = holder["p"] = CatalogPublisher(
        catalog=catalog, signer=charger, clock=time.time, services=[cds_url], bpp_id=charger.subscriber_id,
        bpp_uri=f"http://127.0.0.1:{port}", lookup=lookup, network_id=NETWORK, debounce_s=0.0)
    task = asyncio.get_running_loop().create_task(publisher.run())
    intent = discover_intent(lat=lat, lon=lon, radius_km=0.5)
    times = []
    try:
        await publisher.wait_for(lambda s: all(x.state == "accepted" for x in s.values()), 10)
        async with CdsDiscovery(cds_url=cds_url, signer=node_key, lookup=lookup, clock=time.time,
                                network_id=NETWORK) as node:
            for i in range(PUBLISH_ROUNDS):
                state["status"] = "Charging" if i % 2 == 0 else "Available"
                t0 = time.perf_counter()
                publisher.changed()
                while True:
                    found = await node.discover(intent, timeout_s=10)
                    mine = [c for c in found if c["bppId"] == charger.subscriber_id]
                    if mine and mine[0]["resources"][0]["resourceAttributes"]["stationStatus"] == state["status"]:
                        break
                times.append(time.perf_counter() - t0)
                await publisher.wait_for(lambda s: all(x.state == "accepted" for x in s.values()), 10)
    finally:
        await cancel_and_wait([task])
        await runner.cleanup()
    return times


async def run() -> dict:
    logging.getLogger("urja.cds").setLevel(logging.ERROR)  # the 1,000 publishes' on_publish go nowhere
    rng = random.Random(2026)
    signers = [_signer(f"charger-{i:04d}.bench", i + 1) for i in range(CHARGERS)]
    cds_key, node_key = _signer("cds.bench", 900001), _signer("node.bench", 900002)
    lookup = StaticKeyLookup([PublicKeyRecord(s.subscriber_id, s.key_id, s.public_key_bytes, 0, 4_000_000_000)
                              for s in (*signers, cds_key, node_key)])
    cds = CatalogDiscoveryService(signer=cds_key, lookup=lookup, clock=time.time, network_id=NETWORK,
                                  callback_attempts=1, max_results=CHARGERS)
    port = await cds.start()
    url = f"http://127.0.0.1:{port}"
    try:
        t0 = time.perf_counter()
        await _publish_all(url, signers, rng)
        publish_s = time.perf_counter() - t0
        await cds.idle()
        floor = await _floor(ROUNDS)
        discovery, complete = await _discovery(url, lookup, node_key)
        floor_after = await _floor(ROUNDS)
        answer_bytes = len(w.encode({"catalogs": cds.index.query(
            parse_discover({"intent": discover_intent(lat=CENTRE[0], lon=CENTRE[1], radius_km=RADIUS_KM,
                                                      connector="CCS2")}), limit=CHARGERS)}))
        floor_payload = await _floor(ROUNDS, b"x" * answer_bytes)
        latency = await _publish_latency(url, lookup, node_key, signers[0])
    finally:
        await cds.close()
    floor_all = floor + floor_after
    return {
        "chargers": CHARGERS, "inside": INSIDE, "rounds": ROUNDS,
        "publish_1000_s": round(publish_s, 2), "publish_each_ms": _ms(publish_s / CHARGERS),
        "discovery_p50_ms": _ms(statistics.median(discovery)), "discovery_p99_ms": _ms(_pct(discovery, 0.99)),
        "discovery_complete": f"{complete}/{ROUNDS}",
        "bare_http_p50_ms": _ms(statistics.median(floor_all)), "bare_http_p99_ms": _ms(_pct(floor_all, 0.99)),
        "discovery_to_bare_http_p50_ratio": round(statistics.median(discovery) / statistics.median(floor_all), 1),
        "on_discover_bytes": answer_bytes,
        "bare_http_same_bytes_p50_ms": _ms(statistics.median(floor_payload)),
        "discovery_to_same_bytes_p50_ratio": round(statistics.median(discovery) / statistics.median(floor_payload), 1),
        "publish_change_to_discover_p50_ms": _ms(statistics.median(latency)),
        "publish_change_to_discover_p99_ms": _ms(_pct(latency, 0.99)),
        "publish_rounds": PUBLISH_ROUNDS,
    }


def main(out_dir) -> dict:
    result = asyncio.run(run())
    Path(out_dir, "bench_cds.json").write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2), flush=True)
    return result


if __name__ == "__main__":
    main(Path(__file__).parent / "results")
