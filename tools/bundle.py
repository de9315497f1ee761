"""An offline install bundle for one architecture: wheels, the service unit, templates, install.sh.

A maker's controllers have no internet while they are flashed (or ever). The bundle carries
the urja wheel and exactly the dependency versions this installation runs (walked from the
installed distribution's requirements, extras included), downloaded as binary wheels for the
target with ``pip download --only-binary=:all: --platform ...``, so nothing compiles on the
board. Where PyPI has no binary wheel for the target (armhf: ``cffi`` and ``gpiod`` have no
armv7l wheels), the bundle is refused naming them, unless ``--extra-wheels`` supplies them,
built once in an emulated chroot of the target (``BUILD-NOTES.txt`` in the bundle and the
README say how; ``make check-arm64`` builds such a chroot).

Layout of ``urja-VERSION-ARCH.tar.gz``: ``urja-VERSION-ARCH/`` with ``wheels/``,
``install.sh``, ``activate.py`` (``tools/upgrade.py``: the switch with health check, run by
the system's Python), ``urja.service.in``, ``60-urja.rules``, ``urja.toml.in``, ``VERSION``,
``PYTHON``, ``EXTRAS`` and ``MANIFEST.json`` (every file's SHA-256).
"""
from __future__ import annotations

import hashlib
import json
import re
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from importlib import metadata, resources
from pathlib import Path

from protocols.errors import ProtocolError

# Debian 12 (bookworm) is the base: Python 3.11, glibc 2.36. Wheels are taken from the newest
# manylinux tag glibc 2.36 accepts down to manylinux2014 (glibc 2.17).
PYTHON_VERSION = "3.11"
ARCHES: dict[str, str] = {"x86_64": "x86_64", "arm64": "aarch64", "armhf": "armv7l"}
GLIBC_TAGS = ("2_36", "2_35", "2_34", "2_31", "2_28", "2_27", "2_24", "2_17")
EXTRAS = ("gpio",)
DATA_FILES = ("install.sh", "urja.service.in", "60-urja.rules", "urja.toml.in")


class BundleError(ProtocolError):
    code = "bundle"


@dataclass(frozen=True)
class Pin:
    name: str
    version: str

    def __str__(self) -> str:
        return f"{self.name}=={self.version}"


def platforms(arch: str) -> list[str]:
    machine = ARCHES[arch]
    tags = [f"manylinux_{g}_{machine}" for g in GLIBC_TAGS] + [f"manylinux2014_{machine}"]
    if machine == "x86_64":
        tags += ["manylinux2010_x86_64", "manylinux1_x86_64"]
    return tags


