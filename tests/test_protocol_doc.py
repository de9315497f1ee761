"""The recipes of ``docs/network-protocol.md`` (sections 12 to 14), followed word for word.

An app is written from the document, not from this code base, so the checks here use only the
standard library, ``cryptography`` and ``rfc8785``: never the project's signing helpers. They
recompute signatures and digests from the captured messages in ``docs/examples`` and from
messages the provider logic makes in the test, and compare them with what the charger wrote.
"""
from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
import rfc8785
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey
from test_beckn_fakes import Buyer, Clock, FakeCharger, charger_signer, verifier_for

from protocols.beckn import messages as m
from protocols.beckn.bpp import Bpp

DOCS = Path(__file__).resolve().parents[1] / "docs"
EXAMPLES = DOCS / "examples"


# --------------------------------------------------------------------------- the document's recipes

def example_body(name: str) -> bytes:
    """The exact body of a captured publication: after the file's own head (topic line, an
    optional retain line, an empty line) comes the payload, whose header block ends at the
    first empty line (section 4)."""
    _head, payload = (EXAMPLES / name).read_bytes().split(b"\n\n", 1)
    _headers, body = payload.split(b"\n\n", 1)
    return body


def tag_document(groups: list, code: str) -> str:
    """The ``document`` tag's text in the tag group whose ``descriptor.code`` is ``code``."""
    for group in groups:
        if group["descriptor"]["code"] == code:
            return next(t["value"] for t in group["list"] if t["descriptor"]["code"] == "document")
    raise AssertionError(f"no tag group {code!r}")


def verify_detached(doc: dict, signing_public_key_b64: str) -> None:
    """Section 12: drop ``signature``, put back only ``alg`` and ``key_id``, JCS, Ed25519."""
    sig = doc["signature"]
    assert set(sig) == {"alg", "key_id", "value"} and sig["alg"] == "ed25519"
    signed = {k: v for k, v in doc.items() if k != "signature"}
    signed["signature"] = {"alg": sig["alg"], "key_id": sig["key_id"]}
    value = base64.b64decode(sig["value"], validate=True)
    assert len(value) == 64 and len(sig["value"]) == 88
    key = Ed25519PublicKey.from_public_bytes(base64.b64decode(signing_public_key_b64, validate=True))
    key.verify(value, rfc8785.dumps(signed))


def key_of(certificate: dict) -> tuple[str, str]:
    """The public key a certificate names, and the ``key_id`` a document it signs must carry."""
    return certificate["signing_public_key"], f"{certificate['subscriber_id']}|{certificate['unique_key_id']}"


def tariff_digest(tariff: dict) -> str:
    """Section 13.1."""
    return "sha256:" + hashlib.sha256(rfc8785.dumps(tariff)).hexdigest()


def acceptance_digest(confirm_body: bytes) -> str:
    """Section 13.2."""
    return "BLAKE-512=" + base64.b64encode(hashlib.blake2b(confirm_body, digest_size=64).digest()).decode()


def verify_ocmf(ocmf: str, metering_public_key_hex: str) -> dict:
    """Section 14.2: ECDSA P-256 / SHA-256 over the payload bytes between the first two ``|``."""
    prefix, payload, signature = ocmf.split("|")
    assert prefix == "OCMF"
    section = json.loads(signature)
    assert section == {"SA": "ECDSA-secp256r1-SHA256", "SD": section["SD"]}
    assert section["SD"] == section["SD"].upper()
    key = serialization.load_der_public_key(bytes.fromhex(metering_public_key_hex))
    assert isinstance(key, ec.EllipticCurvePublicKey) and key.curve.name == "secp256r1"
    key.verify(bytes.fromhex(section["SD"]), payload.encode("ascii"), ec.ECDSA(hashes.SHA256()))
    return json.loads(payload)


def captured_order(name: str) -> dict:
    return json.loads(example_body(name))["message"]["order"]


# --------------------------------------------------------------------------- captured messages

