"""Bridge benchmark: fleet chargers on three bridged brokers behind two ``urja bridge`` processes.

Method (one run; ``python -m bench.bench_bridge [--chargers N]``, results in
``bench/results/bench_bridge.json``):

* Three mosquitto brokers on loopback, two bridged to the third (configuration generated as in
  the tests, ``topic urja/# both 1``). Fleet chargers (real ``ChargerNetwork`` each: own MQTT
  connection, ``ChargerLink``, ``Bpp``, agency-certified key; light simulated hardware) are
  spread over the three brokers in turn, all in this process on one event loop, every one
  naming both bridges in its presence. ``INSIDE`` of them lie in a 5 km circle in Bengaluru,
  the rest in other Indian cities.
* Two bridges, each ``urja bridge run`` in a process of its own, on different brokers.
* Profile: Beckn 2.0 (``--profile beckn-1.1`` for the 1.1 search path). On 2.0 every charger
  names ``bridge_url`` and keeps its signed ``catalog/publish`` and withdrawal retained on its
  broker (``ChargerNetwork.publish_catalog``); both bridges forward them to the reference
  catalog service (``urja cds serve``, a process of its own, every participant's key from a
  registry file as ``urja registry add`` writes it).
* Discovery through the catalog service (2.0): the buyer's signed ``discover`` of the circle
  to the service over HTTP, until its verified ``on_discover`` is back and every catalog in it
  checked (agency certificate, signed offer) by the node: the time until the buyer holds every
  charger of the circle. The settle before it (fleet start until the service lists the whole
  circle) is reported as ``catalogs_at_cds_s``.
* Discovery through the bridges: the buyer sends a signed search (2.0: a ``discover`` of the
  area) to the bridges in turn; the bridge publishes it to the circle's geohash cells; the
  figure is the time until the buyer holds a verified answer from every charger in the circle.
* select -> on_select: the same signed select of one charger in the circle (on the hub broker),
  through a bridge over HTTP (the two in turn: one on the hub, one on another broker), and,
  interleaved round by round, directly over MQTT by a node on the hub broker and by one on
  another broker (its messages cross a mosquitto bridge, as half the bridged requests do).
  Ratios = bridge / direct, medians of the same run.
* Isolation: messages received by chargers outside the circle during the whole run (target 0).
* Bridge cost: each bridge process's RSS (``/proc/<pid>/status`` VmRSS) once every charger is
  fronted, beside its RSS before any charger connected, and its CPU time (``/proc/<pid>/stat``
  utime + stime) over an idle window of ``IDLE_S`` seconds with the fleet connected, both per
  1,000 chargers; and its CPU time while every charger connected and announced its catalog
  and presence once, which the chargers repeat every ``CATALOG_REFRESH_S``: that time over the
  period is the steady cost of following the fleet.
* Garbage collector: frozen (``gc.freeze()``) in the fleet's process once set up, as in
  ``bench/network.py``; the bridges' processes run as they do in production.
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import gc
import json
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
DISCOVERY_ROUNDS = 15
SELECT_ROUNDS = 40
IDLE_S = 10.0
BRIDGES = ("bridge-a", "bridge-b")
BRIDGE_URL = "https://bridge-a.example"  # bridge-a's public_url: the fleet's bridge_url on Beckn 2.0
CATALOG_REFRESH_S = 240.0  # chargers republish catalog and presence this often (ChargerLink)


def _summary(values_s: list[float]) -> dict:
    from bench.network import _pct
    return {"p50_ms": round(statistics.median(values_s) * 1000, 2), "p99_ms": round(_pct(values_s, 0.99) * 1000, 2),
            "n": len(values_s)}


def _proc_rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as fh:
        return int(next(line for line in fh if line.startswith("VmRSS")).split()[1])


def _proc_cpu_s(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as fh:
        fields = fh.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


class _CliProc:
    """An ``urja`` command in a process of its own; its URL is read from the line it prints."""

    def __init__(self, argv: list[str], marker: str):
        self.argv = argv
        self.marker = marker
        self.proc = None
        self.url = None
        self.log: collections.deque[str] = collections.deque(maxlen=40)
        self._drain = None

    async def start(self) -> None:
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tools.cli", "--log-level", "INFO", *self.argv, cwd=ROOT, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.DEVNULL)
        async def announced() -> str:  # past any log line before it
            while True:
                line = (await self.proc.stdout.readline()).decode()
                if self.marker in line or not line:
                    return line
        line = await asyncio.wait_for(announced(), 60)
        if self.marker not in line:
            raise RuntimeError(f"urja {self.argv[0]} ended before it served")
        self.url = line.split(self.marker, 1)[1].split(" ", 1)[0]
        self._drain = asyncio.get_running_loop().create_task(self._read_log())

    async def _read_log(self) -> None:
        """Keep reading the log it writes to stdout: a full pipe would stop it; the end is kept."""
        while line := await self.proc.stdout.readline():
            self.log.append(line.decode(errors="replace").rstrip())

    async def stop(self) -> None:
        self.proc.terminate()
        await self.proc.wait()
        if self._drain is not None:
            await self._drain


def _bridge_proc(folder: Path, bridge_id: str, broker_url: str, catalog_services: list[str]) -> _CliProc:
    from protocols.signing.keys import create_keyring

    folder.mkdir(parents=True)
    create_keyring(folder / "keys", subscriber_id=bridge_id, valid_days=2, now_s=time.time())
    config = folder / "bridge.toml"
    config.write_text(f'[bridge]\nid = "{bridge_id}"\npublic_url = "https://{bridge_id}.example"\n'
                      f'key_dir = "keys"\nlisten = "127.0.0.1:0"\ncatalog_services = {json.dumps(catalog_services)}\n'
                      f'\n[network]\nbrokers = ["{broker_url}"]\n')
    return _CliProc(["bridge", "run", "--config", str(config)], " serving ")


def _registry_file(path: Path, signers, requests: list[dict], now_s: float) -> None:
    """Every participant's key, as ``urja registry add`` lists it (a fronted charger at its
    bridge's URL), in one write."""
    from protocols.beckn2.dedi import REGISTRY_FORMAT, NetworkId, record_from_subscription, save_registry_file
    from protocols.beckn2.vocabulary import DEFAULT_NETWORK_ID
    from protocols.signing._codec import b64encode, format_time

    network = NetworkId.parse(DEFAULT_NETWORK_ID)
    requests = requests + [
        {"subscriber_id": s.subscriber_id, "unique_key_id": s.key_id, "signing_public_key": b64encode(s.public_key_bytes),
         "valid_from": format_time(now_s - 3600), "valid_until": format_time(now_s + 2 * 86400)} for s in signers]
    records = [record_from_subscription(r, network=network, url=BRIDGE_URL, now_s=now_s) for r in requests]
    save_registry_file(path, {"format": REGISTRY_FORMAT, "registries": [], "records": records})


