"""Checking Beckn 2.0 messages the way an outside node would: the LTS ``beckn.yaml``, the
EV-charging schema packs (each JSON-LD ``@type`` resolved to its pack's schema) and PyNaCl,
an Ed25519 implementation independent of the one that signed.
"""
from __future__ import annotations

import base64
import functools
import hashlib
import json
from pathlib import Path

import pytest

SPECS = Path(__file__).resolve().parents[1].parent / "shared" / "specs"
PACKS = SPECS / "deg-ev-charging-v2" / "schema"
REMOTE = "https://raw.githubusercontent.com/beckn/protocol-specifications-new/refs/heads/main/schema"
# JSON-LD @type -> (pack folder, schema name)
TYPES = {
    "ChargingService": ("EvChargingService/v1", "ChargingService"),
    "ChargingOffer": ("EvChargingOffer/v1", "ChargingOffer"),
    "ChargingSession": ("EvChargingSession/v1", "ChargingSession"),
    "ChargingPointOperator": ("EvChargingPointOperator/v1", "ChargingPointOperator"),
    "PriceSpecification": ("core/v2", "PriceSpecification"),
    "beckn:Payment": ("core/v2", "Payment"),
    "beckn:Buyer": ("core/v2", "Buyer"),
}
URJA_SCHEMAS = Path(__file__).resolve().parents[1] / "docs" / "schema"
URJA_TYPES = ("ChargeOrderDetail",)  # the charger's own, in docs/schema/{type}/v1/attributes.yaml


@functools.lru_cache(maxsize=1)
def _registry():
    yaml = pytest.importorskip("yaml")
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    path = SPECS / "beckn-2.0" / "beckn.yaml"
    if not path.exists():
        pytest.skip(f"Beckn 2.0 specs not found at {SPECS} (the CI clone has shared/ beside the repository)")
    registry = Registry().with_resource(
        "urn:beckn:v2", Resource.from_contents(yaml.safe_load(path.read_text()), default_specification=DRAFT202012))
    for folder in ("core/v2", *(f for f, _ in TYPES.values())):
        doc = yaml.safe_load((PACKS / folder / "attributes.yaml").read_text())
        registry = registry.with_resource(f"{REMOTE}/{folder}/attributes.yaml",
                                          Resource.from_contents(doc, default_specification=DRAFT202012))
    return registry


@functools.lru_cache(maxsize=64)
def _validator(ref: str):
    from jsonschema import Draft202012Validator

    return Draft202012Validator({"$ref": ref}, registry=_registry(),
                                format_checker=Draft202012Validator.FORMAT_CHECKER)


