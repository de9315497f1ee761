"""``urja diag``: everything support needs, and not one key, password, token or setup code."""
from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from agent.journal import FaultStore, Journal, fault_store_path
from tools.cli import main

ROOT = Path(__file__).resolve().parent.parent
MQTT_PASSWORD = "mqtt-pw-Zq8v1Xr"
LOG_SECRET_LINE = f"2026-12-06T06:00:00.000Z DEBUG mqtt: connecting with {MQTT_PASSWORD}"


@pytest.fixture
def site(tmp_path):
    from tools.provision import provision_site

    config = provision_site(tmp_path / "site", site_id="in.test.diag", name="Diag", lat=12.9, lon=77.6,
                            auth="network", broker_url="mqtt://127.0.0.1:1",
                            extra_toml=f'username = "charger"\npassword = "{MQTT_PASSWORD}"\n')
    from agent.owner_access import create_setup_code

    create_setup_code(config.parent / "owner-access.json")
    with Journal.open(config.parent / "journal.sqlite") as j:
        j.start_session("s1", connector_id=1, auth={"source": "free_vend"}, start_wh=10, start_time_s=1.0,
                        meter_serial="EM-1")
    with FaultStore.open(fault_store_path(config.parent / "journal.sqlite")) as faults:
        faults.latch("relay_welded", "current 12 A with the relay open", 100.0)
    (config.parent / "agent.log").write_text(f"2026-12-06T06:00:00.000Z INFO runtime: started\n{LOG_SECRET_LINE}\n")
    return config


def unpack(bundle: Path) -> dict[str, bytes]:
    with tarfile.open(bundle) as tar:
        return {Path(m.name).name: tar.extractfile(m).read() for m in tar.getmembers() if m.isfile()}


def secrets_of(site: Path) -> list[bytes]:
    """Every secret byte string a site holds: private keys (PEM body lines), passwords, hashes."""
    found = [MQTT_PASSWORD.encode()]
    for pem in (site.parent / "keys").glob("*.pem"):
        found += [line for line in pem.read_bytes().splitlines() if line and not line.startswith(b"-----")]
    access = json.loads((site.parent / "owner-access.json").read_text())
    scrypt = access["roles"]["owner"]["setup_code"]["scrypt"]
    found += [scrypt["salt"].encode(), scrypt["hash"].encode()]
    found += [line for line in (site.parent / "agency" / "agency.json").read_bytes().splitlines() if b"private" in line]
    return found


def test_the_bundle_has_versions_config_log_faults_and_journal_and_no_secret_anywhere(tmp_path, site, capsys):
    assert main(["diag", "--config", str(site), "--out", str(tmp_path / "out"), "--log",
                 str(site.parent / "agent.log")]) == 0
    assert "no keys, passwords or tokens" in capsys.readouterr().out
    [bundle] = (tmp_path / "out").glob("urja-diag-in.test.diag-*.tar.gz")
    files = unpack(bundle)
    assert {"versions.json", "config.toml", "board.txt", "log.txt", "faults.json", "journal.json",
            "status.json", "selftest.txt"} <= set(files)
    versions = json.loads(files["versions.json"])
    assert versions["python"] and versions["journal_format_written"] >= 1 and "glibc" in versions
    assert b'id = "in.test.diag"' in files["config.toml"] and b'password = "<removed>"' in files["config.toml"]
    assert b'username = "charger"' in files["config.toml"]
    assert b"connecting with <removed>" in files["log.txt"]
    [fault] = json.loads(files["faults.json"])
    assert fault["code"] == "relay_welded" and fault["cleared_s"] is None
    assert json.loads(files["journal.json"])["open_sessions"] == 1
    raw = bundle.read_bytes()
    everything = b"\n".join(files.values())
    for secret in secrets_of(site):
        assert secret not in everything and secret not in raw, secret


def test_a_bundle_can_be_written_while_the_agent_holds_the_journal(tmp_path, site):
    with Journal.open(site.parent / "journal.sqlite"):
        assert main(["diag", "--config", str(site), "--out", str(tmp_path), "--log", str(site.parent / "agent.log")]) == 0
    [bundle] = tmp_path.glob("*.tar.gz")
    assert json.loads(unpack(bundle)["faults.json"])[0]["code"] == "relay_welded"


def test_the_self_test_is_run_only_when_asked(tmp_path, site):
    from tools.diag import make_diag

    bundle = make_diag(site, tmp_path, log_file=site.parent / "agent.log", run_selftest=True)
    text = unpack(bundle)["selftest.txt"].decode()
    assert "exit 0" in text


@pytest.mark.runtime
def test_the_running_agent_keeps_meter_counters_for_the_bundle_in_its_runtime_folder(tmp_path):
    from tools.provision import provision_site

    config = provision_site(tmp_path / "site", site_id="in.test.status", name="Status", lat=12.9, lon=77.6,
                            auth="free_vend")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    notify = str(tmp_path / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(notify)
    sock.settimeout(30)
    env = dict(os.environ, NOTIFY_SOCKET=notify, RUNTIME_DIRECTORY=str(run_dir), PYTHONPATH=str(ROOT))
    proc = subprocess.Popen([sys.executable, "-m", "tools.cli", "run", "--config", str(config)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        while not sock.recv(100).startswith(b"READY=1"):
            pass
        status = json.loads((run_dir / "status.json").read_text())  # written before READY returns to the loop
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(30)
        sock.close()
    assert status["site_id"] == "in.test.status" and status["meter"]["good_reads"] >= 1
    assert set(status["meter"]["faults"]) and all(n == 0 for n in status["meter"]["faults"].values())
    from tools.diag import make_diag

    bundle = make_diag(
        config, tmp_path / "out", log_file=tmp_path / "none.log", status_file=run_dir / "status.json")
    assert json.loads(unpack(bundle)["status.json"])["meter"]["good_reads"] >= 1
