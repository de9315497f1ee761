"""The DEG EV-charging v2 discover examples, sent to the reference catalog service: each is refused,
and the reason is the one written down here (they predate the 2.0.0 LTS).

As published they use snake_case context keys (``transaction_id``): refused at
``context.transactionId``. Lifted to the LTS envelope (camelCase context, qualifiers inside
``message.intent``) each is still refused, naming the part the LTS does not have:
lower-case ``s_dwithin`` (the LTS enum is ``S_DWITHIN``), ``beckn:``-prefixed JSONPath names
(the LTS resource has ``id`` and ``resourceAttributes``), and comparisons other than equality.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from protocols.beckn2 import cds_wire as w
from protocols.beckn2.cds import CatalogDiscoveryService
from protocols.signing.keys import StaticKeyLookup
from tests.cds_support import NOW_S, SPECS, Clock, record, signer

EXAMPLES = SPECS / "deg-ev-charging-v2" / "examples" / "01_discover"
CDS_KEY = signer("cds.example.in", "d1", 7)
APP = signer("app.example.com", "a1", 9)
LIFTED_REFUSAL = {
    "discovery-by-EVSE.json": "message.intent.filters.expression",
    "discovery-services-by-a-cpo.json": "message.intent.filters.expression",
    "discovery-services-by-a-station.json": "message.intent.filters.expression",
    "discovery-within-a-circular-boundary.json": "message.intent.spatial[0].op",
    "discovery-within-a-timerange.json": "message.intent.filters.expression",
    "discovery-within-boundary-with-connection-spec.json": "message.intent.spatial[0].op",
    "discovery-within-boundary-with-vehicle-spec.json": "message.intent.spatial[0].op",
}


def _camel(key: str) -> str:
    return re.sub(r"_([a-z])", lambda m: m.group(1).upper(), key)


def lifted(doc: dict) -> dict:
    ctx = {_camel(k): v for k, v in doc["context"].items()}
    ctx["bapUri"] = "http://127.0.0.1:9"
    return {"context": ctx, "message": {"intent": dict(doc["message"])}}


def examples() -> list[Path]:
    return sorted(EXAMPLES.glob("*.json")) if EXAMPLES.exists() else []


def test_every_discover_example_has_a_reason_written_down():
    if not examples():
        pytest.skip(f"DEG examples not found at {EXAMPLES}")
    assert sorted(p.name for p in examples()) == sorted(LIFTED_REFUSAL)


@pytest.mark.parametrize("path", examples(), ids=lambda p: p.name)
async def test_a_deg_discover_example_is_refused_for_the_reason_written_down(path):
    doc = json.loads(path.read_text())
    cds = CatalogDiscoveryService(signer=CDS_KEY, lookup=StaticKeyLookup([record(CDS_KEY), record(APP)]),
                                  clock=Clock())
    async with TestClient(TestServer(cds.app())) as client:
        for body_doc, field in ((doc, "context.transactionId"), (lifted(doc), LIFTED_REFUSAL[path.name])):
            body = w.encode(body_doc)
            async with client.post("/discover", data=body, headers=w.signed_headers(body, APP, NOW_S)) as resp:
                nack = await resp.json()
            assert resp.status == 400 and nack["error"]["errorMessage"].startswith(field), nack
    await cds.close()
