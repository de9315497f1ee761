"""Beckn messages: what we build validates against transaction.yaml, what we read is read strictly."""
from __future__ import annotations

import json

import pytest
from test_beckn_fakes import NOW_S, SPECS, schema_errors

from protocols.beckn import messages as m
from protocols.beckn.errors import BecknError

EXAMPLES = SPECS / "deg-ev-charging-v1" / "examples"
CERT = {"subscriber_id": "bap.test", "type": "BAP", "signature": {"alg": "ed25519", "key_id": "a|b", "value": "x"}}


def ctx(action="select", **kw):
    values = dict(action=action, bap_id="bap.test", bap_uri="https://bap.test/beckn",
                  transaction_id="6743e9e2-4fb5-487c-92b7-13ba8018f176",
                  message_id="6743e9e2-4fb5-487c-92b7-13ba8018f177", timestamp_s=NOW_S,
                  bpp_id="in.test.charger", bpp_uri="https://charger.test/beckn")
    values.update(kw)
    return m.new_context(**values)


def buyer_messages():
    c = ctx()
    return [
        m.search(ctx("search", bpp_id=None, bpp_uri=None), gps=(12.9352, 77.6245), radius_m=5000,
                 connector_type="IEC_62196_T2", min_power_w=7000, max_price_paise_per_kwh=2500,
                 start_s=NOW_S, end_s=NOW_S + 3600, energy_wh=4000),
        m.select(c, provider_id="in.test.charger", fulfillment_id="1", energy_wh=4000, start_s=NOW_S + 7200),
        m.select(c, provider_id="in.test.charger", budget_paise=25000),
        m.select(c, provider_id="in.test.charger", duration_s=1800, certificate=CERT),
        m.init(c, provider_id="in.test.charger", energy_wh=4000,
               billing={"name": "Ravi", "email": "ravi@example.in", "phone": "+91-98"}),
        m.confirm(c, provider_id="in.test.charger", energy_wh=4000, amount_paise=8496, payment_ref="UPI123"),
        m.update(c, order_id="o-1", command=m.START_CHARGING, fulfillment_id="1"),
        m.update(c, order_id="o-1", command=m.END_CHARGING),
        m.status(c, order_id="o-1"), m.track(c, order_id="o-1"),
        m.cancel(c, order_id="o-1", reason_text="plans changed"),
        m.rating(c, ref_id="o-1", value=5), m.support(c, ref_id="o-1", phone="+91-98"),
    ]


@pytest.mark.parametrize("index", range(13))
def test_buyer_messages_validate_and_parse_back(index):
    doc = buyer_messages()[index]
    action = doc["context"]["action"]
    assert schema_errors(doc) == []
    req = m.parse_request(json.loads(m.encode(doc)), action=action)
    assert req.context.message_id == doc["context"]["message_id"]


def test_parse_reads_what_was_asked():
    c = ctx()
    ask = m.parse_request(m.select(c, provider_id="p", fulfillment_id="1", energy_wh=4500, start_s=NOW_S + 60),
                          action="select").body
    assert (ask.energy_wh, ask.fulfillment_id, ask.start_s) == (4500, "1", NOW_S + 60)
    assert m.parse_request(m.select(c, provider_id="p", budget_paise=12345), action="select").body.budget_paise == 12345
    assert m.parse_request(m.select(c, provider_id="p", duration_s=1800), action="select").body.duration_s == 1800
    req = m.parse_request(m.select(c, provider_id="p", energy_wh=1, certificate=CERT), action="select")
    assert req.certificate == CERT
    pay = m.parse_request(m.confirm(c, provider_id="p", energy_wh=1000, amount_paise=2124, payment_ref="R"),
                          action="confirm").body.payment
    assert (pay.status, pay.amount_paise, pay.reference) == ("PAID", 2124, "R")
    s = m.parse_request(buyer_messages()[0], action="search").body
    assert s.radius_m == 5000 and s.min_power_w == 7000 and s.max_price_paise_per_kwh == 2500
    assert s.gps == (12.9352, 77.6245) and s.connector_type == "IEC_62196_T2" and s.energy_wh == 4000


