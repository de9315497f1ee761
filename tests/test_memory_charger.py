"""The reference in-memory charger keeps the facade's contract, so protocol tests can trust it."""
from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import ed25519

from agent.config import Place, SiteConfig
from agent.core import offers
from agent.service import ServiceError
from protocols.signing.detached import verify_object
from protocols.signing.keys import Ed25519Signer
from tests.memory_charger import MemoryCharger, socket_connector

T0_S = 1_790_000_000.0
TARIFF = {"country_code": "IN", "party_id": "URJ", "id": "flat-18", "currency": "INR",
          "elements": [{"price_components": [{"type": "ENERGY", "price": 18, "vat": 18, "step_size": 1}]}],
          "last_updated": "2026-01-01T00:00:00Z"}
SITE = SiteConfig(site_id="in.test.memory", name="Memory", operator="Asha", phone="", email="", extra={},
                  place=Place(lat=12.9352, lon=77.6245, address="80 Feet Road", city="Bengaluru",
                              state="Karnataka", postal_code="560095", country="IND", timezone="Asia/Kolkata"))


class Clock:
    def __init__(self):
        self.t_s = T0_S

    def __call__(self) -> float:
        return self.t_s


def _signer() -> Ed25519Signer:
    key = ed25519.Ed25519PrivateKey.from_private_bytes(bytes([11]) * 32)
    return Ed25519Signer(subscriber_id=SITE.site_id, key_id="k1", private_key=key)


def charger(**options) -> tuple[MemoryCharger, Clock, list]:
    clock = Clock()
    ch = MemoryCharger(site=SITE, clock=clock, tariff=TARIFF, **options)
    heard: list = []
    ch.add_listener(lambda kind, obj: heard.append((kind, obj)))
    return ch, clock, heard


async def test_a_session_is_pending_until_the_car_draws_and_is_priced_by_the_tariff():
    ch, clock, heard = charger()
    view = await ch.start_session(source="contract", reference="o-1", energy_limit_wh=4000)
    assert (view.session_id, view.status, view.state) == ("S1", "PENDING", "authorized")
    assert view.evse_uid == "in.test.memory-1"
    assert ch.connectors()[0].status == "CHARGING" and ch.connectors()[0].session_id == "S1"
    assert [k for k, _ in heard] == ["session", "connector"]
    clock.t_s += 60
    ch.charge("S1", 1500)
    assert view.status == "ACTIVE" and view.energy_wh == 1500 and view.last_updated_s == T0_S + 60
    assert view.cost.total_paise == offers.quote_energy(TARIFF, 1500, int(T0_S), 7000, 19800).total_paise == 3186
    done = await ch.stop_session("S1", reason="local")
    assert (done.status, done.stop_reason, done.stop_wh - done.start_wh) == ("COMPLETED", "local", 1500)
    assert ch.connectors()[0].status == "AVAILABLE" and ch.connectors()[0].session_id is None
    assert ch.receipt("S1") is None, "no receipt key, no receipt"
    heard.clear()
    assert await ch.stop_session("S1") is done and heard == [], "a finished session stops once"


async def test_charges_continue_where_the_last_ended():
    ch, _, _ = charger()
    await ch.start_session(source="free_vend", reference="f")
    ch.charge("S1", 1000, 600)
    ch.charge("S1", 500, 300, notify=False)
    view = ch.session("S1")
    assert view.energy_wh == 1500 and sum(p.energy_wh for p in view.periods) == 1500
    assert view.periods[0].start_s == int(T0_S) and sum(p.time_s for p in view.periods) == 900


