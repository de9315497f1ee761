"""Test doubles for the Beckn tests: an honest small charger, keys, a buyer, the Beckn schema.

The charger here keeps the ``ChargerService`` contract (refusals with the documented codes,
listeners told of every change) without a board, so the provider logic can be tested fast and
deterministically; end-to-end tests run the real runtime instead.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import ClassVar

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from agent.config import Place, SiteConfig
from agent.service import ServiceError
from protocols.beckn import messages as m
from protocols.signing.beckn import Verifier, sign_body
from protocols.signing.keys import Ed25519Signer, PublicKeyRecord, StaticKeyLookup
from tests.memory_charger import MemoryCharger, socket_connector

NOW_S = 1_790_000_000.0
SPECS = Path(__file__).resolve().parents[1].parent / "shared" / "specs"
FLAT_TARIFF = {"country_code": "IN", "party_id": "URJ", "id": "flat-18", "currency": "INR",
               "elements": [{"price_components": [{"type": "ENERGY", "price": 18, "vat": 18, "step_size": 1}]},
                            {"price_components": [{"type": "FLAT", "price": 20, "vat": 18}],
                             "restrictions": {"reservation": "RESERVATION_EXPIRES"}}],
               "last_updated": "2026-01-01T00:00:00Z"}


def signer(subscriber_id: str, key_id: str, seed: int) -> Ed25519Signer:
    key = ed25519.Ed25519PrivateKey.from_private_bytes(bytes([seed]) * 32)
    return Ed25519Signer(subscriber_id=subscriber_id, key_id=key_id, private_key=key)


def record(s: Ed25519Signer) -> PublicKeyRecord:
    return PublicKeyRecord(s.subscriber_id, s.key_id, s.public_key_bytes, 0, 4_000_000_000)


class Clock:
    def __init__(self, t_s: float = NOW_S):
        self.t_s = t_s

    def __call__(self) -> float:
        return self.t_s


class FakeCharger(MemoryCharger):
    """The reference charger on the Beckn tests' site: ``connectors`` Type 2 sockets E1, E2...,
    exact pricing, listeners, receipts when given a key; calls recorded as (method, key argument)."""

    _LOGGED: ClassVar[dict] = {"start": ("start_session", 1), "stop": ("stop_session", 0), "reserve": ("reserve", 0),
                               "cancel": ("cancel_reservation", 0)}

    def __init__(self, *, clock: Clock, connectors: int = 1, tariff: dict | None = None, upi_vpa="owner@okaxis",
                 network: dict | None = None, receipt_signer: Ed25519Signer | None = None):
        site = SiteConfig(
            path="urja.toml", site_id="in.test.charger", name="Test site", operator="Asha", phone="+91-80-1",
            email="owner@example.in", upi_vpa=upi_vpa, extra={"network": network or {}},
            place=Place(lat=12.9352, lon=77.6245, address="80 Feet Road", city="Bengaluru", state="Karnataka",
                        postal_code="560095", country="IND", timezone="Asia/Kolkata"))
        super().__init__(site=site, clock=clock, tariff=tariff or FLAT_TARIFF, receipt_signer=receipt_signer,
                         connectors=[socket_connector(str(i), evse_uid=f"E{i}", now_s=clock(), max_power_w=7400)
                                     for i in range(1, connectors + 1)])

    def _log(self, action, *args):
        if action in self._LOGGED:
            name, key = self._LOGGED[action]
            self.calls.append((name, args[key]))


class Buyer:
    """A BAP that builds and signs requests for one transaction at a time."""

    def __init__(self, *, clock: Clock, subscriber_id="bap.test", seed=7, bpp_id="in.test.charger",
                 bpp_uri="http://charger.test/beckn", bap_uri="http://bap.test/beckn", domain=m.DEFAULT_DOMAIN):
        self.clock = clock
        self.signer = signer(subscriber_id, "b1", seed)
        self.bap_uri = bap_uri
        self.bpp_id, self.bpp_uri, self.domain = bpp_id, bpp_uri, domain
        self.n = 0
        self.transaction_id = self.new_id()

    def new_id(self) -> str:
        self.n += 1
        return f"00000000-0000-4000-8000-{self.signer.subscriber_id.encode().hex()[:4]}{self.n:08d}"

    def ctx(self, action: str, *, to_bpp: bool = True) -> dict:
        return m.new_context(action=action, bap_id=self.signer.subscriber_id, bap_uri=self.bap_uri,
                             transaction_id=self.transaction_id, message_id=self.new_id(),
                             timestamp_s=self.clock(), bpp_id=self.bpp_id if to_bpp else None,
                             bpp_uri=self.bpp_uri if to_bpp else None, domain=self.domain)

    def sign(self, doc: dict, *, signer_=None) -> tuple[bytes, dict]:
        body = m.encode(doc)
        now = int(self.clock())
        return body, {"Authorization": sign_body(body, signer_ or self.signer, created_s=now, expires_s=now + 60)}


def charger_signer() -> Ed25519Signer:
    return signer("in.test.charger", "c1", 3)


def verifier_for(clock: Clock, *signers: Ed25519Signer) -> Verifier:
    return Verifier(lookup=StaticKeyLookup([record(s) for s in signers]), clock=clock)


@functools.lru_cache(maxsize=1)
def _schema_doc():
    yaml = pytest.importorskip("yaml")
    path = SPECS / "beckn-1.1" / "transaction.yaml"
    if not path.exists():
        return None
    return yaml.safe_load(path.read_text())


@functools.lru_cache(maxsize=32)
def _validator(action: str):
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    doc = _schema_doc()
    uri = "urn:beckn:transaction"
    registry = Registry().with_resource(uri, Resource.from_contents(doc, default_specification=DRAFT202012))
    ref = {"$ref": f"{uri}#/paths/~1{action}/post/requestBody/content/application~1json/schema"}
    return Draft202012Validator(ref, registry=registry, format_checker=Draft202012Validator.FORMAT_CHECKER)


def schema_errors(doc: dict, action: str | None = None) -> list[str]:
    """Beckn transaction.yaml errors for ``doc`` (skips the test when the specs are absent)."""
    if _schema_doc() is None:
        pytest.skip(f"Beckn specs not found at {SPECS} (the CI clone has shared/ beside the repository)")
    action = action or doc["context"]["action"]
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in _validator(action).iter_errors(doc)]


async def test_fake_charger_refuses_like_the_contract():
    ch = FakeCharger(clock=Clock())
    await ch.reserve(reservation_id="r1", connector_id="1", expires_s=NOW_S + 60)
    with pytest.raises(ServiceError) as e:
        await ch.start_session(source="contract", reference="x", connector_id="1")
    assert e.value.code == ServiceError.OCCUPIED
    v = await ch.start_session(source="contract", reference="x", connector_id="1", reservation_id="r1")
    assert ch.connectors()[0].status == "CHARGING" and v.status == "PENDING"
