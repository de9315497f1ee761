"""Beckn 2.0 benchmark: one charger's counter-signed Ack rate over HTTP, against 1.1 in the same run.

Method: one charger (the reference in-memory charger behind the real provider logic) serves
Beckn 1.1 and Beckn 2.0 on two aiohttp servers on loopback; a sink on a third port takes the
``on_support`` callbacks. Every request is a signed ``support`` (no order needed, so the charger's
state does not grow and every request costs the same: read, verify the BECKN-006 signature,
answer, sign the callback); bodies are built and signed before timing, each with a fresh message
id. 8 concurrent clients send 600 requests per round; rounds alternate 1.1 and 2.0, 5 of each,
so both see the same machine load. Figures: Acks per second (median of the rounds), latency
p50/p99 over all requests, and the ratio 2.0 / 1.1; every 2.0 answer is checked to be an ACK
with a counter-signature. Separately the cost of ``wire_ack`` alone (the 2.0 Ack with its
counter-signature) is timed over 2,000 calls against a bare Ed25519 signature, in
interleaved batches.
"""
from __future__ import annotations

import asyncio
import json
import os
import platform
import statistics
import sys
import time
from pathlib import Path

ROUNDS = 5
REQUESTS = 600
CONCURRENCY = 8
NETWORK = "urja.local/ev-charging"


class WallClock:
    def __call__(self) -> float:
        return time.time()


def _pct(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


async def _run() -> dict:  # noqa: C901 (one scenario, read top to bottom)
    import aiohttp
    from aiohttp import web

    from protocols.beckn import messages as m
    from protocols.beckn.bpp import Bpp
    from protocols.beckn2 import codec
    from protocols.beckn2.profile import Beckn2Profile
    from protocols.http.serve import serve
    from protocols.http.server import BecknHttpServer
    from protocols.signing.beckn import Verifier, sign_body
    from protocols.signing.keys import StaticKeyLookup
    from tests.test_beckn_fakes import Buyer, FakeCharger, charger_signer, record

    clock = WallClock()
    charger = FakeCharger(clock=clock)
    buyer = Buyer(clock=clock)

    async def sink(request: web.Request) -> web.Response:
        await request.read()
        return web.json_response({"status": "ACK"})

    sink_app = web.Application()
    sink_app.router.add_post("/{action}", sink)
    sink_runner, sink_port = await serve(sink_app, "127.0.0.1", 0)
    buyer.bap_uri = f"http://127.0.0.1:{sink_port}/"
    servers, bases = {}, {}
    for name, profile in (("1.1", None), ("2.0", Beckn2Profile(network_id=NETWORK, bpp_id="in.test.charger",
                                                                 bpp_uri="http://127.0.0.1/"))):
        bpp = Bpp(service=charger, signer=charger_signer(), bpp_uri="http://127.0.0.1/",
                  verifier=Verifier(lookup=StaticKeyLookup([record(buyer.signer)]), clock=clock), clock=clock,
                  profile=profile)
        server = BecknHttpServer(bpp=bpp)
        bases[name] = f"http://127.0.0.1:{await server.start()}"
        await bpp.start()
        servers[name] = (bpp, server)

    def bodies(name: str) -> list[tuple[bytes, dict]]:
        out = []
        for _ in range(REQUESTS):
            doc = m.support(buyer.ctx("support"))
            action = "support"
            if name == "2.0":
                doc = codec.request_v2(doc, network_id=NETWORK)
            body = m.encode(doc)
            now = int(clock())
            out.append((action, body, {"Authorization": sign_body(body, buyer.signer, created_s=now,
                                                                  expires_s=now + 600),
                                       "Content-Type": "application/json"}))
        return out

    rates: dict[str, list[float]] = {"1.1": [], "2.0": []}
    latencies: dict[str, list[float]] = {"1.1": [], "2.0": []}
    refused = {"1.1": 0, "2.0": 0}
    async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=CONCURRENCY)) as http:
        async def one_round(name: str) -> None:
            work = bodies(name)
            queue = list(reversed(work))

            async def client():
                while queue:
                    action, body, headers = queue.pop()
                    t0 = time.perf_counter()
                    async with http.post(f"{bases[name]}/{action}", data=body, headers=headers) as resp:
                        ack = await resp.json()
                    latencies[name].append(time.perf_counter() - t0)
                    status = ack.get("status") if name == "2.0" else ack["message"]["ack"]["status"]
                    if status != "ACK" or (name == "2.0" and "signature" not in ack):
                        refused[name] += 1
            t0 = time.perf_counter()
            await asyncio.gather(*(client() for _ in range(CONCURRENCY)))
            rates[name].append(REQUESTS / (time.perf_counter() - t0))

        await one_round("1.1")  # warm-up, not counted
        rates["1.1"].clear()
        latencies["1.1"].clear()
        for _ in range(ROUNDS):
            await one_round("1.1")
            await one_round("2.0")
    bpp2 = servers["2.0"][0]
    key = bpp2._current_signer()
    sample_body = bodies("2.0")[0][1]
    reply = await bpp2.receive("support", sample_body, bodies("2.0")[0][2])
    ack_us, raw_us = [], []
    for _ in range(10):
        t0 = time.perf_counter()
        for _ in range(200):
            bpp2.wire_ack(reply, sample_body)
        ack_us.append((time.perf_counter() - t0) / 200 * 1e6)
        t0 = time.perf_counter()
        for _ in range(200):
            key.sign(sample_body[:300])
        raw_us.append((time.perf_counter() - t0) / 200 * 1e6)
    for bpp, server in servers.values():
        await bpp.close()
        await server.close()
    await sink_runner.cleanup()
    out = {}
    for name in ("1.1", "2.0"):
        out[name] = {"acks_per_s": round(statistics.median(rates[name])), "p50_ms": round(_pct(latencies[name], 0.5)
                     * 1000, 2), "p99_ms": round(_pct(latencies[name], 0.99) * 1000, 2), "refused": refused[name]}
    out["ratio_2_0_to_1_1"] = round(out["2.0"]["acks_per_s"] / out["1.1"]["acks_per_s"], 2)
    out["wire_ack_us"] = round(statistics.median(ack_us), 1)
    out["raw_ed25519_sign_us"] = round(statistics.median(raw_us), 1)
    return out


def main(out_dir: Path) -> dict:
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    figures = asyncio.run(_run())
    result = {
        "area": "beckn2",
        "figures": figures,
        "machine": {"python": platform.python_version(), "machine": platform.machine(), "cores": os.cpu_count()},
        "method": __doc__.split("Method: ", 1)[1].strip(),
        "parameters": {"rounds": ROUNDS, "requests": REQUESTS, "concurrency": CONCURRENCY},
        "targets_met": figures["2.0"]["refused"] == 0 and figures["1.1"]["refused"] == 0,
    }
    (out_dir / "beckn2.json").write_text(json.dumps(result, indent=2))
    return result


if __name__ == "__main__":
    print(json.dumps(main(Path(sys.argv[1]) if len(sys.argv) > 1 else Path("bench/results")), indent=2))