def _canonical(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def wheel_metadata(wheel: Path) -> tuple[str, list[str]]:
    """(version, Requires-Dist lines) of the urja wheel being bundled.

    The dependencies come from the wheel, not from whatever urja is installed where the bundle
    is built: that one may be another version with other dependencies.
    """
    import zipfile

    try:
        with zipfile.ZipFile(wheel) as archive:
            name = next(n for n in archive.namelist() if n.endswith(".dist-info/METADATA"))
            text = archive.read(name).decode()
    except (OSError, zipfile.BadZipFile, StopIteration) as exc:
        raise BundleError(f"{wheel}: not a wheel with metadata ({exc or 'no METADATA'})") from None
    fields = [line.split(":", 1) for line in text.splitlines() if ":" in line and not line.startswith(" ")]
    version = next((v.strip() for k, v in fields if k == "Version"), None)
    if version is None:
        raise BundleError(f"{wheel}: its METADATA has no Version")
    return version, [v.strip() for k, v in fields if k == "Requires-Dist"]


def pins(requirements: list[str], extras: tuple[str, ...] = EXTRAS) -> list[Pin]:
    """The installed version of each requirement (with ``extras``) and of theirs, recursively."""
    from packaging.requirements import Requirement

    env = {"python_version": PYTHON_VERSION, "sys_platform": "linux", "platform_system": "Linux",
           "implementation_name": "cpython", "platform_python_implementation": "CPython", "os_name": "posix"}
    seen: dict[str, Pin] = {}
    todo = [("urja", list(requirements), extras)]
    while todo:
        name, texts, wanted = todo.pop()
        for text in texts:
            req = Requirement(text)
            if req.marker is not None and not any(req.marker.evaluate(dict(env, extra=e)) for e in (*wanted, "")):
                continue
            key = _canonical(req.name)
            if key in seen:
                continue
            try:
                seen[key] = Pin(req.name, metadata.version(req.name))
            except metadata.PackageNotFoundError:
                raise BundleError(f"{req.name} (needed by {name}) is not installed here: the bundle takes the "
                                  f"versions this installation runs; install urja[{','.join(extras)}] first") from None
            todo.append((req.name, metadata.requires(req.name) or [], tuple(req.extras)))
    return sorted(seen.values(), key=lambda p: _canonical(p.name))


def extra_pins(requirements: list[str], extras: tuple[str, ...] = EXTRAS) -> list[str]:
    """The extras' own packages, installed beside urja by install.sh (``gpiod`` for GPIO relays)."""
    from packaging.requirements import Requirement

    names = []
    for text in requirements:
        req = Requirement(text)
        if req.marker is not None and any(req.marker.evaluate({"extra": e}) for e in extras):
            names.append(f"{req.name}=={metadata.version(req.name)}")
    return names


def download(pin: Pin, arch: str, dest: Path, *, pip: list[str]) -> bool:
    """The binary wheel of ``pin`` for ``arch`` into ``dest``; False when PyPI has none."""
    argv = [*pip, "download", "--quiet", "--no-deps", "--only-binary=:all:", "--python-version", PYTHON_VERSION,
            "--implementation", "cp", "--abi", f"cp{PYTHON_VERSION.replace('.', '')}", "--abi", "abi3",
            "--abi", "none", "-d", str(dest)]
    for tag in platforms(arch):
        argv += ["--platform", tag]
    argv.append(str(pin))
    return subprocess.run(argv, capture_output=True, text=True).returncode == 0


def _wheels_of(folder: Path, pin: Pin) -> list[Path]:
    return [w for w in sorted(folder.glob("*.whl"))
            if _canonical(w.name.split("-")[0]) == _canonical(pin.name) and w.name.split("-")[1] == pin.version]


def build_urja_wheel(source: Path, dest: Path, *, pip: list[str]) -> Path:
    """The wheel of a checkout, built from a clean copy (a stale ``build/`` there never ships)."""
    with tempfile.TemporaryDirectory(prefix="urja-src-") as tmp:
        copy = Path(tmp) / "src"
        shutil.copytree(source, copy, ignore=shutil.ignore_patterns(
            ".git", ".venv", "build", "dist", "*.egg-info", "__pycache__", "node_modules", ".pytest_cache"))
        out = subprocess.run([*pip, "wheel", "--quiet", "--no-deps", "-w", str(dest), str(copy)],
                             capture_output=True, text=True)
    if out.returncode != 0:
        raise BundleError(f"building the urja wheel from {source} failed: {out.stderr.strip()[-300:]}")
    found = sorted(dest.glob("urja-*.whl"))
    if not found:
        raise BundleError(f"no urja wheel was built from {source}")
    return found[-1]


def make_bundle(arch: str, out_dir: Path, *, source: Path | None = None, urja_wheel: Path | None = None,
                extra_wheels: Path | None = None, pip: list[str] | None = None, say=print) -> Path:
    """Write ``urja-VERSION-ARCH.tar.gz`` into ``out_dir``; returns its path."""
    if arch not in ARCHES:
        raise BundleError(f"--arch {arch!r}: allowed {', '.join(ARCHES)}")
    pip = pip or [sys.executable, "-m", "pip"]
    with tempfile.TemporaryDirectory(prefix="urja-bundle-") as tmp:
        wheels = Path(tmp) / "wheels"
        wheels.mkdir()
        if urja_wheel is None:
            if source is None or not (source / "setup.cfg").exists():
                raise BundleError("give --wheel (a built urja wheel) or run from a checkout (--source)")
            urja_wheel = build_urja_wheel(source, wheels, pip=pip)
        else:
            shutil.copy(urja_wheel, wheels)
        version, requirements = wheel_metadata(urja_wheel)
        name = f"urja-{version}-{arch}"
        root = Path(tmp) / name
        root.mkdir()
        wheels = wheels.rename(root / "wheels")
        missing = []
        for pin in pins(requirements):
            supplied = _wheels_of(extra_wheels, pin) if extra_wheels is not None else []
            for wheel in supplied:
                shutil.copy(wheel, wheels)
                say(f"  {pin} (built: {wheel.name})")
            if supplied:
                continue
            if not download(pin, arch, wheels, pip=pip):
                missing.append(pin)
            else:
                say(f"  {pin}")
        if missing:
            raise BundleError(f"no binary wheel on PyPI for {arch} ({ARCHES[arch]}): "
                              f"{', '.join(map(str, missing))}; build them on a Debian 12 {arch} root file system "
                              f"(README, Offline install) and pass --extra-wheels DIR")
        _write_files(root, version, arch, extra_pins(requirements))
        out_dir.mkdir(parents=True, exist_ok=True)
        target = out_dir / f"{name}.tar.gz"
        with tarfile.open(target, "w:gz") as tar:
            tar.add(root, arcname=name)
    say(f"bundle {target}")
    return target


def _write_files(root: Path, version: str, arch: str, extras: list[str]) -> None:
    data = resources.files("tools") / "data"
    for file in DATA_FILES:
        (root / file).write_bytes((data / file).read_bytes())
    (root / "install.sh").chmod(0o755)
    (root / "activate.py").write_bytes((resources.files("tools") / "upgrade.py").read_bytes())
    (root / "VERSION").write_text(version + "\n")
    (root / "PYTHON").write_text(PYTHON_VERSION + "\n")
    (root / "EXTRAS").write_text(" ".join(extras) + "\n")
    (root / "BUILD-NOTES.txt").write_text(BUILD_NOTES.format(arch=arch, machine=ARCHES[arch]))
    manifest = {"version": version, "arch": arch, "python": PYTHON_VERSION,
                "files": {str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
                          for p in sorted(root.rglob("*")) if p.is_file()}}
    (root / "MANIFEST.json").write_text(json.dumps(manifest, indent=2) + "\n")


BUILD_NOTES = """Wheels in this bundle are binary wheels for {arch} ({machine}) from PyPI, for Python 3.11
(Debian 12). Where PyPI has none for {machine} (armhf: cffi, gpiod), they were built once on
a Debian 12 {arch} root file system run under qemu-user-static (binfmt_misc registered, as
make check-arm64 does for arm64):

  debootstrap --arch={arch} --include=python3-venv,python3-dev,gcc,libffi-dev bookworm rootfs
  chroot rootfs sh -c 'python3 -m venv /b && /b/bin/pip wheel -w /wheels cffi==X gpiod==Y'

and given to `urja bundle --arch {arch} --extra-wheels rootfs/wheels`.
"""
