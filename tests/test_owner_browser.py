"""The owner's page in a real browser on a phone-sized screen, against the real agent on the sim board.

Debian's headless Chromium driven by Playwright (never a downloaded browser), a real mosquitto
broker for the network catalog, the runtime with its simulated meter, relay and car. The story
is the site owner's: first visit with the setup code, a live charge watched without reloading,
a price change that the network catalog shows, the earnings as CSV, and the technician's
reset of a welded contactor, which the gate refuses until the contactor is repaired.

Screenshots of every page at 360 px are saved in ``tests/screenshots/`` (``URJA_SCREENSHOTS``
to put them elsewhere); git ignores the folder.
"""
from __future__ import annotations

import asyncio
import csv
import io
import json
import os
from pathlib import Path

import pytest

from agent.bootstrap import open_runtime
from agent.clock import Clock
from agent.config import load_config
from agent.tariff_file import tariff_digest
from protocols.mqtt import framing
from protocols.mqtt.transport import MqttSettings, MqttTransport
from tests.mqtt_broker import MOSQUITTO, Broker
from tests.owner_page_support import TECH_PASSWORD, page_site
from tests.support import wait_until

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SHOTS = Path(os.environ.get("URJA_SCREENSHOTS") or Path(__file__).with_name("screenshots"))
PHONE = {"width": 360, "height": 780}
WAIT_MS = 15_000

pytestmark = [pytest.mark.browser, pytest.mark.runtime, pytest.mark.broker]


@pytest.fixture
def broker(tmp_path):
    if MOSQUITTO is None:
        pytest.skip("mosquitto is not installed (apt install mosquitto)")
    with Broker(tmp_path / "broker") as b:
        yield b


@pytest.fixture
async def chromium():
    if not CHROMIUM.exists():
        pytest.skip("Debian's chromium is not installed (apt install chromium)")
    from playwright.async_api import async_playwright

    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=str(CHROMIUM), args=FLAGS, headless=True)
        try:
            yield browser
        finally:
            await browser.close()


class CatalogWatch:
    """Every retained catalog the charger publishes on the broker, decoded."""

    def __init__(self, url: str):
        self.bodies: list[dict] = []
        self.changed = asyncio.Event()
        self.transport = MqttTransport(MqttSettings(brokers=(url,), client_id="catalog-watch", backoff_initial_s=0.05,
                                                    backoff_max_s=0.3), on_message=self._on)

    def _on(self, topic, payload, retained):
        self.bodies.append(json.loads(framing.unframe(payload).body))
        self.changed.set()

    async def until(self, predicate, timeout_s: float = 20.0):
        async with asyncio.timeout(timeout_s):
            while not any(predicate(b) for b in self.bodies):
                self.changed.clear()
                await self.changed.wait()


def energy_prices(node) -> list[str]:
    """The per-kWh prices (GST included) a catalog states, wherever in it they are."""
    found = []
    if isinstance(node, dict):
        price = node.get("price")
        if isinstance(price, dict) and price.get("currency") == "INR/kWh":
            found.append(price.get("value"))
        # Beckn 2.0 (what sites are provisioned with): a PriceSpecification per kWh
        if (node.get("@type") == "PriceSpecification" and node.get("currency") == "INR"
                and (node.get("applicableQuantity") or {}).get("unitCode") == "KWH"):
            found.append(f"{node.get('value'):.2f}")
        for value in node.values():
            found += energy_prices(value)
    elif isinstance(node, list):
        for value in node:
            found += energy_prices(value)
    return found


async def shot(page, name: str) -> None:
    """Save the page at phone size; nothing on it may be wider than the phone."""
    assert await page.evaluate("() => document.documentElement.scrollWidth") <= PHONE["width"], name
    SHOTS.mkdir(parents=True, exist_ok=True)
    await page.screenshot(path=str(SHOTS / f"{name}.png"), full_page=True)


