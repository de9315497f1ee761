"""The captured example exchange: every request and callback of a charge appears, every
payload is framed and signed, and every Beckn body validates against the Beckn 1.1 schema."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from protocols.signing.beckn import parse_frame
from tests.mqtt_broker import MOSQUITTO, Broker
from tools.capture_examples import capture

SPECS = Path(__file__).resolve().parents[1].parent / "shared" / "specs"
pytestmark = pytest.mark.skipif(MOSQUITTO is None, reason="mosquitto is not installed (apt install mosquitto)")


async def test_capture_covers_the_transaction_and_bodies_validate(tmp_path):
    with Broker(tmp_path) as broker:
        files = await capture(broker.url, tmp_path / "examples", tmp_path / "work")
    actions = set()
    bodies = []
    for f in files:
        head, _, payload = f.read_bytes().partition(b"\n\n")
        frame = parse_frame(payload)
        doc = json.loads(frame.body)
        if "context" in doc:
            actions.add(doc["context"]["action"])
            bodies.append(doc)
    assert {"search", "on_search", "select", "on_select", "init", "on_init", "confirm", "on_confirm", "update",
            "on_update", "status", "on_status", "track", "on_track"} <= actions
    if not (SPECS / "beckn-1.1" / "transaction.yaml").exists():
        pytest.skip(f"specs not found at {SPECS}; schema validation skipped")
    import yaml
    from jsonschema import Draft202012Validator
    from referencing import Registry, Resource
    from referencing.jsonschema import DRAFT202012

    spec = yaml.safe_load((SPECS / "beckn-1.1" / "transaction.yaml").read_text())
    registry = Registry().with_resource("urn:beckn", Resource.from_contents(spec, default_specification=DRAFT202012))
    for doc in bodies:
        action = doc["context"]["action"]
        pointer = f"urn:beckn#/paths/~1{action}/post/requestBody/content/application~1json/schema"
        validator = Draft202012Validator({"$ref": pointer}, registry=registry)
        errors = sorted(validator.iter_errors(doc), key=lambda e: e.path)
        assert not errors, f"{action}: {errors[0].message} at {list(errors[0].path)}"
