"""Section 19 of ``docs/network-protocol.md`` followed word for word on the captured 2.0 exchange
(``docs/examples-2.0``) with only the standard library, ``cryptography`` and ``rfc8785``: the
request digest, documents in ``descriptor.docs``, the counter-signature; and section 20 quotes
the captured files byte for byte."""
from __future__ import annotations

import base64
import hashlib
import json
import re
from pathlib import Path

import rfc8785
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from test_beckn2_bpp import World2
from test_protocol_doc import key_of, verify_detached

from protocols.beckn import messages as m

DOCS = Path(__file__).resolve().parents[1] / "docs"
EXAMPLES = DOCS / "examples-2.0"


def body_of(name: str) -> bytes:
    _head, payload = (EXAMPLES / name).read_bytes().split(b"\n\n", 1)
    return payload.split(b"\n\n", 1)[1]


def blake(data: bytes) -> str:
    return "BLAKE-512=" + base64.b64encode(hashlib.blake2b(data, digest_size=64).digest()).decode()


def document(descriptor: dict, label: str) -> dict:
    """Section 19.6: the Document with ``label``, its ``data:`` URL decoded."""
    doc = next(d for d in descriptor["docs"] if d["label"] == label)
    prefix = "data:application/json;base64,"
    assert doc["mimeType"] == "application/json" and doc["url"].startswith(prefix)
    return json.loads(base64.b64decode(doc["url"][len(prefix):], validate=True))


def params(header: str) -> dict:
    return dict(re.findall(r'([A-Za-z]+)="([^"]*)"', header))


def test_each_captured_callback_names_the_digest_of_the_request_it_answers():
    pairs = [("05-inbox-select.txt", "06-inbox-on_select.txt"), ("07-inbox-init.txt", "08-inbox-on_init.txt"),
             ("09-inbox-confirm.txt", "10-inbox-on_confirm.txt"), ("28-inbox-track.txt", "29-inbox-on_track.txt")]
    for request, callback in pairs:
        req, cb = body_of(request), json.loads(body_of(callback))
        assert cb["context"]["requestDigest"] == {"digest": blake(req)}
        assert cb["context"]["messageId"] == json.loads(req)["context"]["messageId"]


def test_the_captured_quote_and_receipt_verify_with_the_certificate_in_the_contract():
    on_confirm = json.loads(body_of("10-inbox-on_confirm.txt"))["message"]["contract"]
    cert = document(on_confirm["descriptor"], "agency-certificate")
    key, key_id = key_of(cert)
    quote = document(on_confirm["descriptor"], "signed-quote")
    verify_detached(quote, key)
    assert quote["signature"]["key_id"] == key_id
    final = json.loads(body_of("26-inbox-on_status.txt"))["message"]["contract"]
    assert final["status"]["code"] == "COMPLETE"
    receipt = document(final["descriptor"], "signed-receipt")
    verify_detached(receipt, key)
    assert receipt["paid_paise"] == quote["price_paise"]


async def test_an_ack_made_now_verifies_by_the_documented_counter_signature_recipe():
    w = World2()
    doc = w.v2(m.select(w.buyer.ctx("select"), provider_id="in.test.charger", energy_wh=4000))
    _reply, ack, body = await w.post(doc)
    p = params(ack["signature"])
    assert p["headers"] == "(created) (expires) digest (request-digest) (message-id)"
    unsigned = {k: v for k, v in ack.items() if k != "signature"}
    text = (f"(created): {p['created']}\n(expires): {p['expires']}\ndigest: {blake(rfc8785.dumps(unsigned))}\n"
            f"(request-digest): {blake(body)}\n(message-id): {doc['context']['messageId']}")
    Ed25519PublicKey.from_public_bytes(w.key).verify(base64.b64decode(p["signature"]), text.encode())


def test_section_20_quotes_the_captured_files_byte_for_byte():
    text = (DOCS / "network-protocol.md").read_text(encoding="utf-8")
    section = text.split("## 20. Examples on 2.0 (captured)", 1)[1]
    blocks = re.findall(r"### [^\n]+ — `([^`]+)`\n\n```\n(.*?)\n```", section, flags=re.S)
    assert len(blocks) >= 20
    for name, quoted in blocks:
        assert (EXAMPLES / name).read_text(encoding="utf-8").rstrip() == quoted, name
