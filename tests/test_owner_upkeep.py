"""The owner's page for the site's upkeep, over real HTTP against the real agent on a sim board.

The technician runs the factory self-test's safe subset through the facade (refused while a
session runs, the relay left open, nothing closed by the page); the owner sets the opening hours
and switches the network off, each checked as the file is and written keeping the comments; a
board with three socket outlets shows every connector, the site's limit and each one's share.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from agent.bootstrap import open_runtime
from agent.clock import Clock
from agent.config import load_config
from agent.service import ServiceError
from tests.owner_page_support import TECH_PASSWORD, client, log_in, page_site
from tests.support import wait_until

pytestmark = pytest.mark.runtime

BHARAT3_LOAD = '\n[load]\nlimit_kw = 3.3\nfairness = "equal_share"\nrotation_s = 60\n'


async def test_a_technician_runs_the_self_test_from_the_page_and_the_relay_is_left_open(tmp_path):
    cfg, _ = page_site(tmp_path)
    async with open_runtime(cfg, clock=Clock(speed=30)) as rt:
        url = rt.bindings["owner_page"].url
        commands_before = rt.relay_commands
        async with client() as http:
            csrf = await log_in(http, url, role="technician", secret=TECH_PASSWORD)
            async with http.post(url + "/faults/selftest", data={"csrf": csrf}) as r:
                html = await r.text()
                assert r.status == 200, html[:400]
        assert "Self-test passed" in html
        for check, word in (("meter answers", "Pass"), ("pilot reads A", "Pass"), ("relay closes", "Skipped"),
                            ("relay opens", "Pass")):
            row = html.split(f'data-check="1.{check}"', 1)[1].split("</tr>", 1)[0]
            assert f">{word}<" in row, (check, row)
        assert "serial" in html and "urja selftest" in html  # the meter's serial; how to switch the relay
        assert not rt.board.relay.closed and rt.relay_commands == commands_before  # the gate commanded nothing
        assert rt.latched_fault() is None and rt.connectors()[0].status == "AVAILABLE"


async def test_the_self_test_is_refused_while_a_car_charges_and_the_session_goes_on(tmp_path):
    cfg, _ = page_site(tmp_path)
    async with open_runtime(cfg, clock=Clock(speed=30)) as rt:
        url = rt.bindings["owner_page"].url
        car = rt.board.sim.car
        car.plug_in()
        car.request_power()
        view = await rt.present_token("DEMO-RFID-0001")
        await wait_until(lambda: rt.board.relay.closed, what="relay closed")
        async with client() as http:
            csrf = await log_in(http, url, role="technician", secret=TECH_PASSWORD)
            async with http.post(url + "/faults/selftest", data={"csrf": csrf}) as r:
                html = await r.text()
                assert r.status == 409 and "Self-test refused" in html and "in use" in html
        assert rt.board.relay.closed and rt.session(view.session_id).status == "ACTIVE"
        with pytest.raises(ServiceError) as info:
            await rt.run_selftest(by="test")
        assert info.value.code == ServiceError.OCCUPIED


async def test_only_a_technician_may_run_the_self_test(tmp_path):
    cfg, _ = page_site(tmp_path)
    async with open_runtime(cfg, clock=Clock(speed=30)) as rt:
        url = rt.bindings["owner_page"].url
        async with client() as http:
            csrf = await log_in(http, url)
            async with http.get(url + "/faults") as r:
                assert "Run the self-test" not in await r.text()
            async with http.post(url + "/faults/selftest", data={"csrf": csrf}) as r:
                assert r.status == 403
            async with http.post(url + "/faults/selftest", data={"csrf": "forged"}) as r:
                assert r.status == 403


async def test_the_owner_sets_opening_hours_and_switches_the_network_off_from_the_page(tmp_path):
    cfg, _ = page_site(tmp_path, extra='\n[network]\n# the site\'s broker\nbrokers = ["mqtt://127.0.0.1:9"]\n')
    config = Path(cfg.path)
    async with open_runtime(cfg, clock=Clock(speed=30)) as rt:
        url = rt.bindings["owner_page"].url
        async with client() as http:
            csrf = await log_in(http, url)
            async with http.get(url + "/settings") as r:
                html = await r.text()
                assert 'name="network_enabled" value="on" checked' in html and 'name="opening_hours" value=""' in html
            base = {"csrf": csrf, "name": "Ramesh Kirana Charging", "city": "Bengaluru", "upi_vpa": "ramesh@okaxis",
                    "auth": "allow_list", "allow_tokens": "DEMO-RFID-0001", "network_shown": "1",
                    "network_enabled": "on"}
            before = config.read_text()
            async with http.post(url + "/settings", data={**base, "opening_hours": "mon-fri 8-20"}) as r:
                html = await r.text()
                assert r.status == 400 and "site.opening_hours" in html and "not a time HH:MM" in html
            assert config.read_text() == before
            good = {**base, "opening_hours": "mon-sat 07:00-21:30"}
            del good["network_enabled"]  # the box unticked
            async with http.post(url + "/settings", data=good) as r:
                html = await r.text()
                assert r.status == 200 and "Saved" in html
                assert 'value="mon-sat 07:00-21:30"' in html and 'name="network_enabled" value="on">' in html
    text = config.read_text()
    assert "# the site's broker" in text and text.startswith("# Written by urja's provisioning")
    saved = load_config(config)
    assert saved.opening_hours.text == "mon-sat 07:00-21:30" and not saved.bindings["network"].enabled
    async with open_runtime(saved, clock=Clock(speed=30)) as rt:  # after the restart: no network
        assert "network" not in rt.bindings and "owner_page" in rt.bindings


async def test_a_site_without_a_network_table_is_shown_no_switch(tmp_path):
    cfg, _ = page_site(tmp_path)
    async with open_runtime(cfg, clock=Clock(speed=30)) as rt:
        url = rt.bindings["owner_page"].url
        async with client() as http:
            await log_in(http, url)
            async with http.get(url + "/settings") as r:
                assert "This charger has no network set up." in await r.text()
    assert "[network]" not in Path(cfg.path).read_text()


async def test_the_status_page_shows_every_connector_the_site_limit_and_each_share(tmp_path):
    cfg, _ = page_site(tmp_path, board="sim-bharat3", extra=BHARAT3_LOAD)
    async with open_runtime(cfg, clock=Clock(speed=30)) as site:
        url = site.bindings["owner_page"].url
        await wait_until(lambda: (site.load_status() or {}).get("shares_a"), what="the first load decision")
        await site.present_token("DEMO-RFID-0001", connector_id="2")
        await wait_until(lambda: (site.load_status()["shares_a"].get("2") or 0) >= 6, what="connector 2 has a share")
        async with client() as http:
            await log_in(http, url)
            async with http.get(url + "/api/status") as r:
                status = await r.json()
            async with http.get(url + "/") as r:
                html = await r.text()
            async with http.get(url + "/faults") as r:
                faults = await r.text()
    assert [c["id"] for c in status["connectors"]] == ["1", "2", "3"]
    assert all(c["share"].endswith(" A") for c in status["connectors"])
    assert float(status["connectors"][1]["share"].split()[0]) >= 6
    assert status["load"]["limit"].startswith("3.3 kW (") and status["load"]["house"].endswith(" A")
    for cid in ("1", "2", "3"):
        assert f'data-connector="{cid}"' in html and f'data-live="{cid}.share"' in html
    assert 'data-live="load.limit">3.3 kW' in html
    for cid in ("1", "2", "3"):  # each connector's own meter and contactor on the health list
        assert f"connector {cid}: " in faults
