"""Validation of everything the charger says against the official OCPI 2.2.1 OpenAPI files.

Why the official files and not a copy: the peer is meant to catch the charger drifting from the
specification, so the only source of truth it may use is the published description. The files
reference each other with relative ``$ref``s; every YAML file is registered under its own
``file://`` URI so those references resolve exactly as written.

Formats are checked too (the OpenAPI files only declare them): OCPI DateTime is RFC 3339 with
OCPI's own limits (UTC only, at most 25 characters, the ``Z`` may be left out), URLs must be
absolute http(s) URLs.
"""
from __future__ import annotations

import re
from functools import lru_cache
from pathlib import Path
from urllib.parse import urlsplit

import yaml
from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource
from referencing.jsonschema import DRAFT202012

# tests/emsp_peer/schemas.py -> repository -> its parent holds shared/ (also in the CI clone).
SPECS_DIR = Path(__file__).resolve().parents[2].parent / "shared" / "specs"
OCPI_DIR = SPECS_DIR / "ocpi-2.2.1"

_DATETIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,9})?Z?$")


class ConformanceError(AssertionError):
    """The charger said something the OCPI 2.2.1 specification does not allow.

    An AssertionError so that pytest shows it as a plain test failure with the whole reason.
    """


def ocpi_datetime_ok(value) -> bool:
    """OCPI 2.2.1 types: RFC 3339, UTC, string(25), e.g. 2015-06-29T20:39:09Z or ...09.2."""
    if not isinstance(value, str):
        return True  # type errors are the schema's business
    if len(value) > 25 or not _DATETIME.match(value):
        return False
    month, day = int(value[5:7]), int(value[8:10])
    hour, minute, second = int(value[11:13]), int(value[14:16]), int(value[17:19])
    return 1 <= month <= 12 and 1 <= day <= 31 and hour < 24 and minute < 60 and second < 61


def _url_ok(value) -> bool:
    if not isinstance(value, str):
        return True
    parts = urlsplit(value)
    return parts.scheme in ("http", "https") and bool(parts.netloc)


def _format_checker() -> FormatChecker:
    checker = FormatChecker(formats=())
    checker.checks("date-time")(ocpi_datetime_ok)
    checker.checks("uri")(_url_ok)
    return checker


class OcpiSpec:
    """The OCPI 2.2.1 OpenAPI files, loaded once, with validators for schemas and responses."""

    def __init__(self, root: Path = OCPI_DIR):
        if not root.is_dir():
            raise FileNotFoundError(f"OCPI 2.2.1 specification folder missing: {root}")
        self.root = root
        resources = []
        self.documents: dict[str, dict] = {}
        for path in sorted(root.rglob("*.yaml")):
            with open(path, encoding="utf-8") as f:
                doc = yaml.safe_load(f)
            uri = path.resolve().as_uri()
            self.documents[str(path.relative_to(root).with_suffix(""))] = doc
            resources.append((uri, Resource.from_contents(doc, default_specification=DRAFT202012)))
        self.registry = Registry().with_resources(resources)
        self._checker = _format_checker()
        self._validators: dict[str, Draft202012Validator] = {}

    def uri(self, file: str) -> str:
        """``file`` as in ``"modules/locations/schema"`` (no suffix)."""
        return (self.root / f"{file}.yaml").resolve().as_uri()

    def validator(self, ref: str) -> Draft202012Validator:
        found = self._validators.get(ref)
        if found is None:
            found = Draft202012Validator({"$ref": ref}, registry=self.registry,
                                         format_checker=self._checker)
            self._validators[ref] = found
        return found

    def schema_ref(self, module: str, name: str) -> str:
        """A named schema: ``schema_ref("locations", "Location")``; module "components" for shared ones."""
        file = "components/schema" if module == "components" else f"modules/{module}/schema"
        return f"{self.uri(file)}#/components/schemas/{name}"

    def operation(self, interface: str, path: str, method: str) -> dict:
        """The OpenAPI operation object, e.g. ("locations/sender-interface", "/locations", "get")."""
        doc = self.documents[self._file(interface)]
        try:
            return doc["paths"][path][method.lower()]
        except KeyError:
            raise KeyError(f"{interface} has no operation {method.upper()} {path}") from None

    def response_ref(self, interface: str, path: str, method: str, http_status: int = 200) -> str | None:
        """The JSON schema of a response body, or None when the operation declares none."""
        op = self.operation(interface, path, method)
        responses = op.get("responses", {})
        if str(http_status) not in responses:
            return None
        pointer = "/".join(["#", "paths", _escape(path), method.lower(), "responses", str(http_status)])
        response = responses[str(http_status)]
        if "$ref" in response:
            # Shared responses live in components/schema.yaml; follow the reference's own file.
            target, _, fragment = response["$ref"].partition("#")
            file = (self.root / self._file(interface)).parent / target
            resolved = _follow(self.documents[str(file.resolve().relative_to(self.root.resolve())
                                                  .with_suffix(""))], fragment)
            if "application/json" not in resolved.get("content", {}):
                return None
            return f"{file.resolve().as_uri()}#{fragment}/content/application~1json/schema"
        if "application/json" not in response.get("content", {}):
            return None
        return f"{self.uri(self._file(interface))}{pointer}/content/application~1json/schema"

    def request_ref(self, interface: str, path: str, method: str) -> str | None:
        op = self.operation(interface, path, method)
        if "application/json" not in op.get("requestBody", {}).get("content", {}):
            return None
        pointer = "/".join(["#", "paths", _escape(path), method.lower(), "requestBody"])
        return f"{self.uri(self._file(interface))}{pointer}/content/application~1json/schema"

    def errors(self, ref: str, instance) -> list[str]:
        """Every violation, each as 'at <json path>: <message>'; empty when the instance conforms."""
        found = []
        for error in sorted(self.validator(ref).iter_errors(instance), key=lambda e: list(e.absolute_path)):
            where = "/".join(str(p) for p in error.absolute_path) or "(root)"
            found.append(f"at {where}: {error.message}")
        return found

    def check(self, ref: str, instance, what: str) -> None:
        """Raise ConformanceError naming ``what`` (e.g. 'GET /locations reply') on any violation."""
        problems = self.errors(ref, instance)
        if problems:
            shown = "; ".join(problems[:8]) + (f" (and {len(problems) - 8} more)" if len(problems) > 8 else "")
            raise ConformanceError(f"{what} violates {ref.rsplit('/', 1)[-1]}: {shown}")

    @staticmethod
    def _file(interface: str) -> str:
        if interface.startswith(("modules/", "components/", "roles/")):
            return interface
        return f"modules/{interface}"


def _escape(path: str) -> str:
    return path.replace("~", "~0").replace("/", "~1")


def _follow(doc: dict, fragment: str):
    node = doc
    for part in fragment.lstrip("/").split("/"):
        node = node[part.replace("~1", "/").replace("~0", "~")]
    return node


@lru_cache(maxsize=1)
def load_spec() -> OcpiSpec:
    """One shared, immutable spec per process: loading all files takes a noticeable fraction of a second."""
    return OcpiSpec()