def test_the_captured_offer_quote_and_receipt_verify_by_the_documented_detached_signature_recipe():
    catalog = json.loads(example_body("04-inbox-on_search.txt"))["message"]["catalog"]["providers"][0]
    certificate = json.loads(tag_document(catalog["tags"], "agency-certificate"))
    public_key, key_id = key_of(certificate)
    order = captured_order("26-inbox-on_status.txt")
    texts = [tag_document(catalog["offers"][0]["tags"], "signed-offer"),
             tag_document(order["tags"], "signed-quote"),
             tag_document(order["tags"], "signed-receipt")]
    for text in texts:
        doc = json.loads(text)
        assert rfc8785.dumps(doc).decode() == text  # carried as its own canonical text
        assert doc["signature"]["key_id"] == key_id
        verify_detached(doc, public_key)
    assert [json.loads(t)["kind"] for t in texts] == ["urja.offer", "urja.quote", "urja.receipt"]


def test_a_changed_member_or_a_signature_over_the_object_without_its_signature_member_does_not_verify():
    order = captured_order("26-inbox-on_status.txt")
    quote = json.loads(tag_document(order["tags"], "signed-quote"))
    certificate = json.loads(tag_document(order["tags"], "signed-receipt"))["charger"]["certificate"]
    public_key, _ = key_of(certificate)
    with pytest.raises(InvalidSignature):
        verify_detached({**quote, "price_paise": quote["price_paise"] - 1}, public_key)
    key = Ed25519PublicKey.from_public_bytes(base64.b64decode(public_key))
    bare = {k: v for k, v in quote.items() if k != "signature"}
    with pytest.raises(InvalidSignature):  # the key id is signed too
        key.verify(base64.b64decode(quote["signature"]["value"]), rfc8785.dumps(bare))


def test_the_tariff_digest_of_the_captured_offer_is_the_one_in_offer_quote_and_receipt():
    catalog = json.loads(example_body("04-inbox-on_search.txt"))["message"]["catalog"]["providers"][0]
    offer = json.loads(tag_document(catalog["offers"][0]["tags"], "signed-offer"))
    order = captured_order("26-inbox-on_status.txt")
    quote = json.loads(tag_document(order["tags"], "signed-quote"))
    receipt = json.loads(tag_document(order["tags"], "signed-receipt"))
    digest = tariff_digest(offer["tariff"])
    assert digest == offer["tariff_digest"] == quote["tariff_digest"] == receipt["tariff"]["digest"]
    assert receipt["tariff"]["id"] == offer["tariff_id"] == offer["tariff"]["id"]


def test_the_acceptance_digest_of_the_captured_receipt_is_the_blake2b_of_the_confirm_body_bytes():
    confirm = example_body("09-inbox-confirm.txt")
    receipt = json.loads(tag_document(captured_order("26-inbox-on_status.txt")["tags"], "signed-receipt"))
    assert acceptance_digest(confirm) == receipt["acceptance_digest"]
    on_confirm = captured_order("10-inbox-on_confirm.txt")
    assert receipt["order_id"] == on_confirm["id"]


def test_the_acceptance_digest_is_the_digest_line_of_the_confirms_own_signature():
    raw = (EXAMPLES / "09-inbox-confirm.txt").read_bytes()
    _head, payload = raw.split(b"\n\n", 1)
    headers, body = payload.split(b"\n\n", 1)
    auth = headers.decode("ascii").split("Authorization: ", 1)[1]
    params = dict(part.split("=", 1) for part in auth[len("Signature "):].split(","))
    params = {k: v.strip('"') for k, v in params.items()}
    certificate = json.loads(tag_document(json.loads(body)["message"]["order"]["tags"], "agency-certificate"))
    signing_string = (f"(created): {params['created']}\n(expires): {params['expires']}\n"
                      f"digest: {acceptance_digest(body)}")
    key = Ed25519PublicKey.from_public_bytes(base64.b64decode(certificate["signing_public_key"]))
    key.verify(base64.b64decode(params["signature"]), signing_string.encode("ascii"))
    assert params["keyId"] == f"{certificate['subscriber_id']}|{certificate['unique_key_id']}|ed25519"


