"""A bridge's configuration file, and the charger's choice of bridges.

The bridge's file (``urja bridge run --config bridge.toml``)::

    [bridge]
    id = "bridge-a.example.net"        # the subscriber id it signs as (its keyring's)
    public_url = "https://bridge-a.example.net"   # what chargers' catalogs name as bppUri
    key_dir = "keys"                   # made by: urja keygen --key-dir keys --subscriber-id <id>
    listen = "0.0.0.0:8080"
    max_body_kib = 64
    registry_url = "https://registry.example"     # optional: verify buyers' signatures here too
    relay_attempts = 4
    catalog_services = ["https://cds.example.net"]   # Beckn 2.0: where fronted chargers' catalogs go

    [network]                           # the same keys as a charger's [network] table
    brokers = ["mqtts://broker-1.example:8883", "mqtts://broker-2.example:8883"]
    topic_root = "urja/v1"

A charger names the bridges that may front it in its own ``[network]`` table
(``bridges = ["bridge-a.example.net", "bridge-b.example.net"]``); its signed presence carries
the list, and a bridge fronts only chargers whose list names it.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from drivers.configfile import ConfigError, Section, load_toml
from protocols.bridge.fronting import fronting_bridges
from protocols.errors import ProtocolError
from protocols.mqtt.stack import NetworkConfig
from protocols.mqtt.topics import check_subscriber_id


@dataclass(frozen=True, kw_only=True)
class BridgeSettings:
    bridge_id: str
    public_url: str
    key_dir: str | None = None
    listen_host: str = "127.0.0.1"
    listen_port: int = 0
    max_body_bytes: int = 64 * 1024
    registry_url: str | None = None
    relay_attempts: int = 4
    clock_skew_s: int = 30
    catalog_services: tuple[str, ...] = ()
    network: NetworkConfig = NetworkConfig()


def _listen(sec: Section) -> tuple[str, int]:
    text = sec.str("listen", "127.0.0.1:8080")
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or not 0 <= int(port) <= 65535:
        raise sec.error("listen", f"{text!r} is not host:port", "0.0.0.0:8080")
    return host, int(port)


def load_bridge_config(path: str | Path) -> BridgeSettings:
    """Read and check a bridge's file; ``ConfigError`` names file, key and what is allowed."""
    data = load_toml(path)
    top = Section(data, path)
    sec = top.section("bridge", required=True)
    try:
        bridge_id = check_subscriber_id(sec.str("id"))
    except ProtocolError as exc:
        raise sec.error("id", str(exc)) from None
    host, port = _listen(sec)
    key_dir = sec.str("key_dir")
    key_path = Path(key_dir) if Path(key_dir).is_absolute() else Path(path).parent / key_dir
    public_url = sec.str("public_url")
    if not public_url.startswith(("http://", "https://")):
        raise sec.error("public_url", f"{public_url!r} is not an http(s) URL", "https://bridge.example.net")
    registry = sec.str("registry_url", None)
    if registry is not None and not registry.startswith(("http://", "https://")):
        raise sec.error("registry_url", f"{registry!r} is not an http(s) URL", "https://registry.example")
    services = sec.list("catalog_services", [])
    if len(services) > 8 or not all(isinstance(u, str) and u.startswith(("http://", "https://")) for u in services):
        raise sec.error("catalog_services", "must be a list of at most 8 http(s) URLs", '["https://cds.example.net"]')
    settings = BridgeSettings(
        bridge_id=bridge_id, public_url=public_url.rstrip("/"), key_dir=str(key_path), listen_host=host,
        listen_port=port, max_body_bytes=sec.int("max_body_kib", 64, min=1, max=1024) * 1024,
        registry_url=registry, relay_attempts=sec.int("relay_attempts", 4, min=1, max=20),
        clock_skew_s=sec.int("clock_skew_s", 30, min=0, max=600),
        catalog_services=tuple(u.rstrip("/") for u in services),
        network=NetworkConfig.from_table(data.get("network"), path))
    sec.finish()
    top.known("network")
    top.finish()
    return settings


__all__ = ["BridgeSettings", "ConfigError", "fronting_bridges", "load_bridge_config"]
