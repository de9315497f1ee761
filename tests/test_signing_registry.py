"""Registry /lookup client against a real aiohttp server on loopback."""
from __future__ import annotations

import asyncio
import base64
import json

import aiohttp
import pytest
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ed25519

from protocols.signing.beckn import Verifier, sign_body
from protocols.signing.errors import SignatureError
from protocols.signing.keys import Ed25519Signer, PublicKeyRecord, StaticKeyLookup
from protocols.signing.registry import RegistryClient

T0 = 1_800_000_000
PEER = Ed25519Signer(subscriber_id="bap.example.in", key_id="b1",
                     private_key=ed25519.Ed25519PrivateKey.from_private_bytes(b"\x05" * 32))
ME = Ed25519Signer(subscriber_id="charger-1.example.in", key_id="k1",
                   private_key=ed25519.Ed25519PrivateKey.from_private_bytes(b"\x06" * 32))


def subscription(**over):
    record = {
        "subscriber_id": PEER.subscriber_id, "key_id": PEER.key_id, "type": "BAP", "domain": "deg",
        "signing_public_key": base64.b64encode(PEER.public_key_bytes).decode(),
        "encr_public_key": "MCowBQYDK2VuAyEA" + "A" * 43 + "=",
        "valid_from": "2027-01-01T00:00:00Z", "valid_until": "2028-01-01T00:00:00Z", "status": "SUBSCRIBED",
    }
    record.update(over)
    return record


class Registry:
    """A loopback registry whose answers and behaviour each test sets."""

    def __init__(self):
        self.records = [subscription()]
        self.requests: list[tuple[dict, str | None]] = []
        self.status = 200
        self.raw: bytes | None = None
        self.stall = asyncio.Event()
        self.stalling = False

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        self.requests.append((json.loads(body), request.headers.get("Authorization")))
        if self.stalling:
            await self.stall.wait()
        if self.raw is not None:
            return web.Response(body=self.raw, status=self.status)
        wanted = json.loads(body)
        hits = [r for r in self.records if r["subscriber_id"] == wanted.get("subscriber_id")]
        return web.json_response(hits, status=self.status)


@pytest.fixture
async def registry():
    reg = Registry()
    app = web.Application()
    app.router.add_post("/lookup", reg.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    async with aiohttp.ClientSession() as session:
        reg.url = f"http://127.0.0.1:{port}"
        reg.session = session
        yield reg
        reg.stall.set()
    await runner.cleanup()


def client(reg, clock=lambda: T0, **kw):
    return RegistryClient(session=reg.session, base_url=reg.url, clock=clock, **kw)


async def test_lookup_finds_key_and_caches_it(registry):
    c = client(registry)
    record = await c.lookup("bap.example.in", "b1")
    assert record.signing_public_key == PEER.public_key_bytes
    assert record.valid_until_s == 1830297600
    assert await c.lookup("bap.example.in", "b1") == record
    assert c.requests_sent == 1
    assert registry.requests[0][0] == {"subscriber_id": "bap.example.in", "key_id": "b1"}


async def test_cache_expires(registry):
    now = [T0]
    c = client(registry, clock=lambda: now[0], cache_ttl_s=60)
    await c.lookup("bap.example.in", "b1")
    now[0] += 61
    await c.lookup("bap.example.in", "b1")
    assert c.requests_sent == 2


async def test_unknown_and_unsubscribed_keys_are_none(registry):
    registry.records = [subscription(status="EXPIRED"), subscription(key_id="other")]
    c = client(registry)
    assert await c.lookup("bap.example.in", "b1") is None
    assert await c.lookup("nobody.example.in", "x") is None


async def test_verifier_uses_registry(registry):
    body = b'{"context":{}}'
    header = sign_body(body, PEER, created_s=T0, expires_s=T0 + 30)
    verifier = Verifier(lookup=client(registry), clock=lambda: T0)
    assert (await verifier.verify(header, body)).subscriber_id == "bap.example.in"


async def test_lookup_requests_are_signed_when_a_signer_is_given(registry):
    c = client(registry, signer_factory=lambda now_s: ME)
    await c.lookup("bap.example.in", "b1")
    sent, auth = registry.requests[0]
    record = PublicKeyRecord(ME.subscriber_id, ME.key_id, ME.public_key_bytes, T0 - 10, T0 + 10)
    body = json.dumps(sent, separators=(",", ":")).encode()
    assert await Verifier(lookup=StaticKeyLookup([record]), clock=lambda: T0).verify(auth, body)


@pytest.mark.parametrize(
    "status, raw, reason",
    [
        (500, b"[]", "registry-unavailable"),
        (200, b"not json", "registry-malformed"),
        (200, b'{"a": 1}', "registry-malformed"),
        (200, json.dumps([subscription(signing_public_key="short")]).encode(), "registry-malformed"),
    ],
)
async def test_registry_faults_refuse(registry, status, raw, reason):
    registry.status, registry.raw = status, raw
    with pytest.raises(SignatureError) as info:
        await client(registry).lookup("bap.example.in", "b1")
    assert info.value.reason == reason


async def test_silent_registry_times_out(registry):
    registry.stalling = True
    with pytest.raises(SignatureError) as info:
        await client(registry, timeout_s=0.2).lookup("bap.example.in", "b1")
    assert info.value.reason == "registry-unavailable"


async def test_unreachable_registry(registry):
    c = RegistryClient(session=registry.session, base_url="http://127.0.0.1:1", clock=lambda: T0)
    with pytest.raises(SignatureError) as info:
        await c.lookup("bap.example.in", "b1")
    assert info.value.reason == "registry-unavailable"


async def test_cache_is_bounded(registry):
    c = client(registry, max_entries=2)
    for name in ("a", "b", "c"):
        await c.lookup(name, "x")
    assert len(c._cache) == 2
