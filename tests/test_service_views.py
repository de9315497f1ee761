"""The facade's snapshots: built by keyword, refusing names they do not have."""
from __future__ import annotations

import pytest

from agent.service import ConnectorView, SessionView


def test_a_misspelt_field_is_refused_where_the_view_is_built():
    with pytest.raises(TypeError, match="sesion_id"):
        SessionView(sesion_id="S1")
    with pytest.raises(TypeError, match="staus"):
        ConnectorView(connector_id="1", staus="AVAILABLE")


def test_a_field_that_does_not_exist_cannot_be_set_afterwards():
    view = ConnectorView(connector_id="1")
    with pytest.raises(AttributeError):
        view.stauts = "CHARGING"


def test_fields_are_keyword_only_and_default_to_none():
    with pytest.raises(TypeError):
        SessionView("S1")
    view = SessionView(session_id="S1", energy_wh=1200)
    assert view.status is None and view.cost is None and view.periods is None
    assert repr(view) == "SessionView(S1, None, 1200 Wh)"
    assert repr(ConnectorView(connector_id="1", status="AVAILABLE")) == "ConnectorView(1, AVAILABLE)"


def test_as_dict_keeps_every_field_in_order_with_the_cost_last():
    d = SessionView(session_id="S1").as_dict()
    assert list(d)[:3] == ["session_id", "connector_id", "evse_uid"] and list(d)[-1] == "cost"
    assert "periods" not in d and d["cost"] is None and len(d) == 25
    c = ConnectorView(connector_id="1", pilot_state="C").as_dict()
    assert list(c)[0] == "connector_id" and c["pilot_state"] == "C" and len(c) == 14


def test_views_compare_by_identity_and_stay_hashable():
    a, b = ConnectorView(connector_id="1"), ConnectorView(connector_id="1")
    assert a != b and a == a and len({a, b}) == 2


def test_a_receipt_event_is_typed_and_still_unpacks():
    import pytest

    from agent.service import ReceiptSigned

    event = ReceiptSigned("S1", {"receipt_id": "rcpt-S1"})
    sid, receipt = event
    assert (sid, receipt["receipt_id"]) == ("S1", "rcpt-S1") and event.session_id == "S1"
    with pytest.raises(TypeError):
        ReceiptSigned(sesion_id="S1", receipt={})
