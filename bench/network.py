"""Network benchmark: discovery at scale through mosquitto on loopback, beside the transport floor.

Method (one run, one broker, two processes: the chargers' and the node's):

* 1,000 fleet chargers (real ``ChargerNetwork``: own MQTT connection, ``ChargerLink``, ``Bpp``,
  agency-certified key; light simulated hardware) on one mosquitto, all in one process and one
  event loop: 100 inside a 5 km circle in Bengaluru, 900 spread over other Indian cities.
* The node (the buyer's side) runs in a process of its own, as it does on a real network, where
  it is never on a charger's CPU. The 100 chargers still answer one after another on one core,
  which no real network does: the figure is pessimistic on that count.
* Discovery: the node signs a search, publishes it to the geohash cells covering the circle and
  waits until it holds a verified answer (agency certificate -> message signature) from every
  one of the 100. Rounds alternate with the floor; medians and p99 over rounds.
* Transport floor, measured in the same run and the same layout: 100 bare responders (the same
  paho transport, no binding, no provider) in the chargers' process, subscribed to the same cells
  under a topic root of their own (on the chargers' root each side would also answer the other's
  searches); on a search each signs a catalog body of the same size and publishes it; the floor
  is the time until a requester in the node's process has all 100 payloads (not verified).
  Ratio = discovery / floor.
* Isolation: messages received by the 900 chargers outside the searched cells (target 0).
* One charger's sustained signed ``on_search`` rate: 2,000 distinct searches, signed before
  the clock starts, sent to one charger's cell; rate = answers received / time from first send
  to last answer.
* Idle cost: one charger alone in a child process, connected and idle for 5 s: RSS and CPU %.
* Garbage collector: once the fleet and the floor clients are up (and in the node's process once
  it has warmed up), everything built so far is moved out of the cyclic collector's reach
  (``gc.freeze()``), as a long-running process does after start-up. Why: a full collection walks
  the state of all 1,000 chargers (about 100 ms here), a pause that exists only because the
  fleet shares one heap. Collections during the rounds are still counted and timed
  (``discovery.gc_fleet``, ``discovery.gc_node``), and the floor runs under the same setting.
"""
from __future__ import annotations

import asyncio
import gc
import json
import os
import platform
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROUNDS = 15
INSIDE = 100
TOTAL = 1000
RADIUS_KM = 5.0
CENTRE = (12.9716, 77.5946)
CITIES = [(28.6139, 77.2090), (19.0760, 72.8777), (13.0827, 80.2707), (22.5726, 88.3639), (17.3850, 78.4867),
          (18.5204, 73.8567), (23.0225, 72.5714), (26.9124, 75.7873), (21.1458, 79.0882)]
RATE_MESSAGES = 2000
FLOOR_ROOT = "urja-floor/v1"
FLOOR_INBOX = "urja-floor/v1/inbox/floor-requester"


def _pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def _sites(rng, total: int = TOTAL):
    """``INSIDE`` sites within the search circle, the rest around other cities: the same
    layout for every network benchmark, so their figures compare."""
    from protocols.mqtt import geohash
    sites = []
    while len(sites) < min(INSIDE, total):
        lat = CENTRE[0] + rng.uniform(-0.04, 0.04)
        lon = CENTRE[1] + rng.uniform(-0.04, 0.04)
        if geohash.distance_km(*CENTRE, lat, lon) < RADIUS_KM * 0.95:
            sites.append((f"blr-{len(sites):04d}", lat, lon))
    i = 0
    while len(sites) < total:
        c = CITIES[i % len(CITIES)]
        sites.append((f"far-{i:05d}", c[0] + rng.uniform(-0.1, 0.1), c[1] + rng.uniform(-0.1, 0.1)))
        i += 1
    return sites


async def _floor_round(requester, inbox_state, cover_topics, search_payload) -> float:
    got, done = inbox_state
    got.clear()
    done.clear()
    t0 = time.perf_counter()
    for topic in cover_topics:
        requester.publish_nowait(topic, search_payload, qos=1)
    await asyncio.wait_for(done.wait(), 10)
    return time.perf_counter() - t0


def _gc_watch():
    """Freeze what set-up built, then time every collection: (pauses list, the callback)."""
    gc.collect()
    gc.freeze()
    pauses: list = []
    started: dict = {}

    def on_gc(phase, info):
        if phase == "start":
            started["t"] = time.perf_counter()
        elif "t" in started:
            pauses.append((info["generation"], time.perf_counter() - started.pop("t")))
    gc.callbacks.append(on_gc)
    return pauses, on_gc


