"""The offline bundle: built for x86_64 from PyPI's binary wheels, installed with no index into a
fresh venv, then the installed agent runs a simulated charge to its receipt and passes the
upgrade's health check. What a missing binary wheel (armhf) does is checked with a stand-in pip."""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pytest

from tools.bundle import BundleError, make_bundle, pins

ROOT = Path(__file__).resolve().parent.parent


def fake_pip(tmp_path: Path, *, refuse: tuple[str, ...]) -> list[str]:
    """A pip whose ``download`` writes an empty wheel, or fails for the names in ``refuse``."""
    script = tmp_path / "fake_pip.py"
    script.write_text(f"""import sys
args = sys.argv[1:]
dest = args[args.index("-d") + 1]
name, version = args[-1].split("==")
if name in {refuse!r}:
    sys.exit(1)
open(f"{{dest}}/{{name.replace('-', '_')}}-{{version}}-py3-none-any.whl", "wb").close()
""")
    return [sys.executable, str(script)]


REQUIRES = ["pymodbus>=3.8,<4", "paho-mqtt>=2.0,<3", "cryptography>=42", "aiohttp>=3.9",
            "gpiod<3,>=2.1; extra == \"gpio\"", "pytest>=8; extra == \"dev\""]


def an_urja_wheel(tmp_path: Path, requires=REQUIRES) -> Path:
    """A wheel whose METADATA names its dependencies, as a built urja wheel does."""
    import zipfile

    wheel = tmp_path / "urja-0.1.0-py3-none-any.whl"
    meta = "Metadata-Version: 2.1\nName: urja\nVersion: 0.1.0\n" + "".join(f"Requires-Dist: {r}\n" for r in requires)
    with zipfile.ZipFile(wheel, "w") as archive:
        archive.writestr("urja-0.1.0.dist-info/METADATA", meta)
    return wheel


def test_the_wheels_dependencies_are_pinned_at_the_installed_versions_with_the_gpio_extra():
    names = {p.name.lower() for p in pins(REQUIRES)}
    assert {"pymodbus", "paho-mqtt", "cryptography", "aiohttp", "cffi", "gpiod"} <= names
    assert "pytest" not in names  # the dev extra stays out


def test_a_dependency_not_installed_where_the_bundle_is_built_is_named(tmp_path):
    with pytest.raises(BundleError, match="no-such-lib-xyz .needed by urja. is not installed"):
        make_bundle("x86_64", tmp_path, urja_wheel=an_urja_wheel(tmp_path, ["no-such-lib-xyz>=1"]),
                    pip=fake_pip(tmp_path, refuse=()), say=lambda _: None)


def test_a_package_without_a_binary_wheel_for_the_target_is_named_and_nothing_is_written(tmp_path):
    with pytest.raises(BundleError) as info:
        make_bundle("armhf", tmp_path / "out", urja_wheel=an_urja_wheel(tmp_path),
                    pip=fake_pip(tmp_path, refuse=("cffi", "gpiod")), say=lambda _: None)
    assert "cffi==" in str(info.value) and "gpiod==" in str(info.value) and "--extra-wheels" in str(info.value)
    assert not (tmp_path / "out").exists()


def test_wheels_built_for_the_target_fill_the_gaps_and_the_manifest_lists_every_file(tmp_path):
    built = tmp_path / "built"
    built.mkdir()
    versions = {p.name: p.version for p in pins(REQUIRES)}
    for name in ("cffi", "gpiod"):
        (built / f"{name}-{versions[name]}-cp311-cp311-linux_armv7l.whl").write_bytes(b"built")
    bundle = make_bundle("armhf", tmp_path / "out", urja_wheel=an_urja_wheel(tmp_path), extra_wheels=built,
                         pip=fake_pip(tmp_path, refuse=("cffi", "gpiod")), say=lambda _: None)
    with tarfile.open(bundle) as tar:
        names = tar.getnames()
        manifest = json.load(tar.extractfile("urja-0.1.0-armhf/MANIFEST.json"))
        extras = tar.extractfile("urja-0.1.0-armhf/EXTRAS").read().decode()
    assert f"urja-0.1.0-armhf/wheels/cffi-{versions['cffi']}-cp311-cp311-linux_armv7l.whl" in names
    assert manifest["arch"] == "armhf" and manifest["python"] == "3.11"
    assert {"install.sh", "activate.py", "urja.service.in", "60-urja.rules", "urja.toml.in"} <= set(manifest["files"])
    assert len([n for n in manifest["files"] if n.startswith("wheels/")]) == len(pins(REQUIRES)) + 1
    assert extras.strip() == f"gpiod=={versions['gpiod']}"  # install.sh installs the GPIO extra too


def test_an_unknown_architecture_is_refused_naming_the_allowed_ones(tmp_path):
    with pytest.raises(BundleError, match="arm64, armhf"):
        make_bundle("riscv64", tmp_path, urja_wheel=an_urja_wheel(tmp_path))


@pytest.mark.slow
@pytest.mark.runtime
def test_the_x86_64_bundle_installs_with_no_index_and_charges_to_a_receipt(tmp_path):
    bundle = make_bundle("x86_64", tmp_path / "out", source=ROOT, say=lambda _: None)
    with tarfile.open(bundle) as tar:
        tar.extractall(tmp_path / "unpacked", filter="data")
    here = tmp_path / "unpacked" / "urja-0.1.0-x86_64"
    prefix = tmp_path / "opt"
    env = {"PATH": "/usr/bin:/bin", "URJA_PREFIX": str(prefix), "PYTHON": sys.executable, "HOME": str(tmp_path),
           "PIP_FIND_LINKS": "", "no_proxy": "*", "https_proxy": "http://127.0.0.1:9", "http_proxy": "http://127.0.0.1:9"}
    out = subprocess.run([str(here / "install.sh"), "--no-system"], env=env, capture_output=True, text=True,
                         timeout=600)
    assert out.returncode == 0, out.stdout + out.stderr
    urja = prefix / "versions" / "0.1.0" / "bin" / "urja"
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    clean = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)}
    charge = subprocess.run([str(urja), "run", "--board", "sim", "--sim-car", "--speed", "120"], cwd=run_dir,
                            env=clean, capture_output=True, text=True, timeout=300)
    assert charge.returncode == 0 and '"receipt_id"' in charge.stdout, charge.stderr[-2000:]
    files = subprocess.run([str(prefix / "versions" / "0.1.0" / "bin" / "python"), "-c",
                            "import agent, sys; print(agent.__file__)"], cwd=run_dir, env=clean, capture_output=True,
                           text=True)
    assert str(prefix) in files.stdout  # the installed copy ran, not this checkout

    from tools.provision import provision_site

    config = provision_site(tmp_path / "site", site_id="in.test.bundle", name="Bundle", lat=12.9, lon=77.6,
                            auth="free_vend")
    switch = subprocess.run([sys.executable, str(here / "activate.py"), "activate", "0.1.0", "--prefix", str(prefix),
                             "--config", str(config), "--no-service"], env=dict(clean, **{
                                 k: v for k, v in os.environ.items() if k == "LANG"}),
                            capture_output=True, text=True, timeout=300)
    assert switch.returncode == 0, switch.stdout + switch.stderr
    assert os.readlink(prefix / "current") == "versions/0.1.0"