@pytest.mark.parametrize("name", ["search/search-request.json", "select/select-request.json",
                                  "init/init-request.json", "confirm/confirm-request.json",
                                  "update/update-request-charging-start.json",
                                  "update/update-request-charging-end.json", "status/status-request.json",
                                  "cancel/cancel-request.json", "support/support-request.json"])
def test_deg_example_requests_are_accepted(name):
    path = EXAMPLES / name
    if not path.exists():
        pytest.skip(f"DEG examples not found at {EXAMPLES}")
    doc = json.loads(path.read_text())
    assert schema_errors(doc) == []
    req = m.parse_request(doc, action=doc["context"]["action"])
    assert req.context.bap_id == "example-bap.com"


def test_deg_rating_example_is_refused_for_its_enum_error():
    path = EXAMPLES / "rating" / "rating-request.json"
    if not path.exists():
        pytest.skip("DEG examples not found")
    doc = json.loads(path.read_text())
    assert schema_errors(doc)  # the known upstream error: category "charger"
    with pytest.raises(BecknError) as e:
        m.parse_request(doc, action="rating")
    assert e.value.path == "message.ratings[0].rating_category" and e.value.code == "50003"


@pytest.mark.parametrize("mutate, path", [
    (lambda d: d["context"].pop("bap_uri"), "context.bap_uri"),
    (lambda d: d["context"].update(domain="other:domain"), "context.domain"),
    (lambda d: d["context"].update(action="init"), "context.action"),
    (lambda d: d["context"].update(timestamp="yesterday"), "context.timestamp"),
    (lambda d: d["context"].update(ttl="30 seconds"), "context.ttl"),
    (lambda d: d["message"]["order"]["items"][0]["quantity"]["selected"]["measure"].update(value="4.0001"),
     "message.order.items[0].quantity.selected.measure.value"),
    (lambda d: d["message"]["order"]["items"][0]["quantity"]["selected"]["measure"].update(unit="gallon"),
     "message.order.items[0].quantity.selected.measure.unit"),
    (lambda d: d["message"]["order"].update(items=[]), "message.order.items"),
    (lambda d: d["message"]["order"]["provider"].update(id=7), "message.order.provider.id"),
    (lambda d: d["message"].update(order="x"), "message.order"),
])
def test_parse_errors_name_the_path(mutate, path):
    doc = m.select(ctx(), provider_id="p", energy_wh=4000)
    mutate(doc)
    with pytest.raises(BecknError) as e:
        m.parse_request(doc, action="select")
    assert e.value.path == path, str(e.value)


def test_decode_refuses_duplicates_nan_and_size():
    for body in (b'{"a":1,"a":2}', b'{"a":NaN}', b"[1]", b"\xff"):
        with pytest.raises(BecknError):
            m.decode(body)
    with pytest.raises(BecknError) as e:
        m.decode(b"{" + b" " * 70000 + b"}")
    assert e.value.kind == "oversized" and e.value.http_status == 413


def test_numbers_are_exact():
    assert m.money_text(8496) == "84.96" and m.parse_money("84.96", "p") == 8496
    assert m.energy_text(4000) == "4" and m.energy_text(4500) == "4.5" and m.energy_text(125) == "0.125"
    assert m.parse_duration("PT30S", "t") == 30 and m.parse_duration("P1DT1H", "t") == 90000
    with pytest.raises(BecknError):
        m.parse_money("1.005", "p")
    assert abs(m.distance_m((12.9352, 77.6245), (12.9352, 77.6345)) - 1084) < 5


def test_signed_documents_survive_reserialisation():
    doc = {"tags": [m.signed_tag(m.TAG_QUOTE, {"b": 1, "a": "₹"})]}
    again = json.loads(json.dumps(doc, indent=4, ensure_ascii=True))
    assert m.signed_documents(again, m.TAG_QUOTE) == [{"a": "₹", "b": 1}]


def test_ack_and_nack_validate():
    assert m.ack() == {"message": {"ack": {"status": "ACK"}}}
    n = m.nack("30010", "no such order", "message.order_id")
    assert n["error"] == {"code": "30010", "message": "no such order", "paths": "message.order_id"}
