"""The layers of ARCHITECTURE.md, checked on the source: every import of every module, at the
top or inside a function, parsed with ``ast`` (nothing is imported, so a module that would
fail to import still gets checked).

Bottom to top: ``drivers`` -> ``board`` -> ``agent`` (its ``core`` portable, standing alone)
-> ``protocols`` -> ``tools``. A lower layer importing a higher one is how a relay driver
ends up needing the MQTT stack, or the MicroPython copy of the core stops loading; each
finding names file, line and the import.
"""
from __future__ import annotations

import ast
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("agent", "drivers", "board", "protocols", "tools")

# The standard-library modules agent/core/ may import: only ones MicroPython has, and only
# those the core uses today (none). Add one here only after checking it exists there.
CORE_STDLIB: frozenset[str] = frozenset()

# (package, forbidden top-level imports); agent/core/ has its own, stricter rule below.
FORBIDDEN = (
    ("drivers", {"agent", "board", "protocols", "tools"}),
    ("board", {"agent", "protocols", "tools"}),
    ("protocols", {"tools"}),
    ("agent", {"tools"}),
)
NEVER = {"tests", "bench"}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _imports(path: Path) -> list[tuple[int, str]]:
    """Every (line, absolute module name) ``path`` imports; ``from a import b`` gives ``a.b``
    when ``a/b.py`` is a module, so edges between sibling modules are seen too."""
    module = _module_name(path)
    package = module if path.name == "__init__.py" else module.rpartition(".")[0]
    found = []
    for node in ast.walk(ast.parse(path.read_text(), filename=str(path))):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                target = ".".join(base + ([node.module] if node.module else []))
            else:
                target = node.module or ""
            found.append((node.lineno, target))
            folder = ROOT.joinpath(*target.split("."))
            for alias in node.names:
                if (folder / f"{alias.name}.py").is_file() or (folder / alias.name / "__init__.py").is_file():
                    found.append((node.lineno, f"{target}.{alias.name}"))
    return found


def _modules(package: str) -> list[Path]:
    return sorted(p for p in (ROOT / package).rglob("*.py") if "__pycache__" not in p.parts)


def _within(name: str, prefix: str) -> bool:
    return name == prefix or name.startswith(prefix + ".")


def _violations() -> list[str]:
    found = []
    for package in PACKAGES:
        for path in _modules(package):
            rel = path.relative_to(ROOT).as_posix()
            in_core = rel.startswith("agent/core/")
            for line, name in _imports(path):
                top = name.split(".")[0]
                where = f"{rel}:{line}: imports {name}"
                if top in NEVER:
                    found.append(f"{where} (no package imports test or benchmark code)")
                elif in_core:
                    if not (_within(name, "agent.core") or top in CORE_STDLIB):
                        found.append(f"{where} (agent/core/ imports only agent.core and {sorted(CORE_STDLIB)})")
                else:
                    for owner, forbidden in FORBIDDEN:
                        if package == owner and top in forbidden:
                            found.append(f"{where} ({owner}/ must not import {top})")
    return found


def test_no_layer_imports_one_above_it():
    found = _violations()
    assert not found, "imports against the layering:\n" + "\n".join(found)


def test_the_check_sees_a_violation(tmp_path, monkeypatch):
    """The checker itself: a driver importing the runtime is reported with file and line."""
    fake = tmp_path / "drivers"
    fake.mkdir()
    (fake / "__init__.py").write_text("")
    (fake / "relay.py").write_text("import json\n\ndef f():\n    from agent.runtime import open_runtime\n")
    (tmp_path / "agent" / "core").mkdir(parents=True)
    (tmp_path / "agent" / "core" / "session.py").write_text("from . import errors\nimport time\n")
    (tmp_path / "agent" / "core" / "errors.py").write_text("")
    monkeypatch.setattr(sys.modules[__name__], "ROOT", tmp_path)
    found = _violations()
    assert found == ["agent/core/session.py:2: imports time (agent/core/ imports only agent.core and [])",
                     "drivers/relay.py:4: imports agent.runtime (drivers/ must not import agent)"]


def test_tools_modules_import_each_other_without_a_cycle():
    graph = {_module_name(p): {n for _, n in _imports(p) if _within(n, "tools")} for p in _modules("tools")}
    graph = {m: {n for n in targets if n in graph and n != m} for m, targets in graph.items()}
    state: dict[str, int] = {}  # 1 on the current path, 2 done
    cycles = []

    def visit(module: str, path: list[str]) -> None:
        state[module] = 1
        for target in sorted(graph[module]):
            if state.get(target) == 1:
                cycles.append(" -> ".join(path[path.index(target):] + [target]))
            elif target not in state:
                visit(target, path + [target])
        state[module] = 2

    for module in sorted(graph):
        if module not in state:
            visit(module, [module])
    assert not cycles, "import cycles among tools/ modules:\n" + "\n".join(cycles)
