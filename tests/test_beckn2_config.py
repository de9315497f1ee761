"""Choosing the protocol in the site's files: checked when the configuration is read, one line
naming file, key and the allowed values; absent means 1.1 (an existing site keeps what it spoke)."""
from __future__ import annotations

import pytest

from drivers.configfile import ConfigError
from protocols.beckn.policy import Policy
from protocols.http.binding import parse_table
from protocols.mqtt.stack import NetworkConfig


def test_the_profile_and_network_id_are_read_from_the_network_table():
    cfg = NetworkConfig.from_table({"profile": "beckn-2.0", "network_id": "acmenet.org/charge-net@dedi.example"},
                                   "urja.toml")
    assert cfg.policy.profile == "beckn-2.0" and cfg.policy.network_id == "acmenet.org/charge-net@dedi.example"
    assert NetworkConfig.from_table({}, "urja.toml").policy == Policy()
    assert Policy().profile == "beckn-1.1"


@pytest.mark.parametrize("table, key, allowed", [
    ({"profile": "beckn-3.0"}, "network.profile", "beckn-1.1"),
    ({"network_id": "no-registry"}, "network.network_id", "{namespace}/{registry}"),
])
def test_a_wrong_profile_or_network_id_is_refused_naming_the_key(table, key, allowed):
    with pytest.raises(ConfigError) as e:
        NetworkConfig.from_table(table, "urja.toml")
    assert key in str(e.value) and allowed in str(e.value) and "urja.toml" in str(e.value)


def test_an_http_only_site_chooses_its_profile_in_the_http_table(tmp_path):
    assert parse_table({"profile": "beckn-2.0"}, tmp_path / "urja.toml").profile == "beckn-2.0"
    assert parse_table({}, tmp_path / "urja.toml").profile is None
    with pytest.raises(ConfigError) as e:
        parse_table({"profile": "2.0"}, tmp_path / "urja.toml")
    assert "http.profile" in str(e.value)
