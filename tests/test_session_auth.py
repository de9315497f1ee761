"""Every grant source yields the same Authorization; bad grants are refused by name."""
from __future__ import annotations

import itertools

import pytest

from agent.core.auth import AuthError, Authorization, Authorizer


def make(**kwargs):
    counter = itertools.count(1)
    return Authorizer(new_id=lambda: "auth-%d" % next(counter), **kwargs)


def test_sources_share_one_shape():
    authorizer = make(allow_list={"card-1": {"energy_limit_wh": 5000}, "card-2": None})
    grants = [authorizer.from_contract("order-1", money_limit_paise=50_000),
              authorizer.from_ocpi("TOKEN", departure_ms=9_000_000),
              authorizer.from_local_token("card-1"),
              authorizer.from_local_token("card-2")]
    assert [g.source for g in grants] == ["contract", "ocpi", "allow_list", "allow_list"]
    assert [g.auth_id for g in grants] == ["auth-1", "auth-2", "auth-3", "auth-4"]
    assert grants[0].limits()["money_limit_paise"] == 50_000
    assert grants[2].energy_limit_wh == 5000 and grants[3].energy_limit_wh is None


def test_unknown_token_is_refused():
    with pytest.raises(AuthError) as info:
        make(allow_list={"card-1": None}).from_local_token("card-2")
    assert info.value.code == "auth-token-unknown"


def test_free_vend_switch_and_limits():
    authorizer = make(free_vend_limits={"time_limit_ms": 3_600_000})
    assert authorizer.from_free_vend() is None
    authorizer.set_free_vend(True)
    grant = authorizer.from_free_vend()
    assert grant.source == "free_vend" and grant.time_limit_ms == 3_600_000


@pytest.mark.parametrize("kwargs,field", [
    ({"energy_limit_wh": 0}, "energy_limit_wh"),
    ({"money_limit_paise": 1.5}, "money_limit_paise"),
    ({"time_limit_ms": True}, "time_limit_ms"),
    ({"source": "cash"}, "source"),
    ({"auth_id": ""}, "auth_id"),
])
def test_bad_authorization_fields_are_named(kwargs, field):
    values = {"auth_id": "a", "source": "contract"}
    values.update(kwargs)
    with pytest.raises(AuthError) as info:
        Authorization(**values)
    assert info.value.details["field"] == field and field in str(info.value)


def test_bad_allow_list_is_reported_at_load():
    with pytest.raises(AuthError, match="energy_limit_wh"):
        make(allow_list={"card-1": {"energy_limit_wh": -5}})
    with pytest.raises(AuthError, match="unknown limit 'kwh'"):
        make(allow_list={"card-1": {"kwh": 5}})
