"""An OpenAPI 3.1 description of exactly what the charger serves, assembled from the official
OCPI 2.2.1 files (for API fuzzers and partners' tooling).

The official files split each module into sender and receiver interfaces with relative
``$ref``s between files; fuzzers want one self-contained document, so the served paths are
picked, placed under our URL layout (``/versions``, ``/2.2.1``, ``/2.2.1/<module>...``) and
every reference is inlined.
"""
from __future__ import annotations

from pathlib import Path

import yaml

# (module folder, interface file, official path prefix) of what we serve; receivers keep
# only the methods we implement.
_SERVED = (
    ("versions", "interface.yaml", None),
    ("credentials", "interface.yaml", None),
    ("locations", "sender-interface.yaml", None),
    ("tariffs", "sender-interface.yaml", None),
    ("sessions", "sender-interface.yaml", {"/sessions": {"get"},
                                           "/sessions/{session_id}/charging_preferences": {"put"}}),
    ("cdrs", "sender-interface.yaml", None),
    ("commands", "receiver-interface.yaml", None),
    ("tokens", "receiver-interface.yaml", {"/tokens/{country_code}/{party_id}/{token_uid}": {"get", "put", "patch"}}),
    ("hubclientinfo", "receiver-interface.yaml", None),
)
_METHODS = ("get", "put", "post", "patch", "delete")


class _Inliner:
    def __init__(self):
        self._files: dict = {}

    def load(self, path: Path):
        path = path.resolve()
        if path not in self._files:
            self._files[path] = yaml.safe_load(path.read_text())
        return self._files[path]

    def target(self, ref: str, base: Path):
        file_part, _, pointer = ref.partition("#")
        path = (base.parent / file_part).resolve() if file_part else base
        node = self.load(path)
        for part in [p for p in pointer.split("/") if p]:
            node = node[part.replace("~1", "/").replace("~0", "~")]
        return node, path

    def inline(self, node, base: Path, depth: int = 0):
        if depth > 60:
            raise ValueError(f"reference chain too deep in {base}")
        if isinstance(node, dict):
            if "$ref" in node and isinstance(node["$ref"], str):
                target, path = self.target(node["$ref"], base)
                resolved = self.inline(target, path, depth + 1)
                extra = {k: self.inline(v, base, depth + 1) for k, v in node.items() if k != "$ref"}
                return {**resolved, **extra} if isinstance(resolved, dict) else resolved
            return {k: self.inline(v, base, depth + 1) for k, v in node.items()}
        if isinstance(node, list):
            return [self.inline(v, base, depth + 1) for v in node]
        return node


def build_openapi(spec_dir, base_url: str) -> dict:
    """The served API as one document; ``spec_dir`` is the official ``ocpi-2.2.1`` folder."""
    spec_dir = Path(spec_dir)
    inliner = _Inliner()
    paths: dict = {}
    for module, file, only in _SERVED:
        path = spec_dir / "modules" / module / file
        doc = inliner.load(path)
        for official, ops in doc.get("paths", {}).items():
            if only is not None and official not in only:
                continue
            if module == "versions":
                ours = "/versions" if official == "/versions" else "/2.2.1"
            else:
                ours = "/2.2.1" + official
            kept = {}
            for method, op in ops.items():
                if method in _METHODS and (only is None or method in only[official]):
                    kept[method] = inliner.inline(op, path)
                elif method == "parameters":
                    kept[method] = inliner.inline(op, path)
            if kept:
                paths[ours] = kept
    components = inliner.load(spec_dir / "components" / "schema.yaml")["components"]
    return {
        "openapi": "3.1.0",
        "info": {"title": "Urja charger: OCPI 2.2.1 CPO interface", "version": "2.2.1"},
        "servers": [{"url": base_url.rstrip("/")}],
        "security": [{"OCPIToken": []}],
        "components": {"securitySchemes": components["securitySchemes"]},
        "paths": paths,
    }
