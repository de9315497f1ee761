"""The README's owner's-page steps on a unit made by ``urja provision``, end to end.

The maker provisions the unit; its configuration serves the page (``[owner_page]`` from the
shipped template, the access file the setup code was written to); the owner opens the page with
the code on the label, sets a password, and from then on the password opens it and the code
does not. Only what differs between the board and this test machine is changed: the port, the
mDNS advert and the journal's folder.
"""
from __future__ import annotations

import re
from pathlib import Path

import pytest
import tomlkit

from agent.bootstrap import open_runtime
from agent.clock import Clock
from agent.config import load_config
from tests.owner_page_support import CSRF, client
from tools.cli import main

pytestmark = pytest.mark.runtime

SITE_ID = "in.blr.shop-7"


def provisioned(tmp_path: Path) -> tuple[Path, str]:
    from tools.provision import ensure_agency

    ensure_agency(tmp_path / "agency")
    assert main(["provision", "--out", str(tmp_path / "out"), "--site-id", SITE_ID, "--name", "Shop 7",
                 "--lat", "12.9352", "--lon", "77.6245", "--city", "Bengaluru", "--auth", "free_vend",
                 "--agency-dir", str(tmp_path / "agency")]) == 0
    label = (tmp_path / "out" / "labels" / f"{SITE_ID}.txt").read_text()
    code = re.search(r"Setup code: ([A-Za-z0-9-]+)", label).group(1)
    return tmp_path / "out" / SITE_ID / "urja.toml", code


async def test_a_provisioned_unit_serves_the_page_the_label_code_opens_once_and_a_password_after(tmp_path):
    config, code = provisioned(tmp_path)
    shipped = load_config(config).bindings["owner_page"]
    assert (shipped.host, shipped.port, shipped.mdns) == ("0.0.0.0", 8080, True)
    assert shipped.access_file == config.parent / "owner-access.json" and shipped.access_file.is_file()

    doc = tomlkit.parse(config.read_text())
    doc["owner_page"]["listen"] = "127.0.0.1:0"
    doc["owner_page"]["mdns"] = False
    doc["journal"]["path"] = str(tmp_path / "journal.sqlite")
    config.write_text(tomlkit.dumps(doc))
    async with open_runtime(load_config(config), clock=Clock(speed=30)) as rt:
        url = rt.bindings["owner_page"].url
        async with client() as http:
            # typed from the label as printed, in groups of five with dashes, in lower case
            async with http.post(url + "/login", data={"role": "owner", "secret": code.lower()}) as r:
                html = await r.text()
                assert str(r.url).endswith("/password"), (r.status, html[:300])
            csrf = CSRF.search(html).group(1)
            async with http.get(url + "/") as r:
                assert str(r.url).endswith("/password")  # nothing else until a password is set
            async with http.post(url + "/password", data={"csrf": csrf, "password": "banyan-2027",
                                                           "again": "banyan-2027"}) as r:
                html = await r.text()
                assert r.status == 200 and str(r.url) == url + "/" and 'data-connector="1"' in html
        async with client() as http:
            async with http.post(url + "/login", data={"role": "owner", "secret": code.replace("-", "")}) as r:
                assert r.status == 401  # the code opened the page once
            async with http.post(url + "/login", data={"role": "owner", "secret": "banyan-2027"}) as r:
                assert r.status == 200 and str(r.url) == url + "/"
    assert code.replace("-", "") not in (config.parent / "owner-access.json").read_text()
