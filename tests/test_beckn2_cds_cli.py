"""``urja registry`` and ``urja cds serve`` as separate processes: a charger's catalog published
through the reference service, found by a node, every key looked up in the reference registry."""
from __future__ import annotations

import asyncio
import os
import re
import signal
import sys
import time

import pytest

from protocols.beckn2.cds_client import CdsDiscovery, discover_intent
from protocols.beckn2.dedi import DediRegistryClient, load_registry_file
from protocols.beckn2.publish import CatalogPublisher
from protocols.signing.keys import create_keyring
from tests.cds_support import ev_catalog
from tools.cli import main

NETWORK = "acmenet.org/charge-net"


async def spawn(*args):
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "tools.cli", *args,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    line = (await asyncio.wait_for(proc.stdout.readline(), 30)).decode()
    m = re.search(r"http://127\.0\.0\.1:(\d+)", line)
    if m is None:
        proc.kill()
        err = (await proc.communicate())[1].decode()
        pytest.fail(f"{args[0]} did not start: {line!r} {err}")
    return proc, int(m.group(1))


async def stop(proc) -> int:
    proc.send_signal(signal.SIGTERM)
    await asyncio.wait_for(proc.communicate(), 30)
    return proc.returncode


async def test_a_charger_is_published_and_discovered_through_the_reference_services(tmp_path, capsys):
    now = time.time()
    keys = {name: tmp_path / name for name in ("charger", "cds", "node")}
    for name, path in keys.items():
        create_keyring(path, subscriber_id=f"{name}.example.in", valid_days=1, now_s=now - 60)
    registry = tmp_path / "registry.json"
    for name, path in keys.items():
        assert main(["registry", "add", "--file", str(registry), "--key-dir", str(path), "--network-id", NETWORK,
                     "--url", f"https://{name}.example.in"]) == 0
    assert len(load_registry_file(registry)["records"]) == 3
    reg, reg_port = await spawn("registry", "serve", "--file", str(registry), "--port", "0")
    cds, cds_port = await spawn("cds", "serve", "--key-dir", str(keys["cds"]), "--network-id", NETWORK,
                                "--registry", f"http://127.0.0.1:{reg_port}/dedi", "--port", "0")
    from aiohttp import ClientSession, web

    from protocols.http.serve import serve
    from protocols.signing.keys import load_keyring

    charger = load_keyring(keys["charger"])
    async with ClientSession() as session:
        lookup = DediRegistryClient(session=session, base_url=f"http://127.0.0.1:{reg_port}/dedi", clock=time.time,
                                    network=NETWORK)
        app = web.Application()
        runner = None
        task = None
        try:
            holder = {}

            async def on_publish(request):
                return await holder["p"].handle_on_publish(request)

            app.router.add_post("/catalog/on_publish", on_publish)
            runner, port = await serve(app, "127.0.0.1", 0)
            publisher = holder["p"] = CatalogPublisher(
                catalog=lambda: ev_catalog("charger.example.in", 12.975, 77.60), signer=charger, clock=time.time,
                services=[f"http://127.0.0.1:{cds_port}"], bpp_id="charger.example.in",
                bpp_uri=f"http://127.0.0.1:{port}", lookup=lookup, network_id=NETWORK, debounce_s=0.0)
            task = asyncio.get_running_loop().create_task(publisher.run())
            await publisher.wait_for(lambda s: all(x.state == "accepted" for x in s.values()), 20)
            async with CdsDiscovery(cds_url=f"http://127.0.0.1:{cds_port}", signer=load_keyring(keys["node"]),
                                    lookup=lookup, clock=time.time, network_id=NETWORK) as node:
                found = await node.discover(discover_intent(lat=12.9716, lon=77.5946, radius_km=5, connector="CCS2"))
            assert [c["bppId"] for c in found] == ["charger.example.in"]
        finally:
            if task is not None:
                from agent.aio import cancel_and_wait

                await cancel_and_wait([task])
            if runner is not None:
                await runner.cleanup()
            assert await stop(cds) == 0
            assert await stop(reg) == 0


def test_registry_add_refuses_a_bad_network_id_in_one_line(tmp_path, capsys):
    create_keyring(tmp_path / "k", subscriber_id="c.example.in", valid_days=1, now_s=time.time())
    assert main(["registry", "add", "--file", str(tmp_path / "r.json"), "--key-dir", str(tmp_path / "k"),
                 "--network-id", "nonetwork", "--url", "https://c.example.in"]) == 2
    err = capsys.readouterr().err
    assert "--network-id" in err and "NAMESPACE/REGISTRY" in err and err.count("\n") == 1
    assert main(["registry", "add", "--file", str(tmp_path / "r.json"), "--key-dir", str(tmp_path / "none"),
                 "--network-id", NETWORK, "--url", "https://c.example.in"]) == 2
    assert "cannot read" in capsys.readouterr().err
    assert not os.path.exists(tmp_path / "r.json")
