"""OCPI benchmark: GET latency and throughput on loopback, status-change-to-push latency, RSS.

Method: the CPO is served by ``tests.ocpi_support.start_cpo`` on 127.0.0.1 (real sockets,
real journal with fsync per enqueued push) over the tests' reference in-memory charger with one
EVSE and 200 finished sessions (each an hour's charge, priced by the tariff); an eMSP (a
minimal aiohttp server in this process) registers through the real credentials handshake.
Latency: sequential requests from one client, p50/p99 over many
requests. Throughput: 8 concurrent clients. Push latency: time from the charger's connector
listener firing to the PATCH arriving at the eMSP (both in this process, same clock). RSS:
import cost in a fresh child (aiohttp pre-imported there, since other bindings use it too) and
the growth of this process across serving, registering and the runs.
"""
from __future__ import annotations

import asyncio
import base64
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SESSIONS = 200
REQUESTS = 300
PUSHES = 100
CONCURRENCY = 8


def _rss_kib() -> int:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _pct(values, q):
    values = sorted(values)
    return values[min(len(values) - 1, int(round(q * (len(values) - 1))))]


def _import_cost_kib() -> int | None:
    code = ("import aiohttp.web, sqlite3, json\n"
            "def rss():\n"
            "    for l in open('/proc/self/status'):\n"
            "        if l.startswith('VmRSS:'): return int(l.split()[1])\n"
            "a = rss()\nimport protocols.ocpi\nprint(rss() - a)\n")
    try:
        out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                             cwd=str(Path(__file__).resolve().parents[1]), check=True)
        return int(out.stdout.strip())
    except (subprocess.SubprocessError, OSError, ValueError):
        return None


class _Clock:
    """Wall time, except while the finished sessions are written at the times they happened."""

    def __init__(self):
        self.fixed_s: float | None = None

    def __call__(self) -> float:
        return time.time() if self.fixed_s is None else self.fixed_s


async def _service():
    """The reference in-memory charger: one 22 kW EVSE and ``SESSIONS`` finished, priced sessions."""
    from agent.config import Place, SiteConfig
    from tests.memory_charger import MemoryCharger, socket_connector

    class Charger(MemoryCharger):
        def flip(self):
            self.set_status("CHARGING" if self.connectors()[0].status == "AVAILABLE" else "AVAILABLE")

    clock = _Clock()
    now = clock()
    site = SiteConfig(site_id="bench-site", name="Bench", operator="Bench", journal_path="/tmp/x",
                      place=Place(lat=12.97, lon=77.59, address="MG Road", city="Bengaluru", state="KA",
                                  postal_code="560001", country="IND", timezone="Asia/Kolkata"), extra={})
    tariff = {"id": "t1", "currency": "INR", "elements": [{"price_components": [
        {"type": "ENERGY", "price": 18, "vat": 18.0, "step_size": 1}]}], "last_updated": "2026-01-01T00:00:00Z"}
    evse = socket_connector("1", evse_uid="EVSE-1", now_s=now, phases=3, max_voltage_v=415, max_power_w=22000)
    service = Charger(site=site, clock=clock, tariff=tariff, connectors=[evse])
    for i in range(SESSIONS):
        clock.fixed_s = now - 7200 + i
        s = await service.start_session(source="ocpi", reference=f"r{i}", token=f"U-r{i}")
        clock.fixed_s = now - 3600 + i
        service.charge(s.session_id, 7400 + i, 3600)
        await service.stop_session(s.session_id)
    clock.fixed_s = None
    return service


