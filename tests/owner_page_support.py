"""Helpers for the owner's page tests: a provisioned site with the page, a logged-in HTTP client."""
from __future__ import annotations

import random
import re
from pathlib import Path

import aiohttp

from agent import owner_access
from agent.config import load_config
from tools.provision import provision_site

OWNER_PASSWORD = "mango-tree-42"
TECH_PASSWORD = "spanner-77-blue"
PAGE_TABLE = '\n[owner_page]\nlisten = "127.0.0.1:0"\nmdns = false\n'
CSRF = re.compile(r'name="csrf" value="([^"]+)"')


def page_site(tmp_path: Path, *, broker_url: str | None = None, auth: str = "allow_list", tariff: str = "flat",
              passwords: bool = True, extra: str = "", board: str = "sim"):
    """A simulated site whose configuration has ``[owner_page]``; returns (config, setup code)."""
    path = provision_site(tmp_path / "site", site_id="in.test.page-1", name="Ramesh Kirana Charging", lat=12.9352,
                          lon=77.6245, tariff=tariff, auth=auth, broker_url=broker_url,
                          extra_toml=PAGE_TABLE + extra, board=board)
    access = path.parent / "owner-access.json"
    code = owner_access.create_setup_code(access, rng=random.Random(15))
    if passwords:  # otherwise the owner's first visit uses the setup code
        owner_access.set_password(access, role="owner", password=OWNER_PASSWORD)
    owner_access.set_password(access, role="technician", password=TECH_PASSWORD)
    return load_config(path), code


def client() -> aiohttp.ClientSession:
    # unsafe: the page is on 127.0.0.1 in tests, and aiohttp keeps no cookies for IP hosts otherwise
    return aiohttp.ClientSession(cookie_jar=aiohttp.CookieJar(unsafe=True))


async def log_in(http: aiohttp.ClientSession, url: str, *, role: str = "owner",
                 secret: str = OWNER_PASSWORD) -> str:
    """Log in and return the session's CSRF token (read from the page, as a browser has it)."""
    async with http.post(url + "/login", data={"role": role, "secret": secret}) as r:
        html = await r.text()
        assert r.status == 200, (r.status, html[:300])
    found = CSRF.search(html)
    assert found, "no CSRF token on the page after login"
    return found.group(1)
