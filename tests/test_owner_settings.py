"""The ``[owner_page]`` table is checked when the configuration is loaded, with errors naming the key."""
from __future__ import annotations

import pytest

from drivers.configfile import ConfigError
from protocols.owner.binding import parse_table


@pytest.mark.parametrize(("table", "message"), [
    ({"listen": "80"}, "owner_page.listen: not host:port: '80'"),
    ({"listen": "0.0.0.0:99999"}, "owner_page.listen: not host:port"),
    ({"mdns_name": "My Shop"}, "owner_page.mdns_name: not a host name: 'My Shop'"),
    ({"language": "fr"}, "owner_page.language"),
    ({"tls_cert": "page.crt"}, "owner_page.tls_key: tls_cert and tls_key go together"),
    ({"tls_cert": "missing.crt", "tls_key": "missing.key"}, "owner_page.tls_cert: file not found"),
    ({"session_hours": 0}, "owner_page.session_hours"),
    ({"colour": "green"}, "owner_page.colour"),
])
def test_a_bad_owner_page_table_is_refused_naming_the_key(tmp_path, table, message):
    with pytest.raises(ConfigError) as info:
        parse_table(table, tmp_path / "urja.toml")
    assert message in str(info.value) and str(tmp_path / "urja.toml") in str(info.value)


def test_paths_are_relative_to_the_configuration_file(tmp_path):
    settings = parse_table({"listen": "127.0.0.1:8080", "access_file": "secret/access.json"}, tmp_path / "urja.toml")
    assert settings.access_file == tmp_path / "secret" / "access.json"
    assert (settings.host, settings.port, settings.mdns, settings.language) == ("127.0.0.1", 8080, True, "en")
