"""Oversized request headers on the Beckn HTTP endpoints: one log line and the binding's own NACK."""
from __future__ import annotations

import asyncio
import json
import logging

from test_http_beckn import Net

from protocols.http.serve import MAX_HEADER_BYTES


async def _raw(port: int, head: bytes, body: bytes = b"{}") -> tuple[int, bytes]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    writer.write(head + f"Content-Length: {len(body)}\r\nConnection: close\r\n\r\n".encode() + body)
    await writer.drain()
    data = await reader.read()
    writer.close()
    await writer.wait_closed()
    status_line, _, rest = data.partition(b"\r\n")
    return int(status_line.split()[1]), rest.partition(b"\r\n\r\n")[2]


def _no_tracebacks(caplog) -> list[str]:
    assert all(r.exc_info is None for r in caplog.records), [r.getMessage() for r in caplog.records if r.exc_info]
    return [r.getMessage() for r in caplog.records if r.name.startswith("urja.http")]


async def test_a_header_over_8_kb_gets_the_bindings_nack_and_one_log_line(caplog):
    caplog.set_level(logging.DEBUG)
    async with Net() as n:
        port = int(n.base.rsplit(":", 1)[1])
        head = b"POST /search HTTP/1.1\r\nHost: x\r\nX-Filler: " + b"a" * (MAX_HEADER_BYTES + 100) + b"\r\n"
        status, body = await _raw(port, head)
        assert status == 400
        doc = json.loads(body)
        assert doc["message"]["ack"]["status"] == "NACK"
        assert doc["error"]["code"] == "30000" and "headers are" in doc["error"]["message"]
        assert n.server.counters["headers_too_large"] == 1
    lines = _no_tracebacks(caplog)
    assert len([line for line in lines if "headers are" in line]) == 1


async def test_a_header_line_beyond_what_the_parser_reads_is_one_log_line_not_a_traceback(caplog):
    caplog.set_level(logging.DEBUG)
    async with Net() as n:
        port = int(n.base.rsplit(":", 1)[1])
        head = b"POST /search HTTP/1.1\r\nHost: x\r\nX-Filler: " + b"a" * 100_000 + b"\r\n"
        status, _ = await _raw(port, head)
        assert status == 400
        # the charger still answers the next request
        status, body = await _raw(port, b"POST /search HTTP/1.1\r\nHost: x\r\n", b"not json")
        assert status == 400 and json.loads(body)["message"]["ack"]["status"] == "NACK"
    lines = _no_tracebacks(caplog)
    assert len([line for line in lines if "Error handling request" in line]) == 1


async def test_headers_within_the_limit_reach_the_handler():
    async with Net() as n:
        port = int(n.base.rsplit(":", 1)[1])
        head = b"POST /search HTTP/1.1\r\nHost: x\r\nX-Filler: " + b"a" * (MAX_HEADER_BYTES - 200) + b"\r\n"
        status, body = await _raw(port, head, b"not json")
        assert status == 400
        assert "headers are" not in json.loads(body)["error"]["message"]
        assert "headers_too_large" not in n.server.counters
