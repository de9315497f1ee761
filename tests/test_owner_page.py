"""The owner's page over real HTTP against the real agent on the simulated board.

Security first: no page or API answers without a session, a form without its CSRF token (or
from another site) is refused and changes nothing, guessing is slowed, no secret is in any page,
each role sees only its own pages. Then the editors: the tariff and the settings are checked as
the agent checks its files, written back keeping the owner's comments, and a new tariff prices
new sessions without a restart.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from agent.bootstrap import open_runtime
from agent.clock import Clock
from agent.config import load_config
from protocols.owner.guard import LoginThrottle
from tests.owner_page_support import OWNER_PASSWORD, TECH_PASSWORD, client, log_in, page_site

pytestmark = pytest.mark.runtime

SAMPLE = {"sid": "0123456789abcdef0123"}


class FakeClock:
    def __init__(self):
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s


def routes(app) -> list[tuple[str, str]]:
    """(method, path) of every route the page has, dynamic parts filled with a sample."""
    out = []
    for route in app.router.routes():
        info = route.resource.get_info()
        path = info.get("path") or info.get("formatter")
        for name, value in SAMPLE.items():
            path = path.replace("{%s}" % name, value)
        path = path.replace("{name}", "app.css")
        out.append((route.method, path))
    return out


def secrets_of(site: Path, code: str) -> list[str]:
    """What must never be in a page: passwords, the setup code, hashes and salts, private keys."""
    found = [OWNER_PASSWORD, TECH_PASSWORD, code]
    found += re.findall(r'"(?:hash|salt)": "([^"]+)"', (site / "owner-access.json").read_text())
    for pem in (site / "keys").glob("*.pem"):
        found += [line for line in pem.read_text().splitlines() if line and not line.startswith("-----")]
    return [s for s in found if len(s) >= 8]


async def test_no_page_or_api_answers_without_a_session(tmp_path):
    cfg, _ = page_site(tmp_path)
    async with open_runtime(cfg, clock=Clock(speed=30)) as rt:
        page = rt.bindings["owner_page"]
        tariff_before = Path(cfg.tariff_file).read_text()
        config_before = Path(cfg.path).read_text()
        checked = 0
        async with client() as http:
            for method, path in routes(page.app):
                if path in ("/login", "/lang") or path.startswith("/static/") or method == "HEAD":
                    continue
                for cookie in (None, "forged-session-id"):
                    if cookie:
                        http.cookie_jar.update_cookies({"urja_owner": cookie})
                    async with http.request(method, page.url + path, allow_redirects=False,
                                            data={"csrf": "x", "id": "free", "name": "Taken"}) as r:
                        body = await r.text()
                        if path.startswith("/api/"):
                            assert r.status == 401, (method, path)
                        else:
                            assert r.status == 303 and r.headers["Location"] == "/login", (method, path, r.status)
                        assert "Ramesh" not in body and "DEMO-RFID" not in body and "flat-18" not in body
                    http.cookie_jar.clear()
                    checked += 1
        assert checked >= 20
        assert Path(cfg.tariff_file).read_text() == tariff_before and Path(cfg.path).read_text() == config_before


async def test_a_form_without_its_csrf_token_or_from_another_site_is_refused_and_changes_nothing(tmp_path):
    cfg, _ = page_site(tmp_path)
    async with open_runtime(cfg, clock=Clock(speed=30)) as rt:
        url = rt.bindings["owner_page"].url
        before = Path(cfg.tariff_file).read_text()
        form = {"existing": "1", "id": "forged", "gst_percent": "18", "e0.energy_per_kwh": "1", "action": "save"}
        async with client() as http:
            csrf = await log_in(http, url)
            for sent in ({}, {"csrf": "not-the-token"}, {"csrf": ""}):
                async with http.post(url + "/tariff", data={**form, **sent}, allow_redirects=False) as r:
                    assert r.status == 403
            async with http.post(url + "/tariff", data={**form, "csrf": csrf}, allow_redirects=False,
                                 headers={"Origin": "http://evil.example"}) as r:
                assert r.status == 403
            async with http.post(url + "/faults/reset", data={}, allow_redirects=False) as r:
                assert r.status == 403
            async with http.post(url + "/logout", data={}, allow_redirects=False) as r:
                assert r.status == 403  # even logging out needs the token: a forged link cannot
            assert Path(cfg.tariff_file).read_text() == before and rt.tariff()["id"] == "flat-18"
            async with http.post(url + "/tariff", data={**form, "csrf": csrf}) as r:
                assert r.status == 200
            assert rt.tariff()["id"] == "forged"


async def test_guessing_the_password_is_slowed_down_even_with_the_right_one_in_between(tmp_path):
    cfg, _ = page_site(tmp_path)
    clock = FakeClock()
    async with open_runtime(cfg, clock=Clock(speed=30)) as rt:
        page = rt.bindings["owner_page"]
        page.page.throttle = LoginThrottle(now_s=clock, free_failures=5, base_delay_s=2.0)
        async with client() as http:
            for i in range(5):
                async with http.post(page.url + "/login", data={"role": "owner", "secret": f"guess-{i}"}) as r:
                    assert r.status == 401
            async with http.post(page.url + "/login", data={"role": "owner", "secret": "guess-5"}) as r:
                assert r.status == 401  # the sixth failure starts the wait
            async with http.post(page.url + "/login", data={"role": "owner", "secret": OWNER_PASSWORD}) as r:
                assert r.status == 429 and "Try again in 2 seconds" in await r.text()
            assert not http.cookie_jar.filter_cookies(page.url).get("urja_owner")
            clock.now_s += 2.0
            async with http.post(page.url + "/login", data={"role": "owner", "secret": "guess-6"}) as r:
                assert r.status == 401
            async with http.post(page.url + "/login", data={"role": "owner", "secret": OWNER_PASSWORD}) as r:
                assert r.status == 429 and "Try again in 4 seconds" in await r.text()  # doubled
            clock.now_s += 4.0
            await log_in(http, page.url)


async def test_the_cookie_is_httponly_and_strict_and_no_secret_is_in_any_page(tmp_path):
    cfg, code = page_site(tmp_path)
    site = Path(cfg.path).parent
    async with open_runtime(cfg, clock=Clock(speed=30)) as rt:
        page = rt.bindings["owner_page"]
        forbidden = secrets_of(site, code)
        async with client() as http:
            async with http.post(page.url + "/login", data={"role": "owner", "secret": OWNER_PASSWORD},
                                 allow_redirects=False) as r:
                cookie = r.headers["Set-Cookie"]
                assert "HttpOnly" in cookie and "SameSite=Strict" in cookie and "Path=/" in cookie
                sid = re.search(r"urja_owner=([^;]+)", cookie).group(1)
            for method, path in routes(page.app):
                if method != "GET" or path == "/api/events":
                    continue
                async with http.get(page.url + path) as r:
                    body = await r.text()
                    assert r.headers.get("Content-Security-Policy", "").startswith("default-src 'none'")
                    for secret in forbidden + [sid]:
                        assert secret not in body, (path, secret[:12])


async def test_each_role_sees_only_its_own_pages(tmp_path):
    cfg, _ = page_site(tmp_path)
    async with open_runtime(cfg, clock=Clock(speed=30)) as rt:
        url = rt.bindings["owner_page"].url
        async with client() as tech:
            csrf = await log_in(tech, url, role="technician", secret=TECH_PASSWORD)
            for path in ("/sessions", "/sessions.csv", "/tariff", "/settings"):
                async with tech.get(url + path) as r:
                    assert r.status == 403, path
            async with tech.get(url + "/faults") as r:
                assert r.status == 200 and "Reset" not in await r.text()  # nothing latched: no button
        async with client() as owner:
            csrf = await log_in(owner, url)
            async with owner.post(url + "/faults/reset", data={"csrf": csrf}) as r:
                assert r.status == 403
            async with owner.post(url + "/login", data={"role": "owner", "secret": TECH_PASSWORD}) as r:
                assert r.status == 401  # the technician's password is not the owner's


async def test_a_new_tariff_from_the_page_prices_new_sessions_and_keeps_the_owners_comments(tmp_path):
    cfg, _ = page_site(tmp_path, tariff="time_of_day")
    tariff_file = Path(cfg.tariff_file)
    async with open_runtime(cfg, clock=Clock(speed=30)) as rt:
        url = rt.bindings["owner_page"].url
        told = []
        rt.add_listener(lambda kind, obj: told.append(obj) if kind == "tariff" else None)
        async with client() as http:
            csrf = await log_in(http, url)
            form = {"csrf": csrf, "existing": "3", "id": "time-of-day", "gst_percent": "18", "min_price": "20",
                    "e0.energy_per_kwh": "24.00", "e0.start_time": "18:00", "e0.end_time": "22:00",
                    "e0.days": "MONDAY", "e1.remove": "on", "e2.energy_per_kwh": "16.00", "action": "save"}
            async with http.post(url + "/tariff", data=form) as r:
                assert r.status == 200 and "Saved" in await r.text()
            text = tariff_file.read_text()
            assert text.startswith("# Cheaper at night, dearer in the evening peak")
            assert "# Evening peak, 18:00 to 22:00 every day." in text and "# Any other time." in text
            assert "Night" not in text and "energy_per_kwh = 24.00" in text and 'days = ["MONDAY"]' in text
            assert "min_price = 20\n" in text.split("[[tariff.element]]")[0]
            assert rt.tariff()["elements"][0]["price_components"][0]["price"] == 24
            assert told and told[-1] is rt.tariff()
            assert load_config(cfg.path).tariff_file == tariff_file

            # an invalid window is refused with the checker's message next to the field; file untouched
            bad = {**form, "existing": "2", "e0.end_time": "25:00"}
            bad.pop("e1.remove")
            async with http.post(url + "/tariff", data=bad) as r:
                html = await r.text()
                assert r.status == 400
                assert re.search(r'data-field="e0.end_time">tariff.element\[0\].end_time: not a time of day', html)
            assert tariff_file.read_text() == text


async def test_the_price_preview_states_what_a_charge_costs(tmp_path):
    cfg, _ = page_site(tmp_path, tariff="time_of_day")
    async with open_runtime(cfg, clock=Clock(speed=30)) as rt:
        url = rt.bindings["owner_page"].url
        async with client() as http:
            await log_in(http, url)
            async with http.get(url + "/tariff", params={"preview_kwh": "5", "preview_time": "19:00",
                                                          "preview_day": "2"}) as r:
                html = await r.text()
            # 5 kWh at the evening peak: 5 x Rs 22.50 = 112.50, + 18 % GST = 132.75
            assert "5 kWh from 19:00 on Wed costs Rs 132.75" in html
            async with http.get(url + "/tariff", params={"preview_kwh": "5", "preview_time": "23:00"}) as r:
                assert "costs Rs 70.80" in await r.text()  # night: 5 x 12.00 x 1.18


async def test_settings_are_checked_as_the_agent_checks_its_file_and_written_back(tmp_path):
    cfg, _ = page_site(tmp_path)
    config = Path(cfg.path)
    async with open_runtime(cfg, clock=Clock(speed=30)) as rt:
        url = rt.bindings["owner_page"].url
        async with client() as http:
            csrf = await log_in(http, url)
            base = {"csrf": csrf, "name": "Ramesh Kirana Charging", "address": "", "city": "Bengaluru",
                    "upi_vpa": "ramesh@okaxis", "max_current_a": "", "auth": "allow_list",
                    "allow_tokens": "DEMO-RFID-0001"}
            before = config.read_text()
            async with http.post(url + "/settings", data={**base, "upi_vpa": "ramesh-at-bank"}) as r:
                html = await r.text()
                assert r.status == 400 and "payment.upi_vpa: not a UPI address" in html
            async with http.post(url + "/settings", data={**base, "max_current_a": "200"}) as r:
                assert r.status == 400 and "charging.max_current_a" in await r.text()
            async with http.post(url + "/settings", data={**base, "auth": "allow_list", "allow_tokens": ""}) as r:
                assert r.status == 400 and "allow_tokens" in await r.text()
            assert config.read_text() == before
            good = {**base, "name": "Ramesh Kirana EV", "max_current_a": "16", "allow_tokens": "CARD-1\nCARD-2"}
            async with http.post(url + "/settings", data=good) as r:
                assert r.status == 200 and "Saved" in await r.text()
        text = config.read_text()
        assert text.startswith("# Written by urja's provisioning")
        saved = load_config(config)
        assert saved.name == "Ramesh Kirana EV" and saved.upi_vpa == "ramesh@okaxis"
        assert saved.max_current_a == 16 and saved.allow_tokens == ("CARD-1", "CARD-2")
        assert rt.site.name == "Ramesh Kirana Charging"  # the running agent keeps its settings until restart


async def test_with_the_chargers_certificate_the_page_is_https_only_and_the_cookie_secure(tmp_path):
    import ssl

    import aiohttp

    from tests.mqtt_broker import make_tls_files

    tls = make_tls_files(tmp_path / "tls")
    cfg, _ = page_site(tmp_path, extra=f'tls_cert = "{tls["cert"]}"\ntls_key = "{tls["key"]}"\n')
    async with open_runtime(cfg, clock=Clock(speed=30)) as rt:
        page = rt.bindings["owner_page"]
        assert page.url.startswith("https://")
        trust = ssl.create_default_context(cafile=str(tls["ca"]))
        async with client() as http:
            async with http.post(page.url + "/login", data={"role": "owner", "secret": OWNER_PASSWORD},
                                 ssl=trust, allow_redirects=False) as r:
                assert r.status == 303 and "Secure" in r.headers["Set-Cookie"]
            with pytest.raises(aiohttp.ClientError):  # plain HTTP gets no page from the TLS port
                async with http.get(page.url.replace("https://", "http://") + "/login"):
                    pass


async def test_the_owner_registers_and_removes_an_ocpi_partner_from_the_page(tmp_path):
    from tests.ocpi_harness import SPECS, FakeEmsp

    if not SPECS.is_dir():
        pytest.skip(f"OCPI 2.2.1 specs not found at {SPECS}")
    cfg, _ = page_site(tmp_path)
    emsp = await FakeEmsp().start()
    emsp.verify_callback = False  # nothing serves the charger's public OCPI URL in this test
    try:
        async with open_runtime(cfg, clock=Clock(speed=30)) as rt:
            url = rt.bindings["owner_page"].url
            async with client() as http:
                csrf = await log_in(http, url)
                async with http.get(url + "/settings") as r:
                    assert "No partners registered." in await r.text()
                async with http.post(url + "/partners/register", data={
                        "csrf": csrf, "versions_url": f"{emsp.url}/versions", "token_a": "wrong"}) as r:
                    assert r.status == 400 and "OCPI status 3001" in await r.text()
                async with http.post(url + "/partners/register", data={
                        "csrf": csrf, "versions_url": f"{emsp.url}/versions", "token_a": emsp.token_a}) as r:
                    html = await r.text()
                    assert r.status == 200 and "Registered: party" in html and "IN*EMS" in html
                    assert emsp.token_b not in html and emsp.cpo_token not in html
                async with http.post(url + "/partners/unregister", data={"csrf": csrf, "party": "1"}) as r:
                    assert r.status == 200 and "Removed: party 1" in await r.text()
                assert emsp.received[-1][:2] == ("DELETE", "credentials")
                async with http.get(url + "/settings") as r:
                    assert "No partners registered." in await r.text()
    finally:
        await emsp.close()
