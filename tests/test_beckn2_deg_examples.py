"""The DEG EV-charging v2 example messages, fed to the charger: each is handled or refused,
and the reason is the one ``docs/network-protocol.md`` (section 19.9) writes down.

The examples predate the LTS release (snake_case context, ``message.order``, ``rating``), so
each is fed twice: as published, and with its context spelt as the LTS spells it (camelCase
keys, the charger's ids and network), which shows what the charger makes of the message itself.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from beckn2_support import SPECS
from test_beckn2_bpp import NETWORK, World2

from protocols.beckn import messages as m
from protocols.beckn2.codec import CONTEXT_KEYS
from protocols.signing.beckn import sign_body

EXAMPLES = SPECS / "deg-ev-charging-v2" / "examples"
DOC = Path(__file__).resolve().parents[1] / "docs" / "network-protocol.md"


def examples() -> list[Path]:
    if not EXAMPLES.exists():
        pytest.skip(f"DEG examples not found at {EXAMPLES}")
    return sorted(EXAMPLES.glob("*/*.json"))


def lts_context(doc: dict, w: World2) -> dict:
    ctx = {CONTEXT_KEYS.get(k, k): v for k, v in doc["context"].items()}
    ctx.update(bapId=w.buyer.signer.subscriber_id, bppId="in.test.charger", networkId=NETWORK,
               transactionId="6f1c2a8e-2b7e-4a57-9b43-1d0b2f1f6a01", messageId="6f1c2a8e-2b7e-4a57-9b43-1d0b2f1f6a02",
               domain=m.DEFAULT_DOMAIN, timestamp="2026-09-21T14:13:20Z", bapUri="http://bap.test/beckn")
    return {**doc, "context": ctx}


async def outcome(doc: dict, w: World2) -> str:
    action = doc["context"]["action"]
    body = m.encode(doc)
    now = int(w.clock())
    reply = await w.bpp.receive(action, body, {"Authorization": sign_body(body, w.buyer.signer, created_s=now,
                                                                          expires_s=now + 60)})
    ack = w.bpp.wire_ack(reply, body)
    if ack["status"] == "ACK":
        return "handled"
    err = ack["error"]
    return f"refused {err['errorCode']} at {err.get('paths', '-')}"


def documented() -> dict[str, tuple[str, str]]:
    """The table in the protocol document: example -> (as published, with an LTS context)."""
    rows = {}
    for line in DOC.read_text(encoding="utf-8").splitlines():
        match = re.match(r"^\| `([0-9_a-z]+/[^`]+\.json)` \| ([^|]+) \| ([^|]+) \|", line)
        if match:
            rows[match.group(1)] = (match.group(2).strip(), match.group(3).strip())
    return rows


async def test_every_deg_v2_example_is_handled_or_refused_as_the_protocol_document_says():
    table = documented()
    got = {}
    for path in examples():
        doc = json.loads(path.read_text(encoding="utf-8"))
        name = f"{path.parent.name}/{path.name}"
        w = World2()
        got[name] = (await outcome(doc, w), await outcome(lts_context(doc, w), w))
    assert set(table) == set(got), sorted(set(table) ^ set(got))
    for name, (published, lifted) in got.items():
        assert table[name][0].startswith(published), (name, published, table[name][0])
        assert table[name][1].startswith(lifted), (name, lifted, table[name][1])
