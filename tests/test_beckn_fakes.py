"""Test doubles for the Beckn tests: an honest small charger, keys, a buyer, the Beckn schema.

The charger here keeps the ``ChargerService`` contract (refusals with the documented codes,
listeners told of every change) without a board, so the provider logic can be tested fast and
deterministically; end-to-end tests run the real runtime instead.
"""
from __future__ import annotations

import copy
import functools
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from agent.core import offers
from agent.config import Place, SiteConfig
from agent.service import ChargerService, ConnectorView, ServiceError, SessionView
from protocols.beckn import messages as m
from protocols.signing.beckn import Verifier, sign_body
from protocols.signing.detached import sign_object
from protocols.signing.keys import Ed25519Signer, PublicKeyRecord, StaticKeyLookup

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


class FakeCharger(ChargerService):
    """One or more connectors, exact pricing by ``agent.core.offers``, listeners, receipts."""

    def __init__(self, *, clock: Clock, connectors: int = 1, tariff: dict | None = None, upi_vpa="owner@okaxis",
                 network: dict | None = None, receipt_signer: Ed25519Signer | None = None):
        self.clock = clock
        self._site = SiteConfig(
            path="urja.toml", site_id="in.test.charger", name="Test site", operator="Asha", phone="+91-80-1",
            email="owner@example.in", upi_vpa=upi_vpa, extra={"network": network or {}},
            place=Place(lat=12.9352, lon=77.6245, address="80 Feet Road", city="Bengaluru", state="Karnataka",
                        postal_code="560095", country="IND", timezone="Asia/Kolkata"))
        self._tariff = copy.deepcopy(tariff or FLAT_TARIFF)
        self._conns = {str(i): ConnectorView(connector_id=str(i), evse_uid=f"E{i}", standard="IEC_62196_T2",
                                             format="SOCKET", power_type="AC_1_PHASE", max_voltage_v=230,
                                             max_current_a=32, max_power_w=7400, phases=1, status="AVAILABLE",
                                             last_updated_s=clock())
                       for i in range(1, connectors + 1)}
        self._sessions: dict[str, SessionView] = {}
        self._reservations: dict[str, tuple[str, float]] = {}
        self._listeners: list = []
        self._receipts: dict[str, dict] = {}
        self.receipt_signer = receipt_signer
        self.calls: list = []
        self.start_kwargs: dict = {}

    @property
    def site(self):
        return self._site

    def connectors(self):
        return [ConnectorView(**c.as_dict()) for c in self._conns.values()]

    def tariff(self):
        return copy.deepcopy(self._tariff)

    def now_s(self):
        return self.clock()

    def _notify(self, kind, obj):
        for fn in list(self._listeners):
            fn(kind, obj)

    def _set_status(self, cid, status):
        c = self._conns[cid]
        if c.status != status:
            c.status = status
            self._notify("connector", ConnectorView(**c.as_dict()))

    async def start_session(self, *, source, reference, token=None, connector_id=None, energy_limit_wh=None,
                            money_limit_minor=None, time_limit_s=None, departure_s=None, reservation_id=None,
                            paid_minor=None, acceptance_digest=None):
        self.calls.append(("start_session", reference))
        self.start_kwargs = dict(energy_limit_wh=energy_limit_wh, money_limit_minor=money_limit_minor,
                                 time_limit_s=time_limit_s, paid_minor=paid_minor,
                                 acceptance_digest=acceptance_digest, reservation_id=reservation_id)
        cid = connector_id or next(iter(self._conns))
        if cid not in self._conns:
            raise ServiceError(f"unknown connector {cid}", code=ServiceError.UNKNOWN_CONNECTOR)
        c = self._conns[cid]
        if c.status in ("INOPERATIVE", "OUTOFORDER"):
            raise ServiceError("faulted", code=ServiceError.INOPERATIVE)
        held = [r for r, (rc, _) in self._reservations.items() if rc == cid]
        if c.status == "CHARGING" or (held and reservation_id not in held):
            raise ServiceError("busy", code=ServiceError.OCCUPIED)
        self._reservations.pop(reservation_id, None)
        sid = f"S{len(self._sessions) + 1}"
        view = SessionView(session_id=sid, connector_id=cid, source=source, reference=reference, token=token,
                           status="PENDING", state="authorized", start_s=self.clock(), energy_wh=0, power_w=0,
                           limits={"energy_limit_wh": energy_limit_wh, "money_limit_minor": money_limit_minor},
                           currency="INR", tariff_id=self._tariff["id"], last_updated_s=self.clock())
        self._sessions[sid] = view
        self._set_status(cid, "CHARGING")
        self._notify("session", view)
        return view

    def charge(self, sid: str, energy_wh: int, power_w: int = 7000):
        """The car draws power: energy so far, live cost, a notification."""
        v = self._sessions[sid]
        v.energy_wh, v.power_w, v.status, v.state = energy_wh, power_w, "ACTIVE", "charging"
        v.cost = offers.quote_energy(self._tariff, energy_wh, int(v.start_s), power_w, 19800)
        v.last_updated_s = self.clock()
        self._notify("session", v)

    async def stop_session(self, session_id, *, reason="remote"):
        self.calls.append(("stop_session", session_id))
        v = self._sessions.get(session_id)
        if v is None:
            raise ServiceError(f"unknown session {session_id}", code=ServiceError.UNKNOWN_SESSION)
        v.status, v.state, v.stop_reason, v.power_w = "COMPLETED", "finished", reason, 0
        v.stop_s = self.clock()
        self._set_status(v.connector_id, "AVAILABLE")
        self._notify("session", v)
        if self.receipt_signer is not None:
            paid = self.start_kwargs.get("paid_minor") or 0
            total = v.cost.paid_minor if v.cost else 0
            receipt = sign_object({"kind": "urja.receipt", "receipt_id": f"R-{session_id}",
                                   "order_id": v.reference, "energy_wh": v.energy_wh, "paid_paise": paid,
                                   "refund_due_paise": max(0, paid - total)}, self.receipt_signer)
            self._receipts[session_id] = receipt
            self._notify("receipt", (session_id, receipt))
        return v

    async def reserve(self, *, reservation_id, connector_id, expires_s, token=None):
        self.calls.append(("reserve", reservation_id))
        cid = connector_id or next(iter(self._conns))
        if cid not in self._conns:
            raise ServiceError(f"unknown connector {cid}", code=ServiceError.UNKNOWN_CONNECTOR)
        if any(rc == cid for rc, _ in self._reservations.values()) or self._conns[cid].status == "CHARGING":
            raise ServiceError("occupied", code=ServiceError.OCCUPIED)
        if self._conns[cid].status in ("INOPERATIVE", "OUTOFORDER"):
            raise ServiceError("faulted", code=ServiceError.INOPERATIVE)
        self._reservations[reservation_id] = (cid, expires_s)
        self._set_status(cid, "RESERVED")
        return self._conns[cid]

    async def cancel_reservation(self, reservation_id):
        self.calls.append(("cancel_reservation", reservation_id))
        if reservation_id not in self._reservations:
            raise ServiceError("unknown reservation", code=ServiceError.UNKNOWN_RESERVATION)
        cid, _ = self._reservations.pop(reservation_id)
        self._set_status(cid, "AVAILABLE")

    async def unlock(self, connector_id):
        raise ServiceError("no lock", code=ServiceError.NOT_SUPPORTED)

    def session(self, session_id):
        return self._sessions.get(session_id)

    def sessions(self, *, since_s=None, until_s=None):
        return list(self._sessions.values())

    def receipt(self, session_id):
        return self._receipts.get(session_id)

    def add_listener(self, listener):
        self._listeners.append(listener)

    def remove_listener(self, listener):
        if listener in self._listeners:
            self._listeners.remove(listener)

    def state(self) -> tuple:
        """Everything a refused message must leave untouched."""
        return (tuple((c.connector_id, c.status) for c in self._conns.values()),
                tuple(sorted((k, v.status) for k, v in self._sessions.items())),
                tuple(sorted(self._reservations)))


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