def test_the_captured_receipts_ocmf_verifies_with_the_metering_key_of_its_own_certificate():
    receipt = json.loads(tag_document(captured_order("26-inbox-on_status.txt")["tags"], "signed-receipt"))
    certificate = receipt["charger"]["certificate"]
    payload = verify_ocmf(receipt["ocmf"], certificate["metering_public_key"])
    assert list(payload) == ["FV", "GI", "GS", "GV", "PG", "MV", "MM", "MS", "IS", "IT", "ID", "RD"]
    assert payload["GI"] == payload["GS"] == receipt["charger"]["subscriber_id"]
    assert payload["MS"] == receipt["meter"]["serial"]
    assert payload["ID"] == json.loads(example_body("09-inbox-confirm.txt"))["context"]["bap_id"]
    begin, end = payload["RD"]
    assert (begin["TX"], begin["RI"], begin["RU"], end["TX"]) == ("B", "1-b:1.8.0", "Wh", "E")
    assert (begin["RV"], end["RV"]) == (receipt["start"]["meter_wh"], receipt["stop"]["meter_wh"])
    assert receipt["energy_wh"] == end["RV"] - begin["RV"]
    assert len(certificate["metering_public_key"]) == 182


def test_the_worked_examples_in_the_document_quote_the_values_the_recipes_give():
    text = (DOCS / "network-protocol.md").read_text(encoding="utf-8")
    order = captured_order("26-inbox-on_status.txt")
    receipt = json.loads(tag_document(order["tags"], "signed-receipt"))
    quote = json.loads(tag_document(order["tags"], "signed-quote"))
    signed = {k: v for k, v in quote.items() if k != "signature"}
    signed["signature"] = {"alg": "ed25519", "key_id": quote["signature"]["key_id"]}
    assert acceptance_digest(example_body("09-inbox-confirm.txt")) in text
    assert receipt["tariff"]["digest"] in text
    assert rfc8785.dumps(signed).decode() in text
    assert receipt["charger"]["certificate"]["signing_public_key"] in text
    assert receipt["ocmf"].split("|")[1] in text


# --------------------------------------------------------------------------- messages made now

async def test_offers_quotes_and_the_acceptance_digest_the_provider_makes_now_follow_the_recipes():
    """The captured files could age; the provider logic as it is now must give the same."""
    clock = Clock()
    charger_key = charger_signer()
    charger = FakeCharger(clock=clock, receipt_signer=charger_key)
    buyer = Buyer(clock=clock)
    bpp = Bpp(service=charger, signer=charger_key, verifier=verifier_for(clock, buyer.signer),
              bpp_uri="http://charger.test/beckn", clock=clock)
    public_key = base64.b64encode(charger_key.public_key_bytes).decode()
    key_id = f"{charger_key.subscriber_id}|{charger_key.key_id}"

    async def send(doc: dict) -> tuple[bytes, dict]:
        body, headers = buyer.sign(doc)
        reply = await bpp.receive(doc["context"]["action"], body, headers)
        assert reply.acked, reply.ack
        (callback,) = reply.callbacks
        return body, json.loads(callback.body)

    _, on_search = await send(m.search(buyer.ctx("search", to_bpp=False), gps=(12.9352, 77.6245), radius_m=2000))
    offer = json.loads(tag_document(on_search["message"]["catalog"]["providers"][0]["offers"][0]["tags"],
                                    "signed-offer"))
    verify_detached(offer, public_key)
    assert offer["signature"]["key_id"] == key_id
    assert offer["tariff_digest"] == tariff_digest(charger.tariff())

    ask = {"provider_id": "in.test.charger", "energy_wh": 2000}
    _, on_select = await send(m.select(buyer.ctx("select"), **ask))
    quote = json.loads(tag_document(on_select["message"]["order"]["tags"], "signed-quote"))
    verify_detached(quote, public_key)
    assert quote["tariff_digest"] == offer["tariff_digest"]
    await send(m.init(buyer.ctx("init"), **ask))
    confirm_body, on_confirm = await send(m.confirm(buyer.ctx("confirm"), amount_paise=quote["price_paise"],
                                                    payment_ref="UPI-1", **ask))
    order_id = on_confirm["message"]["order"]["id"]
    await send(m.update(buyer.ctx("update"), order_id=order_id, command=m.START_CHARGING))
    # what the provider hands the charger to write into the receipt
    assert charger.start_kwargs["acceptance_digest"] == acceptance_digest(confirm_body)

    sid = bpp.transactions()[buyer.transaction_id]["session_id"]
    charger.charge(sid, 2000)
    _, on_update = await send(m.update(buyer.ctx("update"), order_id=order_id, command=m.END_CHARGING))
    order = on_update["message"]["order"]
    assert order["status"] == "COMPLETE"
    receipt = json.loads(tag_document(order["tags"], "signed-receipt"))
    verify_detached(receipt, public_key)
    assert receipt["order_id"] == order_id
    await bpp.close()
