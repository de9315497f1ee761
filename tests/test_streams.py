"""Bounded bodies are read whole, however the peer's bytes arrive (a real aiohttp server
streaming in small pieces, real sockets)."""
from __future__ import annotations

import asyncio
import json

import aiohttp
import pytest
from aiohttp import web

from protocols.http.serve import serve
from protocols.ocpi.client import OcpiClient
from protocols.ocpi.errors import PartnerError
from protocols.streams import read_body

PIECE_BYTES = 1000


async def trickle(request: web.Request, payload: bytes) -> web.StreamResponse:
    """Send ``payload`` a piece at a time, each after the peer has had a chance to read."""
    resp = web.StreamResponse(headers={"Content-Type": "application/json"})
    await resp.prepare(request)
    for i in range(0, len(payload), PIECE_BYTES):
        await resp.write(payload[i:i + PIECE_BYTES])
        await asyncio.sleep(0)  # let the bytes so far reach the reader before the next piece
    await resp.write_eof()
    return resp


@pytest.fixture
async def server():
    bodies: dict[str, bytes] = {}

    async def handler(request):
        return await trickle(request, bodies[request.path])

    app = web.Application()
    app.router.add_route("*", "/{name}", handler)
    runner, port = await serve(app, "127.0.0.1", 0)
    try:
        yield bodies, f"http://127.0.0.1:{port}"
    finally:
        await runner.cleanup()


async def test_a_body_sent_in_many_pieces_is_read_whole(server):
    bodies, base = server
    bodies["/big"] = b"x" * 200_000
    async with aiohttp.ClientSession() as session, session.get(base + "/big") as resp:
        assert await read_body(resp.content, 300_000) == bodies["/big"]


async def test_a_body_over_the_bound_is_cut_just_past_it(server):
    bodies, base = server
    bodies["/big"] = b"x" * 200_000
    async with aiohttp.ClientSession() as session, session.get(base + "/big") as resp:
        assert len(await read_body(resp.content, 50_000)) == 50_001


async def test_an_ocpi_partner_answer_arriving_in_pieces_is_parsed_whole(server):
    bodies, base = server
    locations = [{"id": f"LOC{i:05d}", "name": "n" * 50} for i in range(2000)]  # about 130 KB
    bodies["/locations"] = json.dumps({"status_code": 1000, "data": locations}).encode()
    async with aiohttp.ClientSession() as session:
        status, envelope = await OcpiClient(session).call("GET", base + "/locations", token=None)
    assert status == 200 and len(envelope["data"]) == 2000


async def test_an_ocpi_partner_answer_over_the_limit_is_refused(server):
    bodies, base = server
    bodies["/huge"] = b'{"data": "' + b"x" * (1 << 20) + b'"}'
    async with aiohttp.ClientSession() as session:
        with pytest.raises(PartnerError, match="larger than"):
            await OcpiClient(session).call("GET", base + "/huge", token=None)
