"""Suite-wide policing: no test may leave an asyncio task running behind it."""
from __future__ import annotations

import asyncio
import os

import pytest
from hypothesis import HealthCheck, settings

# Machines here are shared and noisy: a per-example deadline would fail on load, not on bugs.
# In CI (CI=true) examples are derandomized so a run is reproducible; locally they explore.
settings.register_profile("local", deadline=None, suppress_health_check=[HealthCheck.too_slow])
settings.register_profile("ci", deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])
settings.load_profile("ci" if os.environ.get("CI") else "local")


@pytest.fixture(autouse=True)
async def no_leaked_tasks():
    """Fail any async test that leaves tasks running; a forgotten task is a forgotten relay."""
    before = {t for t in asyncio.all_tasks()}
    yield
    current = asyncio.current_task()
    leaked = [t for t in asyncio.all_tasks() if t is not current and t not in before and not t.done()]
    if leaked:
        for task in leaked:
            task.cancel()
        await asyncio.gather(*leaked, return_exceptions=True)
        names = ", ".join(sorted(t.get_name() for t in leaked))
        pytest.fail(f"test leaked {len(leaked)} task(s): {names}")


# Test-fast deselects by marker (``make test-fast``). A test is marked by what it reaches, not
# by hand: the names its function, its fixtures and the test helpers they call refer to (read
# from their source, followed through helper modules under tests/), so a new test that opens a
# runtime or starts mosquitto is marked without anyone remembering to.
_REACHES = {
    "runtime": {"open_runtime", "run_local_demo", "run_network_demo", "network_story", "capture"},
    "broker": {"Broker", "run_network_demo", "network_story"},
    "browser": {"playwright", "selenium"},
}
# A CLI call that starts the runtime: ``main(["run", ...])``, ``urja demo``, ``-m tools.cli run``.
_RUNTIME_COMMANDS = {"run", "demo"}
_TESTS_DIR = os.path.dirname(os.path.abspath(__file__))


_REFERENCED: dict = {}


def _referenced(func) -> tuple[set[str], list]:
    """Names in ``func``'s source, and the test helpers they resolve to (once per function)."""
    key = getattr(func, "__code__", func)
    if key not in _REFERENCED:
        _REFERENCED[key] = _read_references(func)
    return _REFERENCED[key]


def _read_references(func) -> tuple[set[str], list]:
    import ast
    import inspect
    import textwrap

    try:
        tree = ast.parse(textwrap.dedent(inspect.getsource(func)))
    except (OSError, TypeError, SyntaxError):
        return set(), []
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Name):
            names.add(node.id)
        elif isinstance(node, ast.Attribute):
            names.add(node.attr)
        elif isinstance(node, (ast.Import, ast.ImportFrom)):
            names.update(a.asname or a.name.split(".")[0] for a in node.names)
            names.update((getattr(node, "module", None) or "").split("."))
        elif isinstance(node, (ast.List, ast.Tuple)) and node.elts:
            first = node.elts[0]
            if isinstance(first, ast.Constant) and first.value in _RUNTIME_COMMANDS:
                names.add("open_runtime")
        elif isinstance(node, ast.Call):
            args = [a.value for a in node.args if isinstance(a, ast.Constant)]
            if any(a == "tools.cli" and b in _RUNTIME_COMMANDS for a, b in zip(args, args[1:], strict=False)):
                names.add("open_runtime")
    helpers = []
    scope = getattr(func, "__globals__", {})
    for name in names:
        obj = scope.get(name)
        if isinstance(obj, str) and "open_runtime" in obj:
            names = names | {"open_runtime"}
        elif inspect.isfunction(obj) or inspect.isclass(obj):
            try:
                source = inspect.getsourcefile(obj) or ""
            except TypeError:
                continue
            if os.path.abspath(source).startswith(_TESTS_DIR + os.sep):
                helpers.append(obj)
    return names, helpers


def _reaches(item) -> set[str]:
    import inspect

    start = [getattr(item, "function", None)]
    for defs in getattr(getattr(item, "_fixtureinfo", None), "name2fixturedefs", {}).values():
        start += [d.func for d in defs]
    seen, todo, names = set(), [f for f in start if f is not None], set()
    while todo:
        func = todo.pop()
        if id(func) in seen:
            continue
        seen.add(id(func))
        found, helpers = _referenced(func)
        names |= found
        for helper in helpers:
            if inspect.isclass(helper):
                todo += [m for _, m in inspect.getmembers(helper, inspect.isfunction)]
            else:
                todo.append(helper)
    return {marker for marker, triggers in _REACHES.items() if names & triggers}


def pytest_collection_modifyitems(config, items):
    for item in items:
        for marker in sorted(_reaches(item)):
            item.add_marker(getattr(pytest.mark, marker))
