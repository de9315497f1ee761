"""``urja discover`` and ``urja charge`` as a user runs them, against the real runtime over MQTT."""
from __future__ import annotations

import asyncio
import json

import pytest

from agent.bootstrap import open_runtime
from agent.clock import Clock
from protocols.beckn.policy import Policy
from protocols.mqtt.stack import ChargerNetwork, NetworkConfig
from tests.mqtt_broker import MOSQUITTO, Broker
from tests.support import sim_config
from tools import charge_cmd, discover_cmd
from tools.cli import build_parser

pytestmark = pytest.mark.skipif(MOSQUITTO is None, reason="mosquitto is not installed (apt install mosquitto)")


def test_bad_arguments_are_refused_with_a_reason(capsys):
    args = build_parser().parse_args(["discover", "--near", "north", "--broker", "mqtt://127.0.0.1:1",
                                      "--agency-key", "x"])
    assert args.func(args) == 2
    assert "--near 'north' must be LAT,LON" in capsys.readouterr().err
    args = build_parser().parse_args(["discover", "--near", "12.9,77.6", "--broker", "mqtt://127.0.0.1:1"])
    assert args.func(args) == 2
    assert "agency_public_key" in capsys.readouterr().err


def test_unreadable_certificate_is_refused_with_a_reason(tmp_path, capsys):
    """A missing or damaged --certificate once ended in a traceback instead of a reason."""
    import base64
    import time

    from protocols.signing.keys import create_keyring

    create_keyring(tmp_path / "keys", subscriber_id="app.example.in", valid_days=1, now_s=time.time())
    (tmp_path / "broken.json").write_text("{not json", encoding="utf-8")
    for cert, why in ((tmp_path / "missing.json", "cannot be read"), (tmp_path / "broken.json", "not valid JSON")):
        args = build_parser().parse_args(["charge", "in.example.site", "--kwh", "1", "--broker", "mqtt://127.0.0.1:1",
                                          "--agency-key", base64.b64encode(bytes(32)).decode(),
                                          "--key-dir", str(tmp_path / "keys"), "--certificate", str(cert)])
        assert args.func(args) == 2
        err = capsys.readouterr().err
        assert str(cert) in err and why in err, err


@pytest.mark.parametrize("profile", ["beckn-2.0", "beckn-1.1"])
async def test_discover_and_charge_commands(tmp_path, profile):
    cfg = sim_config(tmp_path, auth="network")
    agency_dir = tmp_path / cfg.site_id / "agency"
    with Broker(tmp_path) as broker:
        async with open_runtime(cfg, clock=Clock(speed=20)) as rt:
            network = ChargerNetwork.for_runtime(rt, config=NetworkConfig(brokers=(broker.url,),
                                                                          policy=Policy(profile=profile)))
            await network.start(connect_timeout_s=5)
            car = rt.board.sim.car

            def on_event(kind, obj):
                if kind == "connector" and obj.status == "RESERVED" and not car.plugged:
                    car.plug_in()
                    car.request_power()
                if kind == "session" and rt.core.stop_reason == "limit_energy" and car.plugged:
                    car.unplug()
            rt.add_listener(on_event)
            try:
                near = f"{cfg.place.lat + 0.005},{cfg.place.lon}"
                common = ["--broker", broker.url, "--agency-key", str(agency_dir / "agency.pub"), "--profile", profile]
                quick = ["--timeout", "1.5"]  # a live search collects answers for the whole timeout
                # no node certificate: the retained, signed catalogs still tell who is near
                args = build_parser().parse_args(["discover", "--near", near, "--radius-km", "3", "--json", *quick, *common])
                found = await discover_cmd.run(args, clock=rt.now_s)
                assert [c.subscriber_id for c in found] == [cfg.site_id]
                # a pilot network's agency certifies the node: a live search
                args = build_parser().parse_args(["discover", "--near", near, "--radius-km", "3",
                                                  "--agency-dir", str(agency_dir), *quick, *common])
                found = await discover_cmd.run(args, clock=rt.now_s)
                assert [c.subscriber_id for c in found] == [cfg.site_id]
                assert found[0].connectors[0].available
                args = build_parser().parse_args(["charge", cfg.site_id, "--kwh", "0.15", "--json", "--poll", "0.3",
                                                  "--agency-dir", str(agency_dir), *common])
                result = await asyncio.wait_for(charge_cmd.run(args, clock=rt.now_s), 60)
                # once the agency revokes the charger, a node given the list no longer trusts it
                from protocols.signing.agency import load_agency, revoke

                doc, _ = revoke(load_agency(agency_dir), cfg.site_id, now_s=rt.now_s())
                (tmp_path / "revoked.json").write_text(json.dumps(doc))
                args = build_parser().parse_args(["discover", "--near", near, "--radius-km", "3", "--revocations",
                                                  str(tmp_path / "revoked.json"), *quick, *common])
                assert await discover_cmd.run(args, clock=rt.now_s) == []
            finally:
                rt.remove_listener(on_event)
                await network.close()
    out = result.as_dict()
    json.dumps(out)
    assert out["receipt_verified"]["energy_wh"] >= 150
    assert out["receipt_verified"]["subscriber_id"] == cfg.site_id
    assert out["paid_paise"] > 0 and out["payment_ref"].startswith("UPI-")