def _gc_summary(pauses: list) -> dict:
    return {"collections": len(pauses), "full_collections": sum(1 for g, _ in pauses if g == 2),
            "longest_pause_ms": round(max((d for _, d in pauses), default=0.0) * 1000, 1),
            "total_pause_ms": round(sum(d for _, d in pauses) * 1000, 1)}


NODE_CHILD = r"""
import asyncio, base64, gc, json, statistics, sys, time
from cryptography.hazmat.primitives.asymmetric import ed25519
from bench.network import FLOOR_ROOT, FLOOR_INBOX, _floor_round, _gc_summary, _gc_watch, _pct
from protocols.beckn import messages
from protocols.mqtt.topics import Topics
from protocols.mqtt.transport import MqttSettings, MqttTransport
from protocols.node.client import NetworkNode
from protocols.signing.keys import Ed25519Signer

async def main(spec):
    url, centre, radius_km, inside, rounds = spec["url"], tuple(spec["centre"]), spec["radius_km"], spec["inside"], spec["rounds"]
    key = ed25519.Ed25519PrivateKey.from_private_bytes(base64.b64decode(spec["node_key"]))
    signer = Ed25519Signer(subscriber_id="bench-node", key_id=spec["node_key_id"], private_key=key)
    node = NetworkNode(transport=MqttTransport(MqttSettings(brokers=(url,), client_id="bench-node")),
                       subscriber_id="bench-node", signer=signer,
                       agency_public_key=base64.b64decode(spec["agency_public_key"]),
                       clock=time.time, certificate=spec["node_certificate"])
    await node.start()
    got, done = [], asyncio.Event()
    def on_floor_answer(topic, payload, retained):
        got.append(payload)
        if len(got) >= inside:
            done.set()
    requester = MqttTransport(MqttSettings(brokers=(url,), client_id="floor-requester"), on_message=on_floor_answer)
    requester.subscribe(FLOOR_INBOX, 1)
    await requester.start()
    await requester.wait_connected(10)
    cover = Topics(root=FLOOR_ROOT).search_cover(*centre, radius_km)
    # settle: one warm-up round of each, so every subscription is in place
    await node.discover(*centre, radius_km, timeout_s=10, expect=inside)
    search_payload = node._frame(messages.search(node.context("search", transaction_id="floor"),
                                                 gps=centre, radius_m=int(radius_km * 1000)))
    await _floor_round(requester, (got, done), cover, search_payload)
    pauses, on_gc = _gc_watch()
    discovery_s, floor_s, complete = [], [], 0
    for _ in range(rounds):
        t0 = time.perf_counter()
        found = await node.discover(*centre, radius_km, timeout_s=10, expect=inside)
        discovery_s.append(time.perf_counter() - t0)
        complete += len(found) == inside
        floor_s.append(await _floor_round(requester, (got, done), cover, search_payload))
    gc.callbacks.remove(on_gc)
    await requester.close()
    await node.close()
    print(json.dumps({"discovery_s": discovery_s, "floor_s": floor_s, "complete": complete,
                      "node_rejected": node.stats["rejected"],
                      "gc": _gc_summary(pauses)}))

asyncio.run(main(json.loads(sys.stdin.read())))
"""


async def _run_node_child(spec: dict) -> dict:
    """Run the node's side in its own process while this one's loop keeps the fleet answering.

    The exit is polled (every 50 ms) rather than awaited through asyncio's child watchers,
    which this project's asyncio subset leaves out; a poll costs the fleet nothing measurable.
    """
    root = Path(__file__).resolve().parents[1]
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        proc = subprocess.Popen([sys.executable, "-c", NODE_CHILD], stdin=subprocess.PIPE, stdout=out, stderr=err,
                                cwd=root, text=True)
        proc.stdin.write(json.dumps(spec))
        proc.stdin.close()
        deadline = time.monotonic() + 300
        while proc.poll() is None:
            if time.monotonic() > deadline:
                proc.kill()
                raise RuntimeError("the node's process did not finish within 300 s")
            await asyncio.sleep(0.05)
        out.seek(0)
        err.seek(0)
        if proc.returncode != 0:
            raise RuntimeError(f"the node's process failed: {err.read()[-2000:]}")
        return json.loads(out.read().strip().splitlines()[-1])


