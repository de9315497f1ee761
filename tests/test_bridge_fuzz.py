"""Mutated requests at the bridge: each is answered (never a 500, never a traceback), and what
is forwarded goes only to the inbox of the one fronted charger its body names."""
from __future__ import annotations

import asyncio
import json
import random
import time

import aiohttp
import pytest

from agent.tariff_file import load_tariff_file
from protocols.bridge import envelope
from protocols.mqtt import framing
from protocols.mqtt.identity import make_identity, memory_agency
from protocols.mqtt.transport import MqttSettings, MqttTransport
from protocols.signing.beckn import sign_body
from tests.bridge_support import RecordingSink
from tests.fleet import EXAMPLE_TARIFF, Fleet
from tests.mqtt_broker import MOSQUITTO, Broker
from tests.test_bridge import fronted, start_bridge

pytestmark = pytest.mark.skipif(MOSQUITTO is None, reason="mosquitto is not installed (apt install mosquitto)")

BASE = {"context": {"action": "select", "version": "2.0.0", "networkId": "nfh.global/ev", "bapId": "buyer-f",
                    "bapUri": "https://buyer.example/beckn", "bppId": "blr-1", "bppUri": "https://bridge-a.example",
                    "transactionId": "t-f", "messageId": "m-0", "timestamp": "2026-12-06T06:00:00Z",
                    "ttl": "PT30S"},
        "message": {"contract": {"commitments": []}}}
ODD = ["blr-2", "blr-3", "urja/v1/inbox/blr-2", "#", "+", "", None, 7, ["blr-1"], {"id": "blr-1"}, "blr-1 ",
       "x" * 300, "bridge-a", "https://evil.example", "select", "on_select", "PT1H", "mqtt://network/x"]


def mutate(rng: random.Random, i: int) -> tuple[str, bytes]:
    doc = json.loads(json.dumps(BASE))
    ctx = doc["context"]
    ctx["messageId"] = f"m-{i}"
    path = "select"
    for _ in range(rng.randint(1, 3)):
        kind = rng.random()
        key = rng.choice(sorted(ctx))
        if kind < 0.45:
            ctx[key] = rng.choice(ODD)
        elif kind < 0.6:
            del ctx[key]
            if not ctx:
                break
        elif kind < 0.7:
            ctx[key.replace("Id", "_id")] = ctx.get(key)  # 1.1 spelling beside 2.0
        elif kind < 0.8:
            path = rng.choice(["select", "init", "search", "discover", "rating", "status"])
        elif kind < 0.9:
            doc = rng.choice([[], "text", 1, {"context": "x"}, {"message": {}}, doc])
            if not isinstance(doc, dict) or not isinstance(doc.get("context"), dict):
                break
            ctx = doc["context"]
        else:
            raw = bytearray(json.dumps(doc).encode())
            raw[rng.randrange(len(raw))] = rng.randrange(256)
            return path, bytes(raw)
    return path, json.dumps(doc).encode()


async def test_mutated_requests_are_answered_and_reach_no_charger_they_do_not_name(tmp_path):
    agency = memory_agency()
    rng = random.Random(1414)
    sites = [("blr-1", 12.9716, 77.5946), ("blr-2", 12.9730, 77.5960), ("blr-3", 12.9700, 77.5900)]
    with Broker(tmp_path) as broker:
        fleet = Fleet(brokers=(broker.url,), agency=agency, sites=sites, tariff=load_tariff_file(EXAMPLE_TARIFF),
                      clock=time.time, bridges=("bridge-a",))
        fleet.members[2].link.bridges = ("bridge-z",)  # blr-3 does not let this bridge front it
        bridge, _ = await start_bridge(agency, broker, RecordingSink())
        buyer = make_identity(agency, "buyer-f", lat=12.97, lon=77.59, now_s=time.time(), kind="BAP")
        heard: list[tuple[str, bytes]] = []
        spy = MqttTransport(MqttSettings(brokers=(broker.url,), client_id="spy-f"),
                            on_message=lambda t, p, r: None if r else heard.append((t, p)))
        spy.subscribe("urja/v1/inbox/#", 1)
        spy.subscribe("urja/v1/search/#", 1)
        statuses: dict[int, int] = {}
        try:
            async with fleet, spy:
                await spy.wait_connected(5)
                await bridge.until(fronted("blr-1", "blr-2"), 10)
                await bridge.until(lambda d: "blr-3" in d.chargers and d.online("blr-3"), 10)
                async with aiohttp.ClientSession() as session:
                    for i in range(300):
                        path, body = mutate(rng, i)
                        now = int(time.time())
                        headers = {"Authorization": sign_body(body, buyer.signer, created_s=now, expires_s=now + 60)}
                        async with session.post(f"http://127.0.0.1:{bridge.port}/{path}", data=body,
                                                headers=headers) as resp:
                            statuses[resp.status] = statuses.get(resp.status, 0) + 1
                            answer = await resp.json()
                        assert resp.status in (200, 400, 401, 404, 405, 409, 413), (i, resp.status, answer)
                        assert "signature" in answer or "message" in answer
                # the bridge's publications go out before its answers; a marker sent last closes the record
                done = asyncio.Event()
                spy.on_message = lambda t, p, r: done.set() if t.endswith("/marker") else \
                    None if r else heard.append((t, p))
                spy.subscribe("urja/v1/inbox/marker", 1)
                await spy.publish("urja/v1/inbox/marker", b"end", qos=1)
                await asyncio.wait_for(done.wait(), 10)
        finally:
            await bridge.close()
    forwarded = [(t, p) for t, p in heard if not t.endswith("/marker")]
    assert statuses.get(200, 0) > 0 and statuses.get(400, 0) > 0 and sum(statuses.values()) == 300
    assert len([t for t, _ in forwarded if "/inbox/blr-" in t]) == statuses[200]
    for topic, payload in forwarded:
        body = framing.unframe(payload).body
        env = envelope.read(body)
        if env.action.startswith("on_"):
            continue  # the chargers' own refusals going back to the buyer
        if topic.startswith("urja/v1/search/"):
            assert env.action == "search" and env.bpp_id is None
            continue
        assert topic == f"urja/v1/inbox/{env.bpp_id}" and env.bpp_id in ("blr-1", "blr-2"), (topic, body[:200])