def _errors(validator, doc, prefix: str = "") -> list[str]:
    return [f"{prefix}{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in validator.iter_errors(doc)]


def pack_errors(doc) -> list[str]:
    """Errors of every JSON-LD attribute object in ``doc`` against its pack's schema."""
    out: list[str] = []

    def walk(node, path):
        if isinstance(node, dict):
            t = node.get("@type")
            if isinstance(t, str) and "@context" in node:
                if t in TYPES:
                    folder, name = TYPES[t]
                    v = _validator(f"{REMOTE}/{folder}/attributes.yaml#/components/schemas/{name}")
                    schema_props = v.schema and _schema_props(folder, name)
                    body = node if "@type" in schema_props else {k: x for k, x in node.items()
                                                                 if k not in ("@context", "@type")}
                    out.extend(_errors(v, body, path + ":"))
                elif t in URJA_TYPES:
                    out.extend(_errors(_urja_validator(t), {k: x for k, x in node.items()
                                                            if k not in ("@context", "@type")}, path + ":"))
                elif t != "ContactPoint":
                    out.append(f"{path}: @type {t!r} resolves to no known schema")
            for k, x in node.items():
                walk(x, f"{path}/{k}")
        elif isinstance(node, list):
            for i, x in enumerate(node):
                walk(x, f"{path}/{i}")

    walk(doc, "")
    return out


@functools.lru_cache(maxsize=4)
def _urja_validator(name: str):
    yaml = pytest.importorskip("yaml")
    from jsonschema import Draft202012Validator

    doc = yaml.safe_load((URJA_SCHEMAS / name / "v1" / "attributes.yaml").read_text())
    return Draft202012Validator(doc["components"]["schemas"][name])


@functools.lru_cache(maxsize=16)
def _schema_props(folder: str, name: str) -> frozenset:
    yaml = pytest.importorskip("yaml")
    doc = yaml.safe_load((PACKS / folder / "attributes.yaml").read_text())
    return frozenset((doc["components"]["schemas"][name].get("properties") or {}).keys())


def v2_errors(doc: dict, action: str | None = None) -> list[str]:
    """``beckn.yaml`` errors of a request or callback body, then its attribute packs' errors."""
    action = action or doc["context"]["action"]
    v = _validator(f"urn:beckn:v2#/paths/~1{action}/post/requestBody/content/application~1json/schema")
    return _errors(v, doc) + pack_errors(doc)


def ack_errors(ack: dict, http_status: int) -> list[str]:
    schema = {200: "Ack", 400: "NackBadRequest", 401: "NackUnauthorized", 409: "AckNoCallback"}.get(http_status,
                                                                                                   "NackBadRequest")
    return _errors(_validator(f"urn:beckn:v2#/components/schemas/{schema}"), ack)


def catalog_errors(catalog: dict) -> list[str]:
    return _errors(_validator("urn:beckn:v2#/components/schemas/Catalog"), catalog) + pack_errors(catalog)


def _params(header: str) -> dict:
    assert header.startswith("Signature ")
    out = {}
    for part in header[len("Signature "):].split('",'):
        k, _, val = part.partition('="')
        out[k] = val.rstrip('"')
    return out


def _blake(data: bytes) -> str:
    return base64.b64encode(hashlib.blake2b(data, digest_size=64).digest()).decode()


def nacl_verify_request(body: bytes, authorization: str, public_key: bytes) -> dict:
    """BECKN-006 signature of a message, checked with PyNaCl; returns the header's parameters."""
    from nacl.signing import VerifyKey

    p = _params(authorization)
    assert p["headers"] == "(created) (expires) digest"
    text = f"(created): {p['created']}\n(expires): {p['expires']}\ndigest: BLAKE-512={_blake(body)}"
    VerifyKey(public_key).verify(text.encode(), base64.b64decode(p["signature"]))
    return p


def jcs(obj) -> bytes:
    """RFC 8785 for the plain JSON an Ack holds (strings and objects; no numbers)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def nacl_verify_ack(ack: dict, request_body: bytes, message_id: str, public_key: bytes) -> dict:
    """The Ack's counter-signature, recomputed from the spec's signing string and checked with PyNaCl."""
    from nacl.signing import VerifyKey

    p = _params(ack["signature"])
    assert p["headers"] == "(created) (expires) digest (request-digest) (message-id)"
    unsigned = {k: v for k, v in ack.items() if k != "signature"}
    text = (f"(created): {p['created']}\n(expires): {p['expires']}\ndigest: BLAKE-512={_blake(jcs(unsigned))}\n"
            f"(request-digest): BLAKE-512={_blake(request_body)}\n(message-id): {message_id}")
    VerifyKey(public_key).verify(text.encode(), base64.b64decode(p["signature"]))
    return p


def request_digest(body: bytes) -> str:
    return "BLAKE-512=" + _blake(body)


def nacl_verify_onix_ack(ack_bytes: bytes, signature_header: str, request_authorization: str, public_key: bytes):
    """The ``Signature`` response header as beckn-onix's signvalidator checks it: the exact Ack
    bytes' digest and the request's own signature value, checked with PyNaCl."""
    from nacl.signing import VerifyKey

    p = _params(signature_header)
    assert p["headers"] == "(created) (expires) digest request-signature"
    text = (f"(created): {p['created']}\n(expires): {p['expires']}\ndigest: BLAKE-512={_blake(ack_bytes)}\n"
            f"request-signature: {_params(request_authorization)['signature']}")
    VerifyKey(public_key).verify(text.encode(), base64.b64decode(p["signature"]))
    return p
