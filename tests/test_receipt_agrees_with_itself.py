"""A receipt's energy, its priced energy and its cost lines come from the same readings, and the
verifier checks that a receipt agrees with itself."""
from __future__ import annotations

import json

import pytest
from test_receipt import T0, make_receipt, world  # noqa: F401  (fixture)
from test_verify_cmd import net, receipt_for, run  # noqa: F401  (fixture)

from agent.core.tariff import LivePricer, Tariff
from protocols.signing._codec import format_time
from protocols.signing.detached import sign_object
from protocols.signing.errors import SignatureError
from protocols.signing.keys import load_keyring
from protocols.signing.receipt import verify_receipt

PER_KWH = Tariff({"currency": "INR", "elements": [{"price_components": [
    {"type": "ENERGY", "price": 20, "vat": 0, "step_size": 1},
    {"type": "PARKING_TIME", "price": 60, "vat": 0, "step_size": 1}]}]})


def test_a_session_closed_below_a_misread_is_priced_for_the_energy_between_its_start_and_stop():
    live = LivePricer(PER_KWH)
    live.reading(T0, 1000, charging=True)
    live.reading(T0 + 60, 1030, charging=False)
    live.reading(T0 + 120, 1034, charging=False)  # parked: one reading 4 Wh high
    live.close(T0 + 180, 1030)
    cost = live.breakdown()
    assert cost.energy_wh == sum(p.energy_wh for p in live.periods()) == 30
    assert cost.energy_excl_u == 30 * 200  # 30 Wh at Rs 20/kWh
    assert cost.parking_s == 120


def test_a_session_closed_at_or_above_its_last_reading_is_priced_as_before():
    live = LivePricer(PER_KWH)
    live.reading(T0, 1000, charging=True)
    live.reading(T0 + 60, 1030, charging=True)
    same = LivePricer(PER_KWH)
    same.reading(T0, 1000, charging=True)
    same.reading(T0 + 60, 1030, charging=True)
    live.close(T0 + 90, 1031)
    same.reading(T0 + 90, 1031, charging=False)
    assert live.breakdown() == same.breakdown() and live.periods()[-1].energy_wh == same.periods()[-1].energy_wh


def periods_doc(energies, start_s=T0 + 3600):
    return [{"start": format_time(start_s + 60 * i), "energy_wh": wh, "time_s": 60, "parking_s": 0}
            for i, wh in enumerate(energies)]


def test_a_receipt_states_the_periods_it_priced_and_verifies(world):  # noqa: F811
    agency, _, _ = world
    receipt = make_receipt(world, charging_periods=periods_doc([5000, 2500]))
    check = verify_receipt(json.loads(json.dumps(receipt)), agency_public_key=agency.public_key)
    assert check.energy_wh == 7500 and receipt["charging_periods"][1]["energy_wh"] == 2500


def test_a_receipt_is_not_built_when_its_priced_energy_differs_from_its_energy(world):  # noqa: F811
    with pytest.raises(SignatureError, match="priced"):
        make_receipt(world, charging_periods=periods_doc([5000, 2504]))


def test_a_signed_receipt_whose_priced_energy_differs_from_its_energy_is_invalid(world):  # noqa: F811
    agency, keyring, _ = world
    receipt = make_receipt(world, charging_periods=periods_doc([5000, 2500]))
    forged = {k: v for k, v in receipt.items() if k != "signature"}
    forged["charging_periods"] = periods_doc([5000, 2504])
    forged = sign_object(forged, keyring.signer(T0))
    with pytest.raises(SignatureError, match="priced"):
        verify_receipt(forged, agency_public_key=agency.public_key)


def test_urja_verify_refuses_a_receipt_priced_for_other_energy_than_it_states(net, capsys):  # noqa: F811
    keyring = load_keyring(net / "keys")
    receipt = {k: v for k, v in receipt_for(net).items() if k != "signature"}
    wh = receipt["energy_wh"]
    receipt["charging_periods"] = periods_doc([wh + 4], start_s=T0 + 60)
    path = net / "receipt.json"
    path.write_text(json.dumps(sign_object(receipt, keyring.signer(T0))))
    assert run(["verify", path, "--agency-key", net / "agency" / "agency.pub"]) == 1
    err = capsys.readouterr().err
    assert "INVALID" in err and "energy priced (2004 Wh" in err
    receipt["charging_periods"] = periods_doc([wh], start_s=T0 + 60)
    path.write_text(json.dumps(sign_object(receipt, keyring.signer(T0))))
    assert run(["verify", path, "--agency-key", net / "agency" / "agency.pub"]) == 0