async def _measure(workdir: Path) -> dict:
    import base64

    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    from agent.tariff_file import load_tariff_file
    from protocols.beckn import messages
    from protocols.mqtt import framing
    from protocols.mqtt.identity import make_identity, memory_agency
    from protocols.mqtt.topics import Topics
    from protocols.mqtt.transport import MqttSettings, MqttTransport
    from protocols.node.client import NetworkNode
    from tests.fleet import EXAMPLE_TARIFF, Fleet
    from tests.mqtt_broker import Broker

    rng = random.Random(20240601)
    agency = memory_agency()
    tariff = load_tariff_file(EXAMPLE_TARIFF)
    sites = _sites(rng)
    topics = Topics()
    out: dict = {}
    with Broker(workdir, name="bench") as broker:
        url = broker.url
        fleet = Fleet(brokers=(url,), agency=agency, sites=sites, tariff=tariff, clock=time.time, rng=rng)
        t0 = time.perf_counter()
        await fleet.start(connect_timeout_s=120)
        out["fleet_connect_s"] = round(time.perf_counter() - t0, 2)
        node_key = ed25519.Ed25519PrivateKey.generate()
        node_ident = make_identity(agency, "bench-node", lat=CENTRE[0], lon=CENTRE[1], now_s=time.time(), kind="BAP",
                                   private_key=node_key)

        # The floor's responders: bare paho clients on the same cells, each signing a catalog
        # body of the same size, under their own topic root: on the chargers' root they would
        # also answer every discovery search (and the chargers every floor search), and each
        # figure would carry the other's work.
        floor_topics = Topics(root=FLOOR_ROOT)
        sample_body = fleet.members[0].bpp.catalog().body
        responders = []
        for i, (sid, lat, lon) in enumerate(sites[:INSIDE]):
            ident = fleet.members[i].identity
            t = MqttTransport(MqttSettings(brokers=(url,), client_id=f"floor-{sid}"))

            def respond(topic, payload, retained, t=t, signer=ident.signer):
                answer = framing.sign_and_frame(sample_body, signer, now_s=time.time(), window_s=60)
                t.publish_nowait(FLOOR_INBOX, answer, qos=1)
            t.on_message = respond
            for f in floor_topics.charger_search_filters(lat, lon):
                t.subscribe(f, 1)
            responders.append(t)
            await t.start()
        for t in responders:
            await t.wait_connected(10)

        pauses, on_gc = _gc_watch()
        key_bytes = node_key.private_bytes(
            serialization.Encoding.Raw, serialization.PrivateFormat.Raw, serialization.NoEncryption())
        try:
            child = await _run_node_child({
                "url": url, "centre": list(CENTRE), "radius_km": RADIUS_KM, "inside": INSIDE, "rounds": ROUNDS,
                "node_key": base64.b64encode(key_bytes).decode(), "node_key_id": node_ident.signer.key_id,
                "node_certificate": node_ident.certificate,
                "agency_public_key": base64.b64encode(agency.public_key).decode()})
        finally:
            gc.callbacks.remove(on_gc)
        discovery_s, floor_s = child["discovery_s"], child["floor_s"]
        inside_ids = {s[0] for s in sites[:INSIDE]}
        out["discovery"] = {
            "chargers_total": TOTAL, "chargers_in_area": INSIDE, "radius_km": RADIUS_KM,
            "cells": len(floor_topics.search_cover(*CENTRE, RADIUS_KM)),
            "rounds": ROUNDS, "rounds_complete": child["complete"],
            "p50_ms": round(statistics.median(discovery_s) * 1000, 1), "p99_ms": round(_pct(discovery_s, 0.99) * 1000, 1),
            "floor_p50_ms": round(statistics.median(floor_s) * 1000, 1),
            "floor_p99_ms": round(_pct(floor_s, 0.99) * 1000, 1),
            "ratio_p50": round(statistics.median(discovery_s) / statistics.median(floor_s), 2),
            "received_outside_area": fleet.received_outside(inside_ids),
            "node_rejected": child["node_rejected"],
            "gc_fleet": {"frozen_objects": gc.get_freeze_count(), **_gc_summary(pauses)},
            "gc_node": child["gc"],
        }
        for t in responders:
            await t.close()

        # The node's identity, for framing the rate test's searches in this process.
        node = NetworkNode(transport=MqttTransport(MqttSettings(brokers=(url,), client_id="bench-node")),
                           subscriber_id="bench-node", signer=node_ident.signer, agency_public_key=agency.public_key,
                           clock=time.time, certificate=node_ident.certificate)
        # one charger's sustained on_search rate: a charger alone in its cell, the fleet still connected
        from protocols.mqtt import geohash
        lone = Fleet(brokers=(url,), agency=agency, sites=[("lone-1", 10.5, 76.5)], tariff=tariff, clock=time.time)
        await lone.start()
        target = lone.members[0]
        lat, lon = 10.5, 76.5
        cell_topic = topics.search(geohash.encode(lat, lon, 5))
        answers = {"n": 0}
        all_in = asyncio.Event()

        def count(topic, payload, retained):
            answers["n"] += 1
            if answers["n"] >= RATE_MESSAGES:
                all_in.set()
        blaster = MqttTransport(MqttSettings(brokers=(url,), client_id="rate-node"), on_message=count)
        blaster.subscribe("urja/v1/inbox/bench-node", 1)
        await blaster.start()
        await blaster.wait_connected(10)
        payloads = []
        for i in range(RATE_MESSAGES):
            ctx = node.context("search", transaction_id=f"rate-{i}")
            ctx["ttl"] = "PT5M"
            doc = messages.search(ctx, gps=(lat, lon), radius_m=1000)
            doc["message"]["intent"]["tags"] = [messages.signed_tag(messages.TAG_CERTIFICATE, node.certificate)]
            payloads.append(node._frame(doc))
        before = target.link.stats["answered"]
        t0 = time.perf_counter()
        for p in payloads:
            blaster.publish_nowait(cell_topic, p, qos=1)
            await asyncio.sleep(0)
        try:
            await asyncio.wait_for(all_in.wait(), 60)
        except asyncio.TimeoutError:
            pass
        elapsed = time.perf_counter() - t0
        out["charger_on_search"] = {"messages": RATE_MESSAGES, "answered": target.link.stats["answered"] - before,
                                    "received_answers": answers["n"], "seconds": round(elapsed, 3),
                                    "rate_per_s": round(answers["n"] / elapsed, 1),
                                    "note": "1,000 other chargers stay connected in the same process"}
        await lone.close()
        await blaster.close()
        await fleet.close()
        out["idle"] = _idle(url)
    return out


