"""What the wheel ships: the five top-level packages with the data they read at run time, no
test or benchmark code, and default tariffs identical to the documented ones in ``examples/``.

The file list is computed from ``setup.cfg`` the way setuptools computes it (package discovery
plus ``package_data`` globs), so a data folder added without a ``package_data`` line fails
here, not on a site installed from the wheel. ``make wheel-check`` then runs a real wheel.
"""
from __future__ import annotations

import fnmatch
from pathlib import Path

import pytest
from setuptools.config.setupcfg import read_configuration

from tools.provision import shipped_tariff

ROOT = Path(__file__).resolve().parent.parent
TOP_LEVEL = {"agent", "board", "drivers", "protocols", "tools"}
# Files inside the package folders that are documentation, not read at run time.
NOT_SHIPPED = {"drivers/meter/maps/README.md"}


def _shipped_files() -> tuple[list[str], set[str]]:
    options = read_configuration(str(ROOT / "setup.cfg"))["options"]
    packages = options["packages"]
    package_data = options.get("package_data", {})
    files = set()
    for package in packages:
        folder = ROOT.joinpath(*package.split("."))
        for path in folder.iterdir():
            if not path.is_file():
                continue
            if path.suffix == ".py" or any(fnmatch.fnmatch(path.name, g) for g in package_data.get(package, ())):
                files.add(path.relative_to(ROOT).as_posix())
    return packages, files


def test_exactly_the_five_packages_ship_and_no_tests_or_benchmarks():
    packages, files = _shipped_files()
    assert {p.split(".")[0] for p in packages} == TOP_LEVEL
    assert not [p for p in packages if "__pycache__" in p or p.split(".")[0] in ("tests", "bench")]
    assert not [f for f in files if "/tests/" in f or f.split("/")[-1].startswith("test_")]


def test_every_data_file_in_the_packages_ships():
    _, files = _shipped_files()
    on_disk = {
        p.relative_to(ROOT).as_posix()
        for top in TOP_LEVEL
        for p in (ROOT / top).rglob("*")
        if p.is_file() and "__pycache__" not in p.parts and p.suffix not in (".py", ".pyc")
    }
    missing = sorted(on_disk - files - NOT_SHIPPED)
    assert not missing, f"in a package folder but not in setup.cfg [options.package_data]: {missing}"
    for needed in ("board/profiles/sim.toml", "drivers/meter/maps/sdm630.toml", "agent/data/tariffs/flat.toml"):
        assert needed in files


@pytest.mark.parametrize("name", sorted(p.stem for p in (ROOT / "examples" / "tariffs").glob("*.toml")))
def test_the_shipped_tariffs_are_the_documented_examples(name):
    assert shipped_tariff(name).read_bytes() == (ROOT / "examples" / "tariffs" / f"{name}.toml").read_bytes()


def test_every_shipped_tariff_has_its_documented_copy():
    shipped = {p.name for p in shipped_tariff("flat").parent.glob("*.toml")}
    assert shipped == {p.name for p in (ROOT / "examples" / "tariffs").glob("*.toml")}