async def _wait_bridged(urls):
    from tests.test_federation import bridge_ready

    for other in urls[1:]:
        await bridge_ready(urls[0], other, timeout_s=30)


async def _measure(workdir: Path, total: int, profile: str = "beckn-2.0") -> dict:  # noqa: C901 - one run, in order
    from agent.tariff_file import load_tariff_file
    from bench.network import CENTRE, INSIDE, RADIUS_KM
    from bench.network import _sites as sites_of
    from protocols.beckn import messages
    from protocols.beckn.policy import Policy
    from protocols.mqtt.identity import make_identity, memory_agency
    from protocols.mqtt.stack import NetworkConfig
    from protocols.mqtt.transport import MqttSettings, MqttTransport
    from protocols.node.cds import discover_via_cds
    from protocols.node.client import NetworkNode
    from protocols.signing.keys import create_keyring
    from tests.bridge_support import http_buyer
    from tests.fleet import EXAMPLE_TARIFF, Fleet
    from tests.mqtt_broker import Broker
    from tools.cds_cmd import _file_lookup

    v2 = profile == "beckn-2.0"
    rng = random.Random(14)
    sites = sites_of(rng, total)
    inside = {s[0] for s in sites[:INSIDE]}
    agency = memory_agency()
    tariff = load_tariff_file(EXAMPLE_TARIFF)
    options = {}
    if v2:  # every charger publishes through the bridges: its signed requests retained on its broker
        policy = Policy(profile=profile)
        options = dict(policy=policy, publish=NetworkConfig(policy=policy, bridges=BRIDGES, bridge_url=BRIDGE_URL))
    with Broker(workdir, name="hub") as hub, Broker(workdir, name="east", bridge_to=hub.port) as east, \
            Broker(workdir, name="west", bridge_to=hub.port) as west:
        brokers = [hub, east, west]
        await _wait_bridged([b.url for b in brokers])
        fleets = [Fleet(brokers=(brokers[i].url,), agency=agency, sites=sites[i::3], tariff=tariff, clock=time.time,
                        rng=random.Random(i), bridges=BRIDGES, **options) for i in range(3)]
        # the bridges' addresses are known once they run, after the service they are given
        buyer = await http_buyer(agency, [BRIDGE_URL], sid="bench-buyer", profile=profile)
        cds, services = None, []
        if v2:  # the reference catalog service in a process of its own, keys from a registry file
            cds_keys = create_keyring(workdir / "cds" / "keys", subscriber_id="bench-cds", valid_days=2,
                                      now_s=time.time())
            registry = workdir / "registry.json"
            _registry_file(registry, [m.identity.signer for f in fleets for m in f.members] + [buyer.identity.signer],
                           [cds_keys.subscription_request()], time.time())
            cds = _CliProc(["cds", "serve", "--key-dir", str(workdir / "cds" / "keys"), "--registry-file",
                            str(registry), "--port", "0", "--max-messages", str(4 * total + 1000)], " on ")
            await cds.start()
            services = [cds.url]
            buyer.use_registry(_file_lookup(str(registry)))
        bridges = [_bridge_proc(workdir / "bridge-a", "bridge-a", hub.url, services),
                   _bridge_proc(workdir / "bridge-b", "bridge-b", east.url, services)]
        for b in bridges:
            await b.start()
        buyer.transport.bridges = [b.url for b in bridges]
        rss_empty = [_proc_rss_kib(b.proc.pid) for b in bridges]
        t0 = time.perf_counter()
        cpu_announce0 = [_proc_cpu_s(b.proc.pid) for b in bridges]
        for fleet in fleets:
            await fleet.start(connect_timeout_s=120)
        connect_s = time.perf_counter() - t0
        ident = make_identity(agency, "bench-direct", lat=CENTRE[0], lon=CENTRE[1], now_s=time.time(), kind="BAP")
        direct = NetworkNode(transport=MqttTransport(MqttSettings(brokers=(hub.url,), client_id="bench-direct")),
                             subscriber_id="bench-direct", signer=ident.signer, agency_public_key=agency.public_key,
                             clock=time.time, certificate=ident.certificate, profile=profile)
        ident_far = make_identity(agency, "bench-far", lat=CENTRE[0], lon=CENTRE[1], now_s=time.time(), kind="BAP")
        direct_far = NetworkNode(transport=MqttTransport(MqttSettings(brokers=(east.url,), client_id="bench-far")),
                                 subscriber_id="bench-far", signer=ident_far.signer,
                                 agency_public_key=agency.public_key, clock=time.time,
                                 certificate=ident_far.certificate, profile=profile)
        await buyer.start()
        await direct.start()
        await direct_far.start()
        listed_s, cds_s, cds_complete = None, [], 0
        try:
            # settle: until both bridges front the circle's chargers (a full discovery answers)
            for _ in range(30):
                if len(await buyer.discover(*CENTRE, RADIUS_KM, timeout_s=5, expect=len(inside))) == len(inside):
                    break
            if v2:  # until the service holds every catalog of the circle, forwarded by the bridges
                for _ in range(120):
                    try:
                        if len(await discover_via_cds(buyer, cds.url, *CENTRE, RADIUS_KM, timeout_s=20)) == len(inside):
                            break
                    except Exception:
                        print("\n".join(["catalog service's log:", *cds.log]), file=sys.stderr)
                        raise
                listed_s = time.perf_counter() - t0
            announce_cpu = [_proc_cpu_s(b.proc.pid) - c0 for b, c0 in zip(bridges, cpu_announce0, strict=True)]
            for node in (direct, direct_far):
                await node.discover(*CENTRE, RADIUS_KM, timeout_s=5, expect=len(inside))
            # what a long-running process does after start-up; the fleet's 10,000 chargers on one
            # heap otherwise make full collections of seconds (an artefact of fleet mode)
            gc.collect()
            gc.freeze()
            idle_cpu0 = [_proc_cpu_s(b.proc.pid) for b in bridges]
            await asyncio.sleep(IDLE_S)  # the idle window being measured, not a synchronisation
            idle_cpu = [(_proc_cpu_s(b.proc.pid) - c0) / IDLE_S for b, c0 in zip(bridges, idle_cpu0, strict=True)]
            rss_full = [_proc_rss_kib(b.proc.pid) for b in bridges]
            discovery_s, complete = [], 0
            cpu0 = [_proc_cpu_s(b.proc.pid) for b in bridges]
            for _ in range(DISCOVERY_ROUNDS):
                t0 = time.perf_counter()
                found = await buyer.discover(*CENTRE, RADIUS_KM, timeout_s=20, expect=len(inside))
                discovery_s.append(time.perf_counter() - t0)
                complete += len(found) == len(inside)
                if v2:
                    t0 = time.perf_counter()
                    found = await discover_via_cds(buyer, cds.url, *CENTRE, RADIUS_KM, timeout_s=20)
                    cds_s.append(time.perf_counter() - t0)
                    cds_complete += {c.subscriber_id for c in found} == inside
            target = sorted(inside)[0]
            via_bridge_s, via_mqtt_s, via_far_s = [], [], []
            for i in range(SELECT_ROUNDS):
                order = [(buyer, via_bridge_s), (direct, via_mqtt_s), (direct_far, via_far_s)]
                for node, out in order[i % 3:] + order[:i % 3]:
                    doc = messages.select(node.context("select", transaction_id=node.new_id(), bpp_id=target),
                                          provider_id=target, energy_wh=1000, certificate=node.certificate)
                    t0 = time.perf_counter()
                    await node.request(doc, timeout_s=20)
                    out.append(time.perf_counter() - t0)
            busy_cpu = [_proc_cpu_s(b.proc.pid) - c0 for b, c0 in zip(bridges, cpu0, strict=True)]
            outside = sum(f.received_outside(inside) for f in fleets)
        finally:
            await buyer.close()
            await direct.close()
            await direct_far.close()
            for fleet in fleets:
                await fleet.close()
            for b in bridges:
                await b.stop()
            if cds is not None:
                await cds.stop()
    per_k = 1000 / total
    via_bridge, via_mqtt, via_far = _summary(via_bridge_s), _summary(via_mqtt_s), _summary(via_far_s)
    result = {
        "chargers": total, "profile": profile, "inside": len(inside), "brokers": 3, "bridges": 2,
        "fleet_connect_s": round(connect_s, 1),
        "discovery_through_bridge": {**_summary(discovery_s), "complete_rounds": complete},
        "select_to_on_select": {"through_bridge": via_bridge, "direct_mqtt": via_mqtt,
                                "direct_mqtt_over_broker_bridge": via_far,
                                "ratio_p50": round(via_bridge["p50_ms"] / via_mqtt["p50_ms"], 2),
                                "ratio_p50_same_hops": round(via_bridge["p50_ms"] / via_far["p50_ms"], 2)},
        "messages_outside_area": outside,
        "bridge_rss_mib": [round(r / 1024, 1) for r in rss_full],
        "bridge_rss_empty_mib": [round(r / 1024, 1) for r in rss_empty],
        "bridge_rss_mib_per_1000_chargers": [round((f - e) / 1024 * per_k, 1) for f, e in zip(rss_full, rss_empty, strict=True)],
        "bridge_idle_cpu_percent": [round(c * 100, 2) for c in idle_cpu],
        "bridge_idle_cpu_percent_per_1000_chargers": [round(c * 100 * per_k, 2) for c in idle_cpu],
        "bridge_cpu_s_during_rounds": [round(c, 2) for c in busy_cpu],
        "bridge_cpu_s_all_catalogs_once": [round(c, 2) for c in announce_cpu],
        "bridge_steady_cpu_percent_per_1000_chargers": [round(c / CATALOG_REFRESH_S * 100 * per_k, 3)
                                                        for c in announce_cpu],
        "targets_met": outside == 0 and complete == DISCOVERY_ROUNDS and cds_complete == len(cds_s),
    }
    if v2:
        result["discovery_through_cds"] = {**_summary(cds_s), "complete_rounds": cds_complete}
        result["catalogs_at_cds_s"] = round(listed_s, 1)  # from the fleet's start until the circle is listed
    return result


def main(out_dir: Path | str = ROOT / "bench" / "results", total: int = 1000, profile: str = "beckn-2.0") -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        result = asyncio.run(_measure(Path(tmp), total, profile))
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "bench_bridge.json").write_text(json.dumps(result, indent=2) + "\n")
    return result


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m bench.bench_bridge")
    parser.add_argument("--chargers", type=int, default=1000)
    parser.add_argument("--out", default=str(ROOT / "bench" / "results"))
    parser.add_argument("--profile", default="beckn-2.0", choices=("beckn-1.1", "beckn-2.0"))
    args = parser.parse_args()
    print(json.dumps(main(args.out, args.chargers, args.profile), indent=2))
