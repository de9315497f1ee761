"""Every malformed input a site can hand the agent ends in one line naming the file and the key.

Each case is a provisioned site with one thing wrong, run through ``urja run`` (the same entry a
site uses); the command must return 2 (or 1 for a refusal that is not the configuration's) with a
single ``urja: ...`` line naming what is wrong, never a traceback, and must not leave the
journal, a listening port or the relay touched.
"""
from __future__ import annotations

import re
import socket
from pathlib import Path

import pytest

from agent.journal import FaultStore, fault_store_path
from drivers.configfile import ConfigError, load_toml, read_bounded
from tools.cli import main
from tools.provision import provision_site

pytestmark = pytest.mark.runtime

PROFILES = Path(__file__).resolve().parent.parent / "board" / "profiles"


def _site(tmp_path: Path) -> Path:
    return provision_site(tmp_path / "site", site_id="in.t.1", name="T", lat=12.9, lon=77.6,
                          default_limit_wh=500, agency_dir=tmp_path / "agency")


def _set(cfg: Path, table: str, key: str, value: str) -> None:
    text = cfg.read_text()
    new, n = re.subn(rf"(\[{table}\]\n(?:[^\[].*\n)*?){key} = .*\n", lambda m: f"{m.group(1)}{key} = {value}\n", text)
    assert n == 1, (table, key)
    cfg.write_text(new)


def _append(cfg: Path, text: str) -> None:
    cfg.write_text(cfg.read_text() + "\n" + text + "\n")


def bad_utf8(cfg, tmp_path):
    cfg.write_bytes(cfg.read_bytes().replace(b'name = "T"', b'name = "\xff\xfe"'))
    return "not UTF-8 text (byte 0xff"


def journal_directory(cfg, tmp_path):
    (cfg.parent / "jd").mkdir()
    _set(cfg, "journal", "path", '"jd"')
    return "journal.path: ", "a directory"


def journal_under_proc(cfg, tmp_path):
    _set(cfg, "journal", "path", '"/proc/urja/journal.sqlite"')
    return "journal.path: ", "under /proc"


def journal_dev_null(cfg, tmp_path):
    _set(cfg, "journal", "path", '"/dev/null"')
    return "journal.path: /dev/null: a device"


def journal_not_sqlite(cfg, tmp_path):
    (cfg.parent / "notes.txt").write_text("not a database\n" * 200)
    _set(cfg, "journal", "path", '"notes.txt"')
    return "journal.path: ", "not a database"


def http_port_in_use(cfg, tmp_path):
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    tmp_path.joinpath("held").write_text("")
    _HELD.append(sock)
    _append(cfg, f'[http]\nlisten = "127.0.0.1:{sock.getsockname()[1]}"')
    return "http.listen: ", "address already in use"


def http_unknown_host(cfg, tmp_path):
    _append(cfg, '[http]\nlisten = "no-such-host.invalid:0"')
    return "http.listen: "


def ocpi_cert_missing(cfg, tmp_path):
    _append(cfg, '[ocpi]\nlisten = "127.0.0.1:0"\ntls_cert = "cert.pem"\ntls_key = "key.pem"')
    return "ocpi.tls_cert: ", "cert.pem: file not found"


def ocpi_key_missing(cfg, tmp_path):
    (cfg.parent / "cert.pem").write_text("-----BEGIN CERTIFICATE-----\n")
    _append(cfg, '[ocpi]\nlisten = "127.0.0.1:0"\ntls_cert = "cert.pem"\ntls_key = "key.pem"')
    return "ocpi.tls_key: ", "key.pem: file not found"


def ocpi_cert_not_pem(cfg, tmp_path):
    (cfg.parent / "cert.pem").write_text("hello\n")
    (cfg.parent / "key.pem").write_text("hello\n")
    _append(cfg, '[ocpi]\nlisten = "127.0.0.1:0"\ntls_cert = "cert.pem"\ntls_key = "key.pem"')
    return "ocpi.tls_cert: ", "not a PEM certificate"


def ocpi_store_under_missing_directory(cfg, tmp_path):
    (cfg.parent / "afile").write_text("")
    _append(cfg, '[ocpi]\nlisten = "127.0.0.1:0"\nstore = "afile/missing/ocpi.sqlite"')
    return "ocpi.store: ", "ot a directory"


