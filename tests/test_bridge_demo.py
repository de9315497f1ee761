"""``urja demo --bridge`` tells its whole story and exits 0 only with a verified receipt."""
from __future__ import annotations

import io
import json

import pytest

from protocols.signing.agency import read_agency_public_key
from protocols.signing.receipt import verify_receipt
from tests.mqtt_broker import MOSQUITTO
from tools.bridgedemo import run_bridge_demo

pytestmark = [pytest.mark.skipif(MOSQUITTO is None, reason="mosquitto is not installed (apt install mosquitto)"),
              pytest.mark.broker, pytest.mark.runtime, pytest.mark.slow]


def test_the_bridge_demo_buys_over_http_only_and_verifies_the_receipt(tmp_path):
    out = io.StringIO()
    assert run_bridge_demo(tmp_path, speed=60, energy_wh=1000, out=out) == 0, out.getvalue()[-2000:]
    text = out.getvalue()
    receipts = list((tmp_path / "receipts").glob("*.json"))
    assert len(receipts) == 1
    check = verify_receipt(json.loads(receipts[0].read_text()),
                           agency_public_key=read_agency_public_key(tmp_path / "agency" / "agency.pub"),
                           require_ocmf=True)
    assert check.energy_wh >= 1000
    assert "via bridge-a" in text and "via bridge-b" in text  # both bridges served the one buyer
    assert "refused by the bridge (409, 30001)" in text and "withdrawn" in text
