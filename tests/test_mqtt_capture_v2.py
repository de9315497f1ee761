"""The captured Beckn 2.0 exchange over MQTT (``docs/examples-2.0``): every action of a charge
appears, every payload is framed and signed, every body validates against ``beckn.yaml`` and
the EV-charging packs, and every callback that answers a request carries its digest."""
from __future__ import annotations

import json

import pytest
from beckn2_support import request_digest, v2_errors

from protocols.signing.beckn import parse_frame
from tests.mqtt_broker import MOSQUITTO, Broker
from tools.capture_examples import capture

pytestmark = pytest.mark.skipif(MOSQUITTO is None, reason="mosquitto is not installed (apt install mosquitto)")


async def test_the_2_0_capture_covers_every_action_and_every_body_validates(tmp_path):
    with Broker(tmp_path) as broker:
        files = await capture(broker.url, tmp_path / "examples", tmp_path / "work", profile="beckn-2.0")
    requests: dict[str, bytes] = {}
    callbacks = []
    refusals = []
    for f in files:
        _, _, payload = f.read_bytes().partition(b"\n\n")
        frame = parse_frame(payload)
        doc = json.loads(frame.body)
        if "context" not in doc:
            continue  # presence
        action = doc["context"]["action"]
        if "error" in doc:  # a refusal over MQTT: the 2.0 Error on the callback's context
            assert set(doc["error"]) >= {"errorCode", "errorMessage"}
            refusals.append(doc)
            continue
        assert v2_errors(doc) == [], (f.name, v2_errors(doc))
        if action.startswith("on_"):
            callbacks.append(doc)
        else:
            requests[doc["context"]["messageId"]] = frame.body
    actions = {d["context"]["action"] for d in callbacks} | {json.loads(b)["context"]["action"]
                                                              for b in requests.values()}
    assert {"discover", "on_discover", "select", "on_select", "init", "on_init", "confirm", "on_confirm", "update",
            "on_update", "status", "on_status", "track", "on_track", "rate", "on_rate", "support",
            "on_support"} <= actions
    # the late cancel: refused over MQTT as the signed on_cancel with the 2.0 error, bound to the request
    assert [(d["context"]["action"], d["error"]["errorCode"]) for d in refusals] == [("on_cancel", "50001")]
    assert refusals[0]["context"]["requestDigest"] == {"digest": request_digest(requests[
        refusals[0]["context"]["messageId"]])}
    answered = [d for d in callbacks if d["context"]["messageId"] in requests]
    assert answered and all(d["context"]["requestDigest"] == {"digest": request_digest(requests[
        d["context"]["messageId"]])} for d in answered)
