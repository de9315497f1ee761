"""``urja demo``: the network story ends with a receipt that verifies; the local story still runs;
a machine without mosquitto is told how to install it."""
from __future__ import annotations

import io
import json

import pytest

from tests.mqtt_broker import MOSQUITTO
from tools import broker as broker_mod
from tools.cli import main
from tools.netdemo import CHARGERS, run_network_demo


@pytest.mark.skipif(MOSQUITTO is None, reason="mosquitto is not installed (sudo apt-get install mosquitto)")
def test_network_demo_buys_the_cheapest_charge_and_the_receipt_verifies(tmp_path, capsys):
    screen = io.StringIO()
    assert run_network_demo(tmp_path, speed=60, energy_wh=1500, out=screen) == 0
    text = screen.getvalue()
    files = list((tmp_path / "receipts").glob("*.json"))
    assert len(files) == 1
    receipt = json.loads(files[0].read_text())
    assert receipt["energy_wh"] >= 1500
    # the receipt is from the charger the table said was cheapest
    chosen = next(s for s in CHARGERS if s.site_id == receipt["charger"]["subscriber_id"])
    assert f"cheapest for 1.5 kWh: {chosen.name}, Rs " in text
    assert "[simulated car] plugs in" in text and "upi://pay?" in text and "simulated time runs 60x" in text
    assert all(s.site_id in text for s in CHARGERS)
    # on Beckn 2.0: the chargers publish to the network's catalog service and the app asks it
    assert "published its signed catalog" in text and "The app asks the catalog service" in text
    assert "beckn-2.0" in text and "/dedi" in text
    # the command the demo prints checks the file again, offline
    command = next(line.split("urja ", 1)[1] for line in text.splitlines() if "urja verify" in line)
    capsys.readouterr()
    assert main(command.split()) == 0
    assert "VALID" in capsys.readouterr().out
    # the broker is gone and the temp dir holds its config and log
    assert (tmp_path / "broker" / "mosquitto.conf").exists()


def test_missing_mosquitto_says_how_to_install_it(tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(broker_mod, "find_mosquitto", lambda: None)
    assert run_network_demo(tmp_path, out=io.StringIO()) != 0
    assert "sudo apt-get install mosquitto" in capsys.readouterr().err


def test_local_demo_still_runs_one_charger_alone(tmp_path, capsys):
    assert main(["demo", "--local", "--dir", str(tmp_path), "--speed", "120", "--limit-wh", "200"]) == 0
    out = capsys.readouterr().out
    assert "verify; saved to" in out and not (tmp_path / "broker").exists()
    assert len(list(tmp_path.glob("rcpt-*.json"))) == 1