async def test_refusals_carry_the_documented_codes_and_change_nothing():
    ch, _, _ = charger(connectors=[socket_connector("1", evse_uid="E1", now_s=T0_S),
                                   socket_connector("2", evse_uid="E2", now_s=T0_S)])
    await ch.reserve(reservation_id="r1", connector_id="1", expires_s=T0_S + 600)
    before = ch.state()
    cases = [(ch.start_session(source="contract", reference="x", connector_id="1"), ServiceError.OCCUPIED),
             (ch.start_session(source="contract", reference="x", connector_id="9"), ServiceError.UNKNOWN_CONNECTOR),
             (ch.reserve(reservation_id="r2", connector_id="1", expires_s=T0_S), ServiceError.OCCUPIED),
             (ch.stop_session("S9"), ServiceError.UNKNOWN_SESSION),
             (ch.cancel_reservation("r9"), ServiceError.UNKNOWN_RESERVATION),
             (ch.unlock("1"), ServiceError.NOT_SUPPORTED)]
    for action, code in cases:
        with pytest.raises(ServiceError) as e:
            await action
        assert e.value.code == code
    assert ch.state() == before
    ch.set_status("OUTOFORDER", connector_id="2")
    with pytest.raises(ServiceError) as e:
        await ch.start_session(source="contract", reference="x", connector_id="2")
    assert e.value.code == ServiceError.INOPERATIVE
    ch.refuse_with = ServiceError.REJECTED
    with pytest.raises(ServiceError) as e:
        await ch.start_session(source="contract", reference="y", reservation_id="r1")
    assert e.value.code == ServiceError.REJECTED
    ch.refuse_with = None
    view = await ch.start_session(source="contract", reference="y", connector_id="1", reservation_id="r1")
    assert view.connector_id == "1" and ch.state()[2] == ()
    assert [c[0] for c in ch.calls] == ["reserve", "start", "start", "reserve", "stop", "cancel", "unlock",
                                        "start", "start", "start"]


async def test_reservations_hold_a_connector_until_used_or_cancelled():
    ch, clock, heard = charger()
    held = await ch.reserve(reservation_id="r1", connector_id=None, expires_s=T0_S + 60, token="T")
    assert held.status == "RESERVED" and held.reservation_id == "r1"
    clock.t_s += 3600  # a lapsed hold is the caller's to cancel
    await ch.cancel_reservation("r1")
    assert ch.connectors()[0].status == "AVAILABLE" and ch.connectors()[0].reservation_id is None
    assert [obj.status for kind, obj in heard if kind == "connector"] == ["RESERVED", "AVAILABLE"]


async def test_receipts_are_signed_and_state_paid_and_refund():
    ch, _, heard = charger(receipt_signer=_signer())
    await ch.start_session(source="contract", reference="o-7", paid_paise=10000, acceptance_digest="BLAKE-512=x")
    ch.charge("S1", 1500)
    await ch.stop_session("S1")
    receipt = ch.receipt("S1")
    verify_object(receipt, _signer().public_key_bytes)
    assert (receipt["order_id"], receipt["paid_paise"], receipt["refund_due_paise"]) == ("o-7", 10000, 10000 - 3186)
    assert receipt["cost_paise"]["total"] == 3186 == sum(v for k, v in receipt["cost_paise"].items() if k != "total")
    assert receipt["stop"]["meter_wh"] - receipt["start"]["meter_wh"] == receipt["energy_wh"] == 1500
    assert heard[-1] == ("receipt", ("S1", receipt))


class Authority:
    def __init__(self, answers):
        self.answers, self.bound = answers, []

    async def decide_token(self, uid, *, token_type, evse_uid):
        allowed = self.answers.get(uid)
        return None if allowed is None else type("Decision", (), {"allowed": allowed, "reason": "eMSP"})()

    def bind_session(self, reference, decision):
        self.bound.append(reference)


async def test_tokens_go_to_the_allow_list_first_then_each_authority():
    ch, _, _ = charger(allow_list={"CARD-L"})
    emsp = Authority({"CARD-E": True, "CARD-X": False})
    ch.add_token_authority(emsp)
    local = await ch.present_token("CARD-L")
    assert (local.source, local.reference) == ("allow_list", "token-CARD-L")
    await ch.stop_session(local.session_id)
    roaming = await ch.present_token("CARD-E")
    assert roaming.source == "ocpi" and emsp.bound == [roaming.reference]
    await ch.stop_session(roaming.session_id)
    for uid in ("CARD-X", "NOBODY"):
        with pytest.raises(ServiceError) as e:
            await ch.present_token(uid)
        assert e.value.code == ServiceError.REJECTED
    ch.remove_token_authority(emsp)
    with pytest.raises(ServiceError):
        await ch.present_token("CARD-E")


async def test_sessions_are_listed_by_last_update_in_the_window_with_injected_ids():
    ch, clock, _ = charger(new_session_id=lambda n: f"sess-{n:03d}")
    for _ in range(3):
        view = await ch.start_session(source="free_vend", reference="f")
        clock.t_s += 10
        await ch.stop_session(view.session_id)
    assert [s.session_id for s in ch.sessions()] == ["sess-001", "sess-002", "sess-003"]
    assert [s.session_id for s in ch.sessions(since_s=T0_S + 20, until_s=T0_S + 30)] == ["sess-002"]
