"""The bridge in this process over a real mosquitto broker, with fleet chargers behind it and a
buyer that speaks HTTP only."""
from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import pytest

from agent.tariff_file import load_tariff_file
from protocols.beckn import messages
from protocols.bridge.buyer import BridgeRefused
from protocols.bridge.server import Bridge
from protocols.mqtt.identity import make_identity, memory_agency
from protocols.mqtt.topics import Topics
from protocols.mqtt.transport import MqttSettings, MqttTransport
from protocols.signing.beckn import sign_body
from tests.bridge_support import RecordingSink, bridge_settings, http_buyer
from tests.fleet import EXAMPLE_TARIFF, Fleet
from tests.mqtt_broker import MOSQUITTO, Broker

pytestmark = pytest.mark.skipif(MOSQUITTO is None, reason="mosquitto is not installed (apt install mosquitto)")

SITES = [("blr-1", 12.9716, 77.5946), ("blr-2", 12.9730, 77.5960)]


def fronted(*ids):
    return lambda d: all(d.fronts(i) and d.online(i) for i in ids)


async def start_bridge(agency, broker, sink, bridge_id="bridge-a"):
    ident = make_identity(agency, bridge_id, lat=12.97, lon=77.59, now_s=time.time(), kind="BAP")
    bridge = Bridge(settings=bridge_settings(bridge_id, broker.url), signer_for=ident.signer_for, clock=time.time,
                    sink=sink)
    await bridge.start(connect_timeout_s=5)
    return bridge, ident


async def test_a_buyer_on_http_finds_and_quotes_a_charger_on_mqtt_only(tmp_path):
    agency = memory_agency()
    sink = RecordingSink()
    with Broker(tmp_path) as broker:
        fleet = Fleet(brokers=(broker.url,), agency=agency, sites=SITES, tariff=load_tariff_file(EXAMPLE_TARIFF),
                      clock=time.time, bridges=("bridge-a",))
        bridge, _ = await start_bridge(agency, broker, sink)
        node = await http_buyer(agency, [f"http://127.0.0.1:{bridge.port}"])
        try:
            async with fleet:
                await bridge.until(fronted("blr-1", "blr-2"), 10)
                found = await node.discover(12.9716, 77.5946, 5, timeout_s=10, expect=2)
                assert sorted(c.subscriber_id for c in found) == ["blr-1", "blr-2"]
                doc = messages.select(node.context("select", transaction_id="t-1", bpp_id="blr-1"),
                                      provider_id="blr-1", energy_wh=1000, certificate=node.certificate)
                answer = await node.request(doc, timeout_s=10)
                assert answer.sender == "blr-1"  # the charger's own signature reached the buyer
                assert answer.message["order"]["quote"]["price"]["value"]
                await sink.wait_for(("publish", "blr-1"))
                assert sink.catalogs["blr-1"] == bridge.directory.chargers["blr-1"].catalog
        finally:
            await node.close()
            await bridge.close()
    assert bridge.stats.get("relayed", 0) >= 3  # two catalogs and one quote
    assert bridge.stats.get("relay_failed", 0) == 0


async def test_an_offline_charger_is_refused_at_once_and_its_catalog_withdrawn(tmp_path):
    agency = memory_agency()
    sink = RecordingSink()
    with Broker(tmp_path) as broker:
        fleet = Fleet(brokers=(broker.url,), agency=agency, sites=SITES[:1],
                      tariff=load_tariff_file(EXAMPLE_TARIFF), clock=time.time, bridges=("bridge-a",))
        bridge, _ = await start_bridge(agency, broker, sink)
        node = await http_buyer(agency, [f"http://127.0.0.1:{bridge.port}"])
        try:
            async with fleet:
                await bridge.until(fronted("blr-1"), 10)
                await sink.wait_for(("publish", "blr-1"))
            await bridge.until(lambda d: not d.online("blr-1"), 10)
            await sink.wait_for(("withdraw", "blr-1"))
            doc = messages.select(node.context("select", transaction_id="t-off", bpp_id="blr-1"),
                                  provider_id="blr-1", energy_wh=1000, certificate=node.certificate)
            started = time.monotonic()
            with pytest.raises(BridgeRefused) as err:
                await node.request(doc, timeout_s=10)
            assert time.monotonic() - started < 5  # answered, not timed out
            assert err.value.details["status"] == 409 and "offline" in str(err.value)
        finally:
            await node.close()
            await bridge.close()


