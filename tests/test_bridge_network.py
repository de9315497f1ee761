"""End to end through bridges: three mosquitto brokers bridged to each other (configuration
generated here), two ``urja bridge`` processes on two of them, the real runtime's charger on
the third with no inbound connectivity at all, and a buyer that speaks HTTP only. The buyer
discovers the charger, buys a charge with its requests spread over both bridges, follows it to
the end and verifies the receipt offline with the agency's key. Once on Beckn 1.1 and once on
Beckn 2.0 (where the 2.0 provider is in the tree)."""
from __future__ import annotations

import asyncio
import os
import sys
import time
from pathlib import Path

import pytest

from agent.bootstrap import open_runtime
from agent.clock import Clock
from protocols.mqtt.stack import ChargerNetwork, NetworkConfig
from protocols.signing.agency import load_agency
from protocols.signing.keys import create_keyring
from tests.bridge_support import http_buyer
from tests.mqtt_broker import MOSQUITTO, Broker
from tests.support import car_charge_flow, sim_config
from tests.test_federation import bridge_ready

pytestmark = [pytest.mark.skipif(MOSQUITTO is None, reason="mosquitto is not installed (apt install mosquitto)"),
              pytest.mark.slow]
ROOT = Path(__file__).resolve().parents[1]


class BridgeProcess:
    """``urja bridge run`` as its own process; ready when it prints where it serves."""

    def __init__(self, tmp_path: Path, bridge_id: str, broker_url: str, *, clock_skew_s: int = 30):
        self.bridge_id = bridge_id
        folder = tmp_path / bridge_id
        create_keyring(folder / "keys", subscriber_id=bridge_id, valid_days=2, now_s=time.time())
        self.config = folder / "bridge.toml"
        self.config.write_text(
            f'[bridge]\nid = "{bridge_id}"\npublic_url = "https://{bridge_id}.example"\nkey_dir = "keys"\n'
            f'listen = "127.0.0.1:0"\nclock_skew_s = {clock_skew_s}\n\n[network]\nbrokers = ["{broker_url}"]\n')
        self.proc = None
        self.url = None

    async def __aenter__(self):
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "tools.cli", "bridge", "run", "--config", str(self.config), cwd=ROOT, env=env,
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        self.output = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 30
        while self.url is None:  # log lines (the broker link's, say) may come before the address
            line = (await asyncio.wait_for(self.proc.stdout.readline(), max(0.1, deadline - loop.time()))).decode()
            assert line, "".join(self.output)  # the bridge ended before it served
            self.output.append(line)
            if " serving http://" in line:
                self.url = line.split(" serving ", 1)[1].split(" ", 1)[0]
        # keep reading, so a bridge that logs a lot never blocks on a full pipe
        self._drain = loop.create_task(self._read_rest())
        return self

    async def _read_rest(self):
        while line := await self.proc.stdout.readline():
            self.output.append(line.decode())

    async def __aexit__(self, *exc):
        self.proc.terminate()
        await asyncio.wait_for(self._drain, 10)
        await self.proc.wait()
        out = "".join(self.output)
        assert "Traceback" not in out, out


@pytest.mark.parametrize("profile", ["beckn-1.1", "beckn-2.0"])
async def test_a_buyer_on_http_only_buys_from_a_charger_with_no_inbound_connectivity(tmp_path, profile):
    charger_options, node_options = {}, {}
    if profile == "beckn-2.0":
        from protocols.beckn.policy import Policy

        charger_options["policy"] = Policy(profile=profile)
        node_options["profile"] = profile
    cfg = sim_config(tmp_path, auth="network")
    with Broker(tmp_path, name="hub") as hub, Broker(tmp_path, name="east", bridge_to=hub.port) as east, \
            Broker(tmp_path, name="west", bridge_to=hub.port) as west:
        await bridge_ready(hub.url, east.url)
        await bridge_ready(hub.url, west.url)
        async with BridgeProcess(tmp_path, "bridge-a", hub.url, clock_skew_s=600) as a, \
                BridgeProcess(tmp_path, "bridge-b", east.url, clock_skew_s=600) as b:
            async with open_runtime(cfg, clock=Clock(speed=20)) as rt:
                network = ChargerNetwork.for_runtime(rt, config=NetworkConfig(
                    brokers=(west.url,), bridges=("bridge-a", "bridge-b"), **charger_options))
                await network.start(connect_timeout_s=5)
                agency = load_agency(tmp_path / cfg.site_id / "agency")
                node = await http_buyer(agency, [a.url, b.url], lat=cfg.place.lat, lon=cfg.place.lon,
                                        clock=rt.now_s, **node_options)
                try:
                    await node.start()
                    found = []
                    for _ in range(20):  # until both bridges have heard the charger's retained presence
                        found = await node.discover(cfg.place.lat, cfg.place.lon + 0.01, 5, timeout_s=2, expect=1)
                        if found:
                            break
                    assert [c.subscriber_id for c in found] == [cfg.site_id]
                    flow = car_charge_flow(node, rt, cfg.site_id)
                    result = await asyncio.wait_for(flow.run(), 60)
                finally:
                    await node.close()
                    await network.close()
    check = result.receipt_check
    assert check is not None and check.subscriber_id == cfg.site_id and check.energy_wh >= 100
    assert result.paid_paise >= check.total_paise
    answers = node.transport.answers
    assert len(answers) >= 5 and all(status == 200 for _, status, _, _ in answers)
    if profile == "beckn-2.0":  # the bridges counter-signed every Ack as themselves
        assert all(doc["status"] == "ACK" and doc["signature"].startswith('Signature keyId="bridge-')
                   for _, _, doc, _ in answers)
    assert {url.rsplit("/", 1)[0] for *_, url in answers} == {a.url, b.url}  # both bridges served the buyer
    assert node.stats["duplicates"] == 0  # each callback came through exactly one bridge
    assert network.transport.broker.port == west.port
