"""``urja ocpi``: tokens A that the served CPO accepts, registering with an eMSP, listing, removing."""
from __future__ import annotations

import asyncio
import sys

import pytest

from agent.config import load_config
from protocols.ocpi.settings import OcpiSettings
from protocols.ocpi.store import OcpiStore
from protocols.ocpi.wire import token_hash
from tests.ocpi_harness import SPECS, FakeEmsp
from tests.support import sim_config
from tools.cli import main

pytestmark = pytest.mark.skipif(not SPECS.is_dir(), reason=f"OCPI 2.2.1 specs not found at {SPECS}")


def _store(cfg):
    return OcpiStore.open(OcpiSettings.from_site(cfg).store_path(cfg))


def test_token_create_and_list(tmp_path, capsys):
    cfg = sim_config(tmp_path)
    assert main(["ocpi", "--config", cfg.path, "token", "create", "--label", "app-1"]) == 0
    out = capsys.readouterr().out
    token = out.split("token A: ")[1].split()[0]
    store = _store(cfg)
    try:
        assert store.has_token_a(token_hash(token))
    finally:
        store.close()
    assert main(["ocpi", "--config", cfg.path, "list"]) == 0
    out = capsys.readouterr().out
    assert "no partners registered" in out and "open registration tokens: 1" in out


async def _cli(*args):
    proc = await asyncio.create_subprocess_exec(sys.executable, "-m", "tools.cli", *args,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    out, err = await asyncio.wait_for(proc.communicate(), 30)
    return proc.returncode, out.decode(), err.decode()


async def test_register_with_an_emsp_then_unregister(tmp_path):
    cfg = sim_config(tmp_path)
    emsp = await FakeEmsp().start()
    emsp.verify_callback = False  # nothing serves the charger's public URL in this test
    try:
        code, out, err = await _cli("ocpi", "--config", cfg.path, "register", f"{emsp.url}/versions", emsp.token_a)
        assert code == 0, err
        assert "registered: party 1 (IN*EMS)" in out
        store = _store(load_config(cfg.path))
        try:
            party = store.parties()[0]
            assert party.outgoing_token == emsp.token_b
            assert store.party_by_hash(token_hash(emsp.cpo_token)).pk == party.pk
        finally:
            store.close()
        code, out, err = await _cli("ocpi", "--config", cfg.path, "unregister", "1")
        assert code == 0, err
        assert emsp.received[-1][:2] == ("DELETE", "credentials")
        code, out, err = await _cli("ocpi", "--config", cfg.path, "register", f"{emsp.url}/versions", "wrong")
        assert code == 1 and "OCPI status 3001" in err
    finally:
        await emsp.close()