async def test_a_charger_that_does_not_name_the_bridge_is_not_reached_through_it(tmp_path):
    agency = memory_agency()
    with Broker(tmp_path) as broker:
        fleet = Fleet(brokers=(broker.url,), agency=agency, sites=SITES, tariff=load_tariff_file(EXAMPLE_TARIFF),
                      clock=time.time, bridges=("bridge-b",))
        bridge, _ = await start_bridge(agency, broker, RecordingSink())
        node = await http_buyer(agency, [f"http://127.0.0.1:{bridge.port}"])
        try:
            async with fleet:
                await bridge.until(lambda d: all(i in d.chargers and d.online(i) for i in ("blr-1", "blr-2")), 10)
                for target in ("blr-1", "nobody"):
                    doc = messages.select(node.context("select", transaction_id=f"t-{target}", bpp_id=target),
                                          provider_id=target, energy_wh=1000, certificate=node.certificate)
                    with pytest.raises(BridgeRefused) as err:
                        await node.request(doc, timeout_s=10)
                    assert err.value.details["status"] == 400 and err.value.details["error_code"] == "30001"
                assert sum(m.link.stats["received"] for m in fleet.members) == 0
        finally:
            await node.close()
            await bridge.close()


async def _post(url: str, body: bytes, headers: dict) -> tuple[int, dict]:
    async with aiohttp.ClientSession() as session, session.post(url, data=body, headers=headers) as resp:
        return resp.status, await resp.json()


async def test_bad_input_is_refused_at_the_bridge_and_never_forwarded(tmp_path):
    agency = memory_agency()
    with Broker(tmp_path) as broker:
        fleet = Fleet(brokers=(broker.url,), agency=agency, sites=SITES[:1],
                      tariff=load_tariff_file(EXAMPLE_TARIFF), clock=time.time, bridges=("bridge-a",))
        bridge, _ = await start_bridge(agency, broker, RecordingSink())
        buyer = make_identity(agency, "buyer-x", lat=12.97, lon=77.59, now_s=time.time(), kind="BAP")
        other = make_identity(agency, "someone-else", lat=12.97, lon=77.59, now_s=time.time(), kind="BAP")
        url = f"http://127.0.0.1:{bridge.port}"
        try:
            async with fleet:
                await bridge.until(fronted("blr-1"), 10)
                ctx = messages.new_context(action="select", bap_id="buyer-x", bap_uri="http://127.0.0.1:9/cb",
                                           transaction_id="t-bad", message_id="m-1", timestamp_s=time.time(),
                                           bpp_id="blr-1")
                body = messages.encode(messages.select(ctx, provider_id="blr-1", energy_wh=1000))
                now = int(time.time())

                def auth(ident, b=body, created=now, expires=now + 60):
                    return {"Authorization": sign_body(b, ident.signer, created_s=created, expires_s=expires)}

                cases = [
                    ("/select", body, auth(other), 401),  # signed by someone who is not the bapId
                    ("/select", body, auth(buyer, created=now - 600, expires=now - 300), 401),  # expired
                    ("/select", body, {}, 401),  # unsigned
                    ("/init", body, auth(buyer), 400),  # path and context.action disagree
                    ("/select", b"{" * 70000, {}, 413),  # oversized
                    ("/select", b"not json", auth(buyer, b=b"not json"), 400),
                ]
                wild = messages.encode(messages.select({**ctx, "bpp_id": "urja/v1/inbox/#"}, provider_id="x",
                                                       energy_wh=1000))
                cases.append(("/select", wild, auth(buyer, b=wild), 400))  # no topic can be named
                for path, b, headers, status in cases:
                    got, doc = await _post(url + path, b, headers)
                    assert got == status, (path, headers.keys(), doc)
                    assert doc["message"]["ack"]["status"] == "NACK" if "message" in doc else doc["status"] == "NACK"
                assert fleet.members[0].link.stats["received"] == 0
        finally:
            await bridge.close()


