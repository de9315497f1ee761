"""Upgrades side by side: a broken version goes back by itself; a rollback by hand keeps the journal.

Each "version" is a copy of this source tree (edited where the test wants it older or broken)
with a ``bin/urja`` that runs it, so the switch, the health check (a real agent on the
simulated board sending READY over a real datagram socket, a meter read, the self-test) and the
journal are all real; only the venv that a bundle would install is left out.
"""
from __future__ import annotations

import re
import shutil
import sqlite3
import sys
from pathlib import Path

import pytest

from agent.journal import Journal
from tools import upgrade

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("agent", "drivers", "protocols", "board", "tools")

pytestmark = [pytest.mark.runtime, pytest.mark.slow]


def install_version(prefix: Path, version: str, edits: dict[str, tuple[str, str]] | None = None) -> Path:
    """versions/VERSION/ with this tree under lib/ and bin/urja; ``edits``: file -> (pattern, replacement)."""
    home = prefix / "versions" / version
    for package in PACKAGES:
        shutil.copytree(ROOT / package, home / "lib" / package, ignore=shutil.ignore_patterns("__pycache__"))
    for rel, (pattern, replacement) in (edits or {}).items():
        path = home / "lib" / rel
        text, count = re.subn(pattern, replacement, path.read_text(), count=1, flags=re.S)
        assert count == 1, f"{rel}: {pattern!r} not found"
        path.write_text(text)
    (home / "bin").mkdir()
    urja = home / "bin" / "urja"
    urja.write_text(f'#!/bin/sh\nPYTHONPATH="{home / "lib"}" exec "{sys.executable}" -P -m tools.cli "$@"\n')
    urja.chmod(0o755)
    return home


FORMAT_1 = {"agent/journal/migrations.py": (r"STEPS: tuple\[Step, \.\.\.\] = \(.*?\n\)\n", "STEPS = ()\n")}
# Carries the journal to a format 3 on start, then cannot read its meter: the worst kind of broken.
BROKEN = {
    "agent/journal/migrations.py": (r"\n\)\n\n# The format", "\n    Step(2, 'broken', lambda c: c.execute('CREATE TABLE "
                                     "broken (x)'), lambda c: c.execute('DROP TABLE broken')),\n)\n\n# The format"),
    "tools/service.py": (r'reading = await rt.board.meter.read\(\)', 'raise RuntimeError("this release cannot read '
                         'meters")'),
}


@pytest.fixture
def site(tmp_path):
    from tools.provision import provision_site

    return provision_site(tmp_path / "site", site_id="in.test.upgrade", name="Upgrade", lat=12.9, lon=77.6,
                          auth="free_vend")


def journal_state(path: Path) -> tuple[int, list]:
    conn = sqlite3.connect(path)
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        sessions = conn.execute("SELECT session_id, start_wh, stop_wh FROM sessions ORDER BY seq").fetchall()
        return version, sessions
    finally:
        conn.close()


def record_session(path: Path, session_id: str, start_wh: int) -> None:
    with Journal.open(path) as j:
        j.start_session(session_id, connector_id=1, auth={"source": "free_vend"}, start_wh=start_wh,
                        start_time_s=1.0, meter_serial="10000001")
        j.stop_session(session_id, stop_wh=start_wh + 5, stop_time_s=60.0, reason="ev-stop")


def test_an_upgrade_to_a_broken_version_goes_back_by_itself_with_the_journal_as_it_was(tmp_path, site):
    prefix = tmp_path / "opt"
    install_version(prefix, "0.1.0")
    said: list[str] = []
    assert upgrade.activate(prefix, "0.1.0", site, say=said.append).ok
    journal = site.parent / "journal.sqlite"
    record_session(journal, "s-before", 10)
    before = journal_state(journal)
    assert before[0] == 2

    install_version(prefix, "0.2.0", BROKEN)
    check = upgrade.activate(prefix, "0.2.0", site, say=said.append)

    assert not check.ok and "cannot read meters" in check.detail
    layout = upgrade.Layout(prefix)
    assert layout.linked(layout.current) == "0.1.0"
    assert journal_state(journal) == before  # format 3 undone, the session kept
    assert any("rolled back to 0.1.0" in line for line in said)
    assert any("version 0.1.0: READY, meter read, self-test passed" in line for line in said)


def test_a_version_that_does_not_start_at_all_is_not_kept(tmp_path, site):
    prefix = tmp_path / "opt"
    install_version(prefix, "0.1.0")
    assert upgrade.activate(prefix, "0.1.0", site, say=lambda _: None).ok
    install_version(prefix, "0.2.0", {"agent/bootstrap.py": (r"async def __aenter__\(self\) -> Runtime:\n",
                                                             "async def __aenter__(self) -> Runtime:\n"
                                                             "        raise RuntimeError('broken release')\n")})
    check = upgrade.activate(prefix, "0.2.0", site, say=lambda _: None)
    assert not check.ok and "no READY" in check.detail
    assert upgrade.Layout(prefix).linked(upgrade.Layout(prefix).current) == "0.1.0"


def test_a_good_upgrade_is_kept_and_a_rollback_by_hand_carries_the_journal_back_with_new_sessions(tmp_path, site):
    prefix = tmp_path / "opt"
    install_version(prefix, "0.1.0", FORMAT_1)
    install_version(prefix, "0.2.0")
    assert upgrade.activate(prefix, "0.1.0", site, say=lambda _: None).ok
    journal = site.parent / "journal.sqlite"
    assert journal_state(journal)[0] == 1

    assert upgrade.activate(prefix, "0.2.0", site, say=lambda _: None).ok
    layout = upgrade.Layout(prefix)
    assert (layout.linked(layout.current), layout.linked(layout.previous)) == ("0.2.0", "0.1.0")
    assert journal_state(journal)[0] == 2
    record_session(journal, "s-after-upgrade", 40)

    said: list[str] = []
    assert upgrade.rollback(prefix, site, say=said.append).ok
    assert (layout.linked(layout.current), layout.linked(layout.previous)) == ("0.1.0", "0.2.0")
    version, sessions = journal_state(journal)
    assert version == 1 and ("s-after-upgrade", 40, 45) in sessions
    assert any("format 2 -> 1" in line for line in said)


def test_activating_a_version_that_is_not_installed_changes_nothing(tmp_path, site):
    prefix = tmp_path / "opt"
    install_version(prefix, "0.1.0")
    assert upgrade.activate(prefix, "0.1.0", site, say=lambda _: None).ok
    with pytest.raises(upgrade.UpgradeError, match="0.3.0 is not installed"):
        upgrade.activate(prefix, "0.3.0", site)
    assert upgrade.main(["activate", "0.3.0", "--prefix", str(prefix), "--config", str(site), "--no-service"]) == 1
    assert upgrade.Layout(prefix).linked(upgrade.Layout(prefix).current) == "0.1.0"


def test_an_unknown_service_user_is_refused_before_anything_is_switched(tmp_path, site, monkeypatch):
    prefix = tmp_path / "opt"
    install_version(prefix, "0.1.0")
    install_version(prefix, "0.2.0")
    assert upgrade.activate(prefix, "0.1.0", site, say=lambda _: None).ok
    monkeypatch.setattr(upgrade.os, "geteuid", lambda: 0)
    with pytest.raises(upgrade.UpgradeError, match="no user 'no-such-urja-user'"):
        upgrade.activate(prefix, "0.2.0", site, user="no-such-urja-user")
    assert upgrade.Layout(prefix).linked(upgrade.Layout(prefix).current) == "0.1.0"
