"""The DeDi-style registry: the lookup client against the reference registry over real HTTP."""
from __future__ import annotations

import json

import aiohttp
import pytest

from protocols.beckn2.dedi import (
    DediError,
    DediRegistryClient,
    DediRegistryServer,
    NetworkId,
    load_registry_file,
    record_from_subscription,
    save_registry_file,
)
from protocols.signing._codec import b64encode, format_time
from protocols.signing.beckn import Verifier, sign_body
from protocols.signing.errors import SignatureError
from tests.cds_support import NOW_S, Clock, signer

NETWORK = NetworkId.parse("acmenet.org/charge-net")
CHARGER = signer("charger.example.in", "k1", 3)


def subscription(s=CHARGER, *, valid_until_s=NOW_S + 86_400) -> dict:
    return {"subscriber_id": s.subscriber_id, "unique_key_id": s.key_id,
            "signing_public_key": b64encode(s.public_key_bytes), "type": "BPP", "domain": "deg:ev-charging",
            "valid_from": format_time(NOW_S - 60), "valid_until": format_time(valid_until_s)}


@pytest.fixture
async def world():
    server = DediRegistryServer()
    server.add(record_from_subscription(subscription(), network=NETWORK, url="https://charger.example.in/beckn",
                                        now_s=NOW_S))
    port = await server.start()
    session = aiohttp.ClientSession()
    clock = Clock()
    client = DediRegistryClient(session=session, base_url=f"http://127.0.0.1:{port}/dedi", clock=clock,
                                network=NETWORK, cache_ttl_s=300)
    yield server, client, clock
    await session.close()
    await server.close()


async def test_a_listed_key_is_found_with_its_window_and_status(world):
    server, client, _ = world
    p = await client.participant("charger.example.in", "k1")
    assert p.signing_public_key == CHARGER.public_key_bytes and p.status == "SUBSCRIBED"
    assert p.valid_from_s == NOW_S - 60 and p.valid_until_s == NOW_S + 86_400 and p.member_of(NETWORK)
    rec = await client.lookup("charger.example.in", "k1")
    assert rec.signing_public_key == CHARGER.public_key_bytes


async def test_answers_are_cached_until_the_ttl_then_asked_again(world):
    server, client, clock = world
    await client.lookup("charger.example.in", "k1")
    await client.lookup("charger.example.in", "k1")
    assert server.lookups == 1
    clock.t_s += 301
    await client.lookup("charger.example.in", "k1")
    assert server.lookups == 2


async def test_an_unknown_key_is_none_and_the_miss_is_cached_briefly(world):
    server, client, clock = world
    assert await client.lookup("charger.example.in", "nope") is None
    assert await client.lookup("charger.example.in", "nope") is None
    assert server.lookups == 1
    clock.t_s += 31
    assert await client.lookup("charger.example.in", "nope") is None
    assert server.lookups == 2


async def test_a_revoked_key_is_unknown_once_the_cache_lets_go(world):
    server, client, clock = world
    assert await client.lookup("charger.example.in", "k1") is not None
    server.revoke("charger.example.in", "k1")
    clock.t_s += 301
    assert await client.lookup("charger.example.in", "k1") is None
    assert (await client.participant("charger.example.in", "k1")).status == "REVOKED"


async def test_a_participant_of_another_network_is_refused_by_name(world):
    server, client, _ = world
    other = signer("elsewhere.example.in", "e1", 5)
    server.add(record_from_subscription(subscription(other), network=NetworkId.parse("other.org/net"),
                                        url="https://elsewhere.example.in", now_s=NOW_S))
    with pytest.raises(SignatureError) as e:
        await client.lookup("elsewhere.example.in", "e1")
    assert e.value.reason == "network-mismatch" and "acmenet.org/charge-net" in str(e.value)


async def test_the_registry_ttl_shortens_the_cache(world):
    server, client, clock = world
    server.ttl_s = 10
    await client.lookup("charger.example.in", "k1")
    clock.t_s += 11
    await client.lookup("charger.example.in", "k1")
    assert server.lookups == 2


async def test_a_verifier_checks_a_signature_through_the_registry(world):
    _, client, clock = world
    body = b'{"context":{},"message":{}}'
    header = sign_body(body, CHARGER, created_s=int(NOW_S), expires_s=int(NOW_S) + 60)
    verified = await Verifier(lookup=client, clock=clock).verify(header, body)
    assert verified.subscriber_id == "charger.example.in"
    forged = sign_body(body, signer("charger.example.in", "k1", 9), created_s=int(NOW_S), expires_s=int(NOW_S) + 60)
    with pytest.raises(SignatureError) as e:
        await Verifier(lookup=client, clock=clock).verify(forged, body)
    assert e.value.reason == "signature-invalid"


async def test_an_unreachable_registry_refuses_rather_than_accepts():
    async with aiohttp.ClientSession() as session:
        client = DediRegistryClient(session=session, base_url="http://127.0.0.1:9/dedi", clock=Clock(),
                                    timeout_s=2.0)
        with pytest.raises(SignatureError) as e:
            await client.lookup("charger.example.in", "k1")
    assert e.value.reason == "registry-unavailable"


async def test_a_malformed_answer_is_refused_naming_the_field(world):
    server, client, _ = world
    server.doc["records"][0]["details"]["signing_public_key"] = "not base64!"
    with pytest.raises(SignatureError) as e:
        await client.lookup("charger.example.in", "k1")
    assert e.value.reason == "bad-base64" and "signing_public_key" in str(e.value)


async def test_registry_metadata_is_read_by_network_id(world):
    server, client, _ = world
    server.doc["registries"] = [{"namespace": "acmenet.org", "registry": "charge-net",
                                 "meta": {"catalog_services": "https://cds.acmenet.org"}}]
    assert (await client.registry_meta())["catalog_services"] == "https://cds.acmenet.org"


def test_network_ids_are_parsed_or_refused_in_one_line():
    assert NetworkId.parse("acmenet.org/charge-net@dedi.global") == NetworkId("acmenet.org", "charge-net",
                                                                                "dedi.global")
    assert str(NetworkId.parse("acmenet.org/charge-net")) == "acmenet.org/charge-net"
    for bad in ("acmenet.org", "a/b/c", "", None, "a/b@"):
        with pytest.raises(DediError) as e:
            NetworkId.parse(bad)
        assert "NAMESPACE/REGISTRY" in str(e.value) and "\n" not in str(e.value)


def test_a_registry_file_round_trips_and_a_bad_one_names_the_record(tmp_path):
    path = tmp_path / "registry.json"
    doc = load_registry_file(path)
    doc["records"].append(record_from_subscription(subscription(), network=NETWORK, url="https://x", now_s=NOW_S))
    save_registry_file(path, doc)
    assert load_registry_file(path)["records"][0]["record_id"] == "k1"
    broken = json.loads(path.read_text())
    del broken["records"][0]["details"]["signing_public_key"]
    path.write_text(json.dumps(broken))
    with pytest.raises(DediError) as e:
        load_registry_file(path)
    assert "records[0]" in str(e.value) and "signing_public_key" in str(e.value)