async def test_a_v2_request_is_forwarded_byte_exact_and_answered_with_a_counter_signed_ack(tmp_path):
    from protocols.mqtt.transport import MqttSettings, MqttTransport
    from protocols.signing._codec import b64decode
    from protocols.signing.beckn import body_digest
    from protocols.signing.countersign import ack_digest, counter_signing_string
    from protocols.signing.keys import ed25519_verify

    agency = memory_agency()
    with Broker(tmp_path) as broker:
        fleet = Fleet(brokers=(broker.url,), agency=agency, sites=SITES[:1],
                      tariff=load_tariff_file(EXAMPLE_TARIFF), clock=time.time, bridges=("bridge-a",))
        bridge, bridge_ident = await start_bridge(agency, broker, RecordingSink())
        buyer = make_identity(agency, "buyer-v2", lat=12.97, lon=77.59, now_s=time.time(), kind="BAP")
        got = []
        arrived = asyncio.Event()

        def heard(topic, payload, retained):
            got.append((topic, payload))
            arrived.set()
        spy = MqttTransport(MqttSettings(brokers=(broker.url,), client_id="spy"), on_message=heard)
        spy.subscribe("urja/v1/inbox/blr-1", 1)
        try:
            async with fleet, spy:
                await spy.wait_connected(5)
                await bridge.until(fronted("blr-1"), 10)
                body = (b'{"context":{"action":"select","version":"2.0.0","networkId":"nfh.global/ev",'
                        b'"bapId":"buyer-v2","bapUri":"https://buyer.example/beckn","bppId":"blr-1",'
                        b'"bppUri":"https://bridge-a.example","transactionId":"t-v2","messageId":"m-v2",'
                        b'"timestamp":"2026-12-06T06:00:00Z","ttl":"PT30S"},  "message":{"contract":{}}}')
                now = int(time.time())
                header = sign_body(body, buyer.signer, created_s=now, expires_s=now + 60)
                status, ack = await _post(f"http://127.0.0.1:{bridge.port}/select", body, {"Authorization": header})
                assert status == 200 and ack["status"] == "ACK"
                sig = dict(part.split("=", 1) for part in ack["signature"][len("Signature "):].split(","))
                created, expires = int(sig["created"].strip('"')), int(sig["expires"].strip('"'))
                assert sig["keyId"].strip('"').startswith("bridge-a|")
                text = counter_signing_string(created, expires, ack_digest(ack), body_digest(body), "m-v2")
                assert ed25519_verify(bridge_ident.signer.public_key_bytes,
                                      b64decode(sig["signature"].strip('"'), field="signature"), text.encode())
                await asyncio.wait_for(arrived.wait(), 10)
                topic, payload = got[0]
                assert topic == "urja/v1/inbox/blr-1"
                assert payload == f"Authorization: {header}\n\n".encode() + body
        finally:
            await bridge.close()


async def test_a_v2_discover_of_an_area_reaches_the_chargers_of_that_area_only(tmp_path):
    agency = memory_agency()
    with Broker(tmp_path) as broker:
        fleet = Fleet(brokers=(broker.url,), agency=agency, sites=SITES + [("del-1", 28.61, 77.21)],
                      tariff=load_tariff_file(EXAMPLE_TARIFF), clock=time.time, bridges=("bridge-a",))
        bridge, _ = await start_bridge(agency, broker, RecordingSink())
        buyer = make_identity(agency, "buyer-d", lat=12.97, lon=77.59, now_s=time.time(), kind="BAP")
        got, arrived = [], asyncio.Event()

        def heard(topic, payload, retained):
            got.append((topic, payload))
            arrived.set()
        spy = MqttTransport(MqttSettings(brokers=(broker.url,), client_id="spy-d"), on_message=heard)
        spy.subscribe("urja/v1/search/#", 1)
        try:
            async with fleet, spy:
                await spy.wait_connected(5)
                await bridge.until(fronted("blr-1", "blr-2", "del-1"), 10)
                body = json.dumps({"context": {"action": "discover", "version": "2.0.0", "bapId": "buyer-d",
                                               "bapUri": "https://buyer.example/beckn", "transactionId": "t-d",
                                               "messageId": "m-d", "timestamp": "2026-12-06T06:00:00Z"},
                                   "message": {"intent": {"spatial": [{
                                       "op": "S_DWITHIN", "targets": "$['provider']['availableAt'][*]['geo']",
                                       "geometry": {"type": "Point", "coordinates": [77.5946, 12.9716]},
                                       "distanceMeters": 3000}]}}}).encode()
                now = int(time.time())
                headers = {"Authorization": sign_body(body, buyer.signer, created_s=now, expires_s=now + 60),
                           "Urja-Agency-Certificate": "eyJhIjoxfQ=="}
                status, ack = await _post(f"http://127.0.0.1:{bridge.port}/discover", body, headers)
                assert status == 200 and ack["status"] == "ACK"
                await asyncio.wait_for(arrived.wait(), 10)
                cover = Topics().search_cover(12.9716, 77.5946, 3.0)
                assert {t for t, _ in got} <= set(cover)
                assert got[0][1] == (f"Authorization: {headers['Authorization']}\n"
                                     "Urja-Agency-Certificate: eyJhIjoxfQ==\n\n").encode() + body
                no_area = body.replace(b'"op": "S_DWITHIN"', b'"op": "S_CONTAINS"')
                headers["Authorization"] = sign_body(no_area, buyer.signer, created_s=now, expires_s=now + 60)
                status, nack = await _post(f"http://127.0.0.1:{bridge.port}/discover", no_area, headers)
                assert status == 400 and nack["error"]["errorCode"] == "30000"
        finally:
            await bridge.close()
    far = fleet.members[2]
    assert far.link.stats["received"] == 0