async def test_an_owner_runs_the_site_from_a_phone_sized_browser(tmp_path, broker, chromium):  # noqa: PLR0915
    cfg, code = page_site(tmp_path, broker_url=broker.url, passwords=False)
    tariff_file = Path(cfg.tariff_file)
    watch = CatalogWatch(broker.url)
    watch.transport.subscribe("urja/v1/catalog/#")
    async with watch.transport, open_runtime(cfg, clock=Clock(speed=30)) as rt:
        url = rt.bindings["owner_page"].url
        context = await chromium.new_context(viewport=PHONE, accept_downloads=True)
        page = await context.new_page()

        # No session: any page sends the browser to the login form.
        await page.goto(url + "/sessions")
        assert page.url == url + "/login"
        await shot(page, "01-login")

        # First visit with the setup code from provisioning, then a password of the owner's own.
        await page.select_option("select[name=role]", "owner")
        await page.fill("input[name=secret]", code)
        await page.click("button[type=submit]")
        assert page.url == url + "/password"
        await shot(page, "02-set-password")
        await page.fill("input[name=password]", "neem-tree-2026")
        await page.fill("input[name=again]", "neem-tree-2026")
        await page.click("main button[type=submit]")
        assert page.url == url + "/"
        await page.wait_for_function("() => document.body.getAttribute('data-live') === 'yes'", timeout=WAIT_MS)
        assert await page.text_content('[data-live="1.state"]') == "Free"

        # A car charges; the page follows it without reloading.
        await page.evaluate("window.sameDocument = true")
        car = rt.board.sim.car
        car.plug_in()
        car.request_power()
        view = await rt.present_token("DEMO-RFID-0001")
        await page.wait_for_function(
            "() => document.querySelector('[data-live=\"1.state\"]').textContent === 'In use' && "
            "document.querySelector('[data-live=\"1.energy\"]').textContent !== '-' && "
            "parseFloat(document.querySelector('[data-live=\"1.energy\"]').textContent) > 0.05", timeout=WAIT_MS)
        first = await page.text_content('[data-live="1.energy"]')
        await page.wait_for_function(
            f"() => document.querySelector('[data-live=\"1.energy\"]').textContent !== {json.dumps(first)}", timeout=WAIT_MS)
        assert await page.evaluate("window.sameDocument") is True
        assert (await page.text_content('[data-live="1.cost"]')).startswith("Rs ")
        assert "kW" in await page.text_content('[data-live="1.power"]')
        await shot(page, "03-status-charging")

        # The owner raises the price: preview, then save; the file keeps its comment.
        await watch.until(lambda b: energy_prices(b) == ["21.24"])  # Rs 18.00 + 18 % GST
        await page.click("nav a[href='/tariff']")
        await page.fill("input[name='e0.energy_per_kwh']", "21.50")
        await page.fill("input[name=preview_kwh]", "5")
        await page.fill("input[name=preview_time]", "19:00")
        await page.click("button[value=preview]")
        preview = await page.text_content("[data-field=preview]")
        assert "Rs 126.85" in preview, preview  # 5 kWh x Rs 21.50 = 107.50, + 18 % GST
        await shot(page, "04-tariff-preview")
        sold_at = tariff_digest(rt.tariff())
        await page.click("button[value=save]")
        await page.wait_for_selector("p.note.ok")
        await shot(page, "05-tariff-saved")
        assert rt.tariff()["elements"][0]["price_components"][0]["price"] == 21.5
        text = tariff_file.read_text()
        assert text.startswith("# One price all day") and "energy_per_kwh = 21.50" in text
        # the retained network catalog is signed afresh with the new price
        await watch.until(lambda b: energy_prices(b) == ["25.37"])  # Rs 21.50 + 18 % GST

        # A wrong price is refused with the tariff checker's own words next to the field.
        await page.fill("input[name='e0.energy_per_kwh']", "21.123456")
        await page.click("button[value=save]")
        error = await page.text_content("[data-field='e0.energy_per_kwh']")
        assert "tariff.element[0].energy_per_kwh" in error and "4 decimals" in error
        await shot(page, "06-tariff-error")
        assert "energy_per_kwh = 21.50" in tariff_file.read_text()

        # The running session keeps the price it was sold at.
        await rt.stop_session(view.session_id)
        car.unplug()
        await wait_until(lambda: rt.receipt(view.session_id) is not None, what="receipt signed")
        ended = rt.session(view.session_id)
        cost = ended.cost
        assert ended.energy_wh > 0 and cost.energy_excl_u == ended.energy_wh * 180  # Rs 18.00 per kWh, per Wh
        assert rt.receipt(view.session_id)["tariff"]["digest"] == sold_at != tariff_digest(rt.tariff())

        # Sessions and earnings, the CSV a spreadsheet opens, a receipt that checks.
        await page.click("nav a[href='/sessions']")
        await page.wait_for_selector("svg.plot")
        assert "signature checked" in await page.text_content("table.list:last-of-type")
        await shot(page, "07-sessions")
        async with page.expect_download() as download_info:
            await page.click("a[href^='/sessions.csv']")
        download = await download_info.value
        data = Path(await download.path()).read_bytes().decode("utf-8-sig")
        rows = list(csv.DictReader(io.StringIO(data)))
        assert [r["session_id"] for r in rows] == [view.session_id]
        assert int(rows[0]["amount_paise"]) == cost.total_paise and rows[0]["source"] == "allow_list"

        # In Hindi, from the translation file.
        await page.click("header a.lang")
        assert await page.text_content("h1") == "सत्र और कमाई"
        await shot(page, "08-sessions-hindi")
        await page.click("nav a[href='/']")
        await shot(page, "09-status-hindi")
        await page.click("header a.lang")
        await page.click("nav a[href='/settings']")
        await shot(page, "10-settings")

        # The contactor welds: the technician sees the fault, and the reset is refused until repaired.
        car.plug_in()
        car.request_power()
        second = await rt.present_token("DEMO-RFID-0001")
        await wait_until(lambda: rt.board.relay.closed, what="relay closed")
        rt.board.relay.weld()
        await rt.stop_session(second.session_id)
        car.unplug()
        await wait_until(lambda: rt.latched_fault() is not None, what="weld latched")
        await page.click("form.logout button")
        await page.fill("input[name=secret]", TECH_PASSWORD)
        await page.select_option("select[name=role]", "technician")
        await page.click("button[type=submit]")
        await page.click("nav a[href='/faults']")
        assert "relay_welded" in await page.text_content("[data-field=fault]")
        health = await page.text_content("table.list")
        assert "Contactor" in health and "Network (MQTT broker)OK" in health.replace("\n", "")
        await page.click("[data-field=fault] button")
        assert "Reset refused" in await page.text_content("p.note.bad")
        assert rt.latched_fault() is not None
        await shot(page, "11-fault-reset-refused")
        rt.board.relay.repair()
        await page.click("[data-field=fault] button")
        assert "Fault cleared" in await page.text_content("p.note.ok")
        assert rt.latched_fault() is None and rt.connectors()[0].status != "OUTOFORDER"
        await shot(page, "12-fault-cleared")
        await context.close()


