"""Shared parts of the discovery and registry tests: keys, a clock, a v2 catalog shaped like the
spec's example, and validation against the Beckn 2.0 LTS ``beckn.yaml``."""
from __future__ import annotations

import functools
import uuid

import pytest

# the Beckn tests' keys, clock and spec folder, shared by these tests
from tests.test_beckn_fakes import NOW_S, SPECS, Clock, record, signer  # noqa: F401

EV_CONTEXT = ("https://raw.githubusercontent.com/beckn/protocol-specifications-new/refs/heads/main/schema/"
              "EvChargingService/v1/context.jsonld")


def ev_catalog(bpp_id: str, lat: float, lon: float, *, connector: str = "CCS2", status: str = "Available",
               price_paise: int = 1800, catalog_id: str | None = None) -> dict:
    """A one-charger catalog in the LTS shape (``resources`` with ChargingService attributes)."""
    geo = {"type": "Point", "coordinates": [lon, lat]}
    rid = f"{bpp_id}/evse-1"
    return {
        "id": catalog_id or f"{bpp_id}/catalog",
        "bppId": bpp_id,
        "bppUri": f"https://{bpp_id}/beckn",
        "descriptor": {"name": f"Charger {bpp_id}"},
        "provider": {"id": bpp_id, "descriptor": {"name": "Test CPO"}, "availableAt": [{"geo": geo}]},
        "resources": [{
            "id": rid,
            "descriptor": {"name": f"{connector} connector"},
            "resourceAttributes": {
                "@context": EV_CONTEXT, "@type": "ChargingService", "connectorType": connector,
                "maxPowerKW": 60, "stationStatus": status,
                "chargingStation": {"id": bpp_id, "serviceLocation": {"geo": geo}},
            },
        }],
        "offers": [{
            "id": f"{rid}/offer", "resourceIds": [rid],
            "considerations": [{"id": "price", "status": {"code": "QUOTED"},
                                "considerationAttributes": {"@context": EV_CONTEXT, "@type": "PriceSpecification",
                                                            "price": price_paise / 100, "currency": "INR"}}],
        }],
    }


def new_id() -> str:
    return str(uuid.uuid4())


@functools.lru_cache(maxsize=1)
def _spec():
    yaml = pytest.importorskip("yaml")
    path = SPECS / "beckn-2.0" / "beckn.yaml"
    return yaml.safe_load(path.read_text()) if path.exists() else None


@functools.lru_cache(maxsize=32)
def _validator(pointer: str):
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    uri = "urn:beckn:v2"
    registry = Registry().with_resource(uri, Resource.from_contents(_spec(), default_specification=DRAFT202012))
    return Draft202012Validator({"$ref": f"{uri}#{pointer}"}, registry=registry,
                                format_checker=Draft202012Validator.FORMAT_CHECKER)


def _errors(doc, pointer: str) -> list[str]:
    if _spec() is None:
        pytest.skip(f"Beckn 2.0 spec not found at {SPECS} (the CI clone has shared/ beside the repository)")
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in _validator(pointer).iter_errors(doc)]


def request_errors(doc: dict, path: str) -> list[str]:
    """beckn.yaml errors for a request body POSTed to ``path`` (``/discover``, ``/catalog/publish``)."""
    escaped = path.replace("~", "~0").replace("/", "~1")
    return _errors(doc, f"/paths/{escaped}/post/requestBody/content/application~1json/schema")


def ack_errors(doc: dict, response: str = "Ack") -> list[str]:
    """beckn.yaml errors for a synchronous answer (``Ack``, ``NackBadRequest``, ``NackUnauthorized`` ...)."""
    return _errors(doc, f"/components/schemas/{response}")