async def _run(workdir: Path) -> dict:  # noqa: C901
    import aiohttp
    from aiohttp import web

    rss0 = _rss_kib()
    from tests.ocpi_support import start_cpo

    service = await _service()
    arrivals: list = []
    arrived = asyncio.Event()

    async def emsp(request):
        tail = request.match_info["tail"]
        ok = {"status_code": 1000, "timestamp": "2026-01-01T00:00:00Z"}
        if tail == "versions":
            ok["data"] = [{"version": "2.2.1", "url": f"{emsp_url}/2.2.1"}]
        elif tail == "2.2.1":
            ok["data"] = {"version": "2.2.1", "endpoints": [
                {"identifier": i, "role": "RECEIVER", "url": f"{emsp_url}/2.2.1/{i}"}
                for i in ("credentials", "locations", "sessions", "cdrs")]}
        elif request.method == "PATCH":
            await request.read()
            arrivals.append(time.perf_counter())
            arrived.set()
        return web.json_response(ok)

    app = web.Application()
    app.router.add_route("*", "/emsp/{tail:.*}", emsp)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    emsp_url = f"http://127.0.0.1:{site._server.sockets[0].getsockname()[1]}/emsp"

    base, token_a, cpo = await start_cpo(service, workdir, push_poll_s=1.0)
    http = aiohttp.ClientSession()
    try:
        def auth(token):
            return {"Authorization": "Token " + base64.b64encode(token.encode()).decode()}

        async with http.post(f"{base}/2.2.1/credentials", headers=auth(token_a), json={
                "token": "bench-b", "url": f"{emsp_url}/versions", "roles": [
                    {"role": "EMSP", "business_details": {"name": "b"}, "party_id": "BEN", "country_code": "IN"}]}) as r:
            token = (await r.json())["data"]["token"]
        headers = auth(token)
        # The sessions are this eMSP's (started by its commands): an eMSP sees only its own.
        (party,) = cpo.store.parties()
        for s in service.sessions():
            cpo.store.add_session_ref(s.reference, owner_pk=party.pk, auth_method="COMMAND",
                                      authorization_reference=None, now_s=time.time(),
                                      cdr_token={"country_code": "IN", "party_id": "BEN", "uid": f"U-{s.reference}",
                                                 "type": "APP_USER", "contract_id": f"IN-BEN-{s.reference}"})
        async with http.get(f"{base}/2.2.1/sessions?limit=50", headers=headers) as r:
            page = (await r.json())["data"]
            assert len(page) == 50, f"the sessions page holds {len(page)} sessions, not 50"

        async def get(url):
            async with http.get(url, headers=headers) as resp:
                await resp.read()
                assert resp.status == 200

        results = {}
        for name, url in (("locations", f"{base}/2.2.1/locations"),
                          ("sessions", f"{base}/2.2.1/sessions?limit=50")):
            for _ in range(20):
                await get(url)
            lat = []
            for _ in range(REQUESTS):
                t0 = time.perf_counter()
                await get(url)
                lat.append((time.perf_counter() - t0) * 1000)
            t0 = time.perf_counter()

            async def worker(url=url):
                for _ in range(REQUESTS // CONCURRENCY):
                    await get(url)

            await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
            elapsed = time.perf_counter() - t0
            results[f"get_{name}"] = {"p50_ms": round(statistics.median(lat), 3), "p99_ms": round(_pct(lat, 0.99), 3),
                                      "throughput_rps": round((REQUESTS // CONCURRENCY) * CONCURRENCY / elapsed, 1)}
        await asyncio.sleep(0)
        while cpo.outbox.pending_count():
            await cpo.push_once()
        push_ms = []
        for _ in range(PUSHES):
            arrived.clear()
            before = len(arrivals)
            t0 = time.perf_counter()
            service.flip()
            while len(arrivals) == before:
                await asyncio.wait_for(arrived.wait(), 10)
                arrived.clear()
            push_ms.append((arrivals[before] - t0) * 1000)
        results["push_status_change"] = {"p50_ms": round(statistics.median(push_ms), 3),
                                         "p99_ms": round(_pct(push_ms, 0.99), 3), "count": PUSHES}
        results["rss_added_kib"] = _rss_kib() - rss0
        return results
    finally:
        await http.close()
        await cpo.close()
        await runner.cleanup()


def main(out_dir: Path) -> dict:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=out_dir) as tmp:
        figures = asyncio.run(_run(Path(tmp)))
    figures["import_rss_kib"] = _import_cost_kib()
    result = {
        "area": "ocpi",
        "figures": figures,
        "machine": {"python": platform.python_version(), "machine": platform.machine(), "cores": os.cpu_count()},
        "method": __doc__.split("Method: ", 1)[1].strip(),
        "parameters": {"sessions": SESSIONS, "requests": REQUESTS, "pushes": PUSHES, "concurrency": CONCURRENCY},
    }
    (out_dir / "ocpi.json").write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("bench/results")), indent=2))