async def test_a_three_outlet_site_its_settings_and_the_self_test_at_phone_size(tmp_path, chromium):
    """Sim Bharat AC-001 (three socket outlets under a 3.3 kW limit): every connector and its share
    live, opening hours and the network switch saved, and the technician's self-test."""
    from tests.owner_page_support import OWNER_PASSWORD

    network = '\n[network]\nbrokers = ["mqtt://127.0.0.1:9"]\n'
    load = '\n[load]\nlimit_kw = 3.3\nfairness = "equal_share"\nrotation_s = 60\n'
    cfg, _ = page_site(tmp_path, board="sim-bharat3", extra=network + load)
    async with open_runtime(cfg, clock=Clock(speed=30)) as site:
        url = site.bindings["owner_page"].url
        context = await chromium.new_context(viewport=PHONE)
        page = await context.new_page()
        await page.goto(url + "/login")
        await page.fill("input[name=secret]", OWNER_PASSWORD)
        await page.click("button[type=submit]")
        await page.wait_for_function("() => document.body.getAttribute('data-live') === 'yes'", timeout=WAIT_MS)
        await site.present_token("DEMO-RFID-0001", connector_id="2")
        await page.wait_for_function(
            "() => parseFloat(document.querySelector('[data-live=\"2.share\"]').textContent) >= 6", timeout=WAIT_MS)
        assert await page.locator("section.connector").count() == 3
        assert (await page.text_content('[data-live="load.limit"]')).startswith("3.3 kW")
        await shot(page, "13-status-three-outlets")

        await page.click("nav a[href='/settings']")
        await page.fill("input[name=opening_hours]", "mon-sat 7-21")
        await page.click("form.card button.primary")
        assert "site.opening_hours" in await page.text_content("[data-field=opening_hours]")
        await page.fill("input[name=opening_hours]", "mon-sat 07:00-21:30")
        await page.uncheck("input[name=network_enabled]")
        await page.click("form.card button.primary")
        await page.wait_for_selector("p.note.ok")
        await shot(page, "14-settings-hours-network")
        saved = load_config(cfg.path)
        assert saved.opening_hours.text == "mon-sat 07:00-21:30" and not saved.bindings["network"].enabled

        await page.click("form.logout button")
        await page.select_option("select[name=role]", "technician")
        await page.fill("input[name=secret]", TECH_PASSWORD)
        await page.click("button[type=submit]")
        await page.click("nav a[href='/faults']")
        await page.click("form[action='/faults/selftest'] button")
        error = await page.text_content("p.note.bad")
        assert "Self-test refused" in error and "connector 2 is in use" in error  # a car is on outlet 2
        await site.stop_session(site.runtimes[1].core.session_id)
        await wait_until(lambda: site.runtimes[1].core.session_id is None, what="outlet 2 free")
        await page.click("form[action='/faults/selftest'] button")
        await page.wait_for_selector("table[data-field=selftest]")
        assert "Self-test passed" in await page.text_content("p.note.ok")
        assert await page.locator("table[data-field=selftest] tr").count() == 12  # 4 checks x 3 outlets
        assert not any(rt.board.relay.closed for rt in site.runtimes)
        await shot(page, "15-selftest")
        await context.close()