def tariff_price_too_large(cfg, tmp_path):
    tariff = cfg.parent / "tariff.toml"
    tariff.write_text(tariff.read_text().replace("energy_per_kwh = 18.00", "energy_per_kwh = 1e30"))
    return "tariff.file: ", "energy_per_kwh: too large"


def tariff_dev_zero(cfg, tmp_path):
    _set(cfg, "tariff", "file", '"/dev/zero"')
    return "tariff.file: /dev/zero: a device"


def tariff_directory(cfg, tmp_path):
    (cfg.parent / "td").mkdir()
    _set(cfg, "tariff", "file", '"td"')
    return "tariff.file: ", "a directory"


def profile_dev_zero(cfg, tmp_path):
    _set(cfg, "board", "profile", '"/dev/zero"')
    return "board.profile: /dev/zero: a device"


def profile_directory(cfg, tmp_path):
    (cfg.parent / "bd").mkdir()
    _set(cfg, "board", "profile", f'"{cfg.parent / "bd"}"')
    return "board.profile: ", "a directory"


def register_file_under_proc(cfg, tmp_path):
    profile = cfg.parent / "board.toml"
    profile.write_text((PROFILES / "sim.toml").read_text().replace(
        'model = "sdm630"', 'model = "sdm630"\nregister_file = "/proc/urja/register.txt"'))
    _set(cfg, "board", "profile", f'"{profile}"')
    return "board.profile: ", "meter.register_file: /proc/urja/register.txt: under /proc"


def key_dir_holds_a_directory(cfg, tmp_path):
    certificate = cfg.parent / "keys" / "certificate.json"
    certificate.unlink()
    certificate.mkdir()
    return "identity.certificate: ", "a directory"


_HELD: list[socket.socket] = []

CASES = [bad_utf8, journal_directory, journal_under_proc, journal_dev_null, journal_not_sqlite, http_port_in_use,
         http_unknown_host, ocpi_cert_missing, ocpi_key_missing, ocpi_cert_not_pem,
         ocpi_store_under_missing_directory, tariff_price_too_large, tariff_dev_zero, tariff_directory,
         profile_dev_zero, profile_directory, register_file_under_proc, key_dir_holds_a_directory]


@pytest.mark.parametrize("case", CASES, ids=[c.__name__ for c in CASES])
def test_a_malformed_input_is_one_line_naming_the_file_and_the_key(case, tmp_path, capsys):
    cfg = _site(tmp_path)
    expected = case(cfg, tmp_path)
    fragments = (expected,) if isinstance(expected, str) else expected
    try:
        code = main(["run", "--config", str(cfg), "--duration-s", "0.2", "--speed", "10"])
    finally:
        while _HELD:
            _HELD.pop().close()
    err = capsys.readouterr().err
    refusal = [line for line in err.splitlines() if line.startswith("urja: ")]
    assert code == 2, err
    assert len(refusal) == 1 and "Traceback" not in err, err
    assert refusal[0].startswith(f"urja: configuration error: {cfg}"), refusal
    for fragment in fragments:
        assert fragment in refusal[0], refusal


def test_sim_car_on_a_charger_with_a_latched_fault_says_so_in_one_line(tmp_path, capsys):
    cfg = _site(tmp_path)
    store = FaultStore.open(fault_store_path(cfg.parent / "journal.sqlite"))
    store.latch("relay_welded", "contacts stuck", 1.0)
    store.close()
    code = main(["run", "--config", str(cfg), "--sim-car", "--speed", "60"])
    err = capsys.readouterr().err
    assert code == 1
    assert "Traceback" not in err
    assert "urja: --sim-car: the charger is out of order, fault relay_welded" in err
    assert "urja fault reset" in err


def test_a_file_read_is_bounded_even_where_its_size_says_nothing(tmp_path):
    big = tmp_path / "big.toml"
    big.write_bytes(b"# " + b"x" * 4096 + b"\n")
    with pytest.raises(ConfigError, match="larger than 1024 bytes"):
        read_bounded(big, max_bytes=1024)
    with pytest.raises(ConfigError, match="a device"):
        load_toml("/dev/zero")
    with pytest.raises(ConfigError, match="a directory"):
        load_toml(tmp_path)
    assert read_bounded(big, max_bytes=8192).startswith(b"# x")