async def test_chargers_own_signed_publish_requests_reach_the_catalog_services_byte_exact(tmp_path):
    from aiohttp import web

    from protocols.bridge.cds_sink import CatalogServiceSink
    from protocols.http.serve import serve
    from protocols.signing.beckn import frame_message

    got, arrived = [], asyncio.Event()

    async def publish(request):
        got.append((await request.read(), request.headers.get("Authorization")))
        arrived.set()
        return web.json_response({"status": "ACK"})
    app = web.Application()
    app.router.add_post("/catalog/publish", publish)
    runner, port = await serve(app, "127.0.0.1", 0)
    agency = memory_agency()
    try:
        with Broker(tmp_path) as broker:
            fleet = Fleet(brokers=(broker.url,), agency=agency, sites=SITES, tariff=load_tariff_file(EXAMPLE_TARIFF),
                          clock=time.time, bridges=("bridge-a",))
            bridge, _ = await start_bridge(agency, broker, None)
            sink = bridge.sink = CatalogServiceSink(services=[f"http://127.0.0.1:{port}"], session=bridge.http_session)
            member = fleet.members[0]
            now = int(time.time())

            def signed(doc: dict) -> tuple[bytes, str]:
                body = json.dumps(doc).encode()
                return body, sign_body(body, member.identity.signer, created_s=now, expires_s=now + 600)
            current = signed({"context": {"action": "catalog/publish", "bppId": "blr-1", "messageId": "p-1"},
                              "message": {"catalogs": [{"id": "blr-1", "isActive": True}]}})
            gone = signed({"context": {"action": "catalog/publish", "bppId": "blr-1", "messageId": "p-2"},
                           "message": {"catalogs": [{"id": "blr-1", "isActive": False}]}})
            where = Topics().catalog(SITES[0][1], SITES[0][2], "blr-1")
            try:
                async with fleet:
                    await bridge.until(fronted("blr-1", "blr-2"), 10)
                    for kind, (body, auth) in (("withdraw", gone), ("publish", current)):
                        await member.transport.publish(where.replace("/catalog/", f"/{kind}/"),
                                                       frame_message(body, auth), qos=1, retain=True)
                    await asyncio.wait_for(arrived.wait(), 10)
                    assert got == [current]  # the charger's bytes and signature, as it signed them
                    arrived.clear()
                await asyncio.wait_for(arrived.wait(), 10)  # the fleet went: its withdrawal was sent
                assert got[-1] == gone
                assert sink.stats["catalog_published"] == 1 and sink.stats["catalog_withdrawn"] == 1
                assert sink.stats["catalog_unsigned"] >= 1  # blr-2 retains no request: nothing is sent for it
            finally:
                await bridge.close()
    finally:
        await runner.cleanup()


async def test_a_bridge_cannot_make_a_charger_accept_what_it_would_refuse_directly(tmp_path):
    from tests.support import wait_until

    agency, elsewhere = memory_agency(), memory_agency("other-agency")
    with Broker(tmp_path) as broker:
        fleet = Fleet(brokers=(broker.url,), agency=agency, sites=SITES[:1],
                      tariff=load_tariff_file(EXAMPLE_TARIFF), clock=time.time, bridges=("bridge-a",))
        bridge, _ = await start_bridge(agency, broker, RecordingSink())
        # well formed and signed by the bapId it names, so the bridge (with no registry) forwards it;
        # but its certificate is from an agency the charger does not trust
        rogue = make_identity(elsewhere, "rogue", lat=12.97, lon=77.59, now_s=time.time(), kind="BAP")
        try:
            async with fleet:
                await bridge.until(fronted("blr-1"), 10)
                ctx = messages.new_context(action="select", bap_id="rogue", bap_uri="http://127.0.0.1:9/beckn",
                                           transaction_id="t-rogue", message_id="m-rogue", timestamp_s=time.time(),
                                           bpp_id="blr-1")
                body = messages.encode(messages.select(ctx, provider_id="blr-1", energy_wh=1000,
                                                       certificate=rogue.certificate))
                now = int(time.time())
                status, _ = await _post(f"http://127.0.0.1:{bridge.port}/select", body,
                                        {"Authorization": sign_body(body, rogue.signer, created_s=now,
                                                                    expires_s=now + 60)})
                assert status == 200  # forwarded: the bridge cannot tell
                stats = fleet.members[0].link.stats
                await wait_until(lambda: stats["nacked"] == 1, timeout_s=10, what="the charger's refusal")
                assert stats["unanswered"] == 1 and stats["answered"] == 0  # no signed answer for it
        finally:
            await bridge.close()
    assert "relayed" not in bridge.stats