IDLE_CHILD = r"""
import asyncio, json, resource, sys, time
from agent.tariff_file import load_tariff_file
from protocols.mqtt.identity import memory_agency
from tests.fleet import EXAMPLE_TARIFF, Fleet

async def main(url):
    fleet = Fleet(brokers=(url,), agency=memory_agency(), sites=[("idle-1", 12.97, 77.59)],
                  tariff=load_tariff_file(EXAMPLE_TARIFF), clock=time.time)
    await fleet.start()
    r0 = resource.getrusage(resource.RUSAGE_SELF); t0 = time.perf_counter()
    await asyncio.sleep(5)
    r1 = resource.getrusage(resource.RUSAGE_SELF); t1 = time.perf_counter()
    rss_kb = int([l for l in open('/proc/self/status') if l.startswith('VmRSS')][0].split()[1])
    await fleet.close()
    cpu = (r1.ru_utime + r1.ru_stime - r0.ru_utime - r0.ru_stime) / (t1 - t0) * 100
    print(json.dumps({"rss_mib": round(rss_kb / 1024, 1), "cpu_percent": round(cpu, 3), "seconds": 5}))

asyncio.run(main(sys.argv[1]))
"""


def _idle(url: str) -> dict:
    root = Path(__file__).resolve().parents[1]
    proc = subprocess.run([sys.executable, "-c", IDLE_CHILD, url], capture_output=True, text=True, cwd=root,
                          timeout=60)
    if proc.returncode != 0:
        return {"error": proc.stderr[-500:]}
    return json.loads(proc.stdout.strip().splitlines()[-1])


def main(out_dir: Path) -> dict:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    try:
        with tempfile.TemporaryDirectory() as tmp:
            results = asyncio.run(_measure(Path(tmp)))
    finally:
        gc.unfreeze()  # the areas after this one run with the collector as they found it
    d = results["discovery"]
    results["targets"] = {"discovery_p99_under_150_ms": d["p99_ms"] < 150, "ratio_at_most_4x": d["ratio_p50"] <= 4,
                          "outside_area_zero": d["received_outside_area"] == 0,
                          "on_search_at_least_500_per_s": results["charger_on_search"]["rate_per_s"] >= 500}
    results["machine"] = {"python": platform.python_version(), "platform": platform.platform(),
                          "cpus": os.cpu_count()}
    results["method"] = __doc__.strip()
    (out_dir / "network.json").write_text(json.dumps(results, indent=2) + "\n")
    return results


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1] if len(sys.argv) > 1 else "bench/results")), indent=2))
