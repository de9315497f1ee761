"""The MQTT transport against a real mosquitto: both protocol versions, retained messages, the
last will, TLS with a CA made here plus username/password, failover and reconnect."""
from __future__ import annotations

import asyncio
import logging
import random
import socket

import pytest

from protocols.mqtt.transport import BrokerAddress, MqttSettings, MqttTransport, TransportError
from tests.mqtt_broker import MOSQUITTO, Broker, free_port, make_tls_files

pytestmark = pytest.mark.skipif(MOSQUITTO is None, reason="mosquitto is not installed (apt install mosquitto)")


class Inbox:
    """Collects (topic, payload, retained) and lets a test wait for a condition without sleeping."""

    def __init__(self):
        self.items = []
        self._changed = asyncio.Event()

    def __call__(self, topic, payload, retained):
        self.items.append((topic, payload, retained))
        self._changed.set()

    async def wait(self, predicate, timeout_s=5.0):
        async def loop():
            while not predicate(self.items):
                self._changed.clear()
                await self._changed.wait()
        await asyncio.wait_for(loop(), timeout_s)
        return self.items


@pytest.fixture
def broker(tmp_path):
    with Broker(tmp_path) as b:
        yield b


def settings(*urls, client_id, **kw):
    kw.setdefault("backoff_initial_s", 0.05)
    kw.setdefault("backoff_max_s", 0.2)
    return MqttSettings(brokers=tuple(urls), client_id=client_id, **kw)


@pytest.mark.parametrize("protocol", ["3.1.1", "5"])
async def test_publish_subscribe_round_trip_keeps_exact_bytes(broker, protocol):
    inbox = Inbox()
    payload = b"Authorization: Signature x\n\n{\"a\": \"\\u00e9\", \"b\": 1}\x00\xff"
    async with MqttTransport(settings(broker.url, client_id=f"sub-{protocol}", protocol=protocol),
                             on_message=inbox) as sub, \
            MqttTransport(settings(broker.url, client_id=f"pub-{protocol}", protocol=protocol)) as pub:
        sub.subscribe("urja/v1/test/+")
        await sub.wait_connected(5)
        await pub.wait_connected(5)
        # the subscription is in flight; a retained message makes the test independent of SUBACK timing
        await pub.publish("urja/v1/test/x", payload, qos=1, retain=True, expiry_s=60)
        items = await inbox.wait(lambda it: it)
    assert items[0][0] == "urja/v1/test/x"
    assert items[0][1] == payload


async def test_retained_message_and_last_will_on_killed_connection(broker):
    watcher_inbox = Inbox()
    dying = MqttTransport(settings(broker.url, client_id="dying"))
    dying.set_will("urja/v1/presence/x/charger-1", b"offline", qos=1, retain=True)
    await dying.start()
    try:
        await dying.wait_connected(5)
        await dying.publish("urja/v1/presence/x/charger-1", b"online", retain=True)
        async with MqttTransport(settings(broker.url, client_id="watcher"), on_message=watcher_inbox) as watcher:
            watcher.subscribe("urja/v1/presence/#")
            await watcher_inbox.wait(lambda it: (("urja/v1/presence/x/charger-1", b"online", True) in it))
            # kill the TCP connection without an MQTT DISCONNECT: the broker must publish the will
            dying._client.socket().shutdown(2)
            await watcher_inbox.wait(lambda it: any(p == b"offline" for _, p, _ in it))
    finally:
        await dying.close()
    # a newcomer sees the will as the retained state
    late = Inbox()
    async with MqttTransport(settings(broker.url, client_id="late"), on_message=late) as t:
        t.subscribe("urja/v1/presence/#")
        await late.wait(lambda it: it)
    assert late.items[0][1:] == (b"offline", True)


async def test_clean_close_does_not_fire_the_will(broker):
    t = MqttTransport(settings(broker.url, client_id="polite"))
    t.set_will("urja/v1/presence/x/polite", b"offline", retain=True)
    await t.start()
    await t.wait_connected(5)
    await t.publish("urja/v1/presence/x/polite", b"online", retain=True)
    await t.close()
    late = Inbox()
    async with MqttTransport(settings(broker.url, client_id="late2"), on_message=late) as w:
        w.subscribe("urja/v1/presence/x/polite")
        await late.wait(lambda it: it)
    assert late.items[0][1] == b"online"


async def test_tls_with_generated_ca_and_password(tmp_path):
    tls = make_tls_files(tmp_path / "pki")
    with Broker(tmp_path, tls={k: str(v) for k, v in tls.items()}, passwords={"charger": "s3cret"}) as b:
        good = settings(b.url, client_id="tls-ok", ca_file=str(tls["ca"]), username="charger", password="s3cret")
        inbox = Inbox()
        async with MqttTransport(good, on_message=inbox) as t:
            t.subscribe("urja/v1/tls")
            await t.wait_connected(5)
            await t.publish("urja/v1/tls", b"over tls", retain=True)
            await inbox.wait(lambda it: it)
        # wrong password: refused, never connected
        bad = MqttTransport(settings(b.url, client_id="tls-bad", ca_file=str(tls["ca"]), username="charger",
                                     password="wrong"))
        await bad.start()
        await asyncio.wait_for(bad.failed.wait(), 10)
        assert not bad.connected.is_set()
        assert "refused" in bad.last_error or "not authorized" in bad.last_error.lower()
        await bad.close()
        # a server certificate not signed by our CA: refused by verification
        other = make_tls_files(tmp_path / "other")
        untrusted = MqttTransport(settings(b.url, client_id="tls-untrusted", ca_file=str(other["ca"]),
                                           username="charger", password="s3cret"))
        await untrusted.start()
        await asyncio.wait_for(untrusted.failed.wait(), 10)
        assert not untrusted.connected.is_set()
        assert "certificate" in untrusted.last_error.lower()
        await untrusted.close()


async def test_failover_to_second_broker_when_first_is_down(broker):
    dead = f"mqtt://127.0.0.1:{free_port()}"
    t = MqttTransport(settings(dead, broker.url, client_id="failover"), rng=random.Random(1))
    async with t:
        await t.wait_connected(5)
        assert t.broker == BrokerAddress.parse(broker.url)
        assert t.failures >= 1


async def test_reconnects_after_broker_restart_and_renews_subscriptions(broker):
    inbox = Inbox()
    async with MqttTransport(settings(broker.url, client_id="survivor"), on_message=inbox) as t:
        t.subscribe("urja/v1/after")
        await t.wait_connected(5)
        broker.stop()
        await asyncio.wait_for(t._lost.wait(), 5)
        broker.start()
        await t.wait_connected(10)
        async with MqttTransport(settings(broker.url, client_id="later")) as p:
            await p.wait_connected(5)
            await p.publish("urja/v1/after", b"hello again", retain=True)
        await inbox.wait(lambda it: it)
    assert t.connections == 2


async def test_losing_and_regaining_the_broker_is_logged(broker, caplog):
    caplog.set_level(logging.INFO, logger="urja.mqtt")
    async with MqttTransport(settings(broker.url, client_id="told")) as t:
        await t.wait_connected(5)
        broker.stop()
        await asyncio.wait_for(t._lost.wait(), 5)
        await asyncio.wait_for(t.failed.wait(), 10)
        broker.start()
        await t.wait_connected(10)
    lines = [r.getMessage() for r in caplog.records if r.name == "urja.mqtt"]
    url = BrokerAddress.parse(broker.url).url()
    assert lines[0] == f"mqtt told: connected to {url}"
    assert any(line.startswith(f"mqtt told: lost the broker {url}") for line in lines)
    assert any(line.startswith("mqtt told: no broker:") for line in lines)
    assert lines[-1].startswith(f"mqtt told: connected to {url} after ")


def test_settings_refuse_bad_values():
    with pytest.raises(TransportError, match="scheme"):
        MqttSettings(brokers=("http://x",), client_id="a")
    with pytest.raises(TransportError, match="protocol"):
        MqttSettings(brokers=("mqtt://x",), client_id="a", protocol="4")
    with pytest.raises(TransportError, match="brokers"):
        MqttSettings(brokers="mqtt://x", client_id="a")
    assert BrokerAddress.parse("mqtts://h").port == 8883


async def test_burst_of_qos1_messages_flows_without_nagle_stalls(broker):
    """Many small QoS 1 messages to one subscriber: every PUBACK leaves at once (no Nagle), and
    writes queued in one turn of the loop go out together."""
    inbox = Inbox()
    async with MqttTransport(settings(broker.url, client_id="burst-sub"), on_message=inbox) as sub, \
            MqttTransport(settings(broker.url, client_id="burst-pub")) as pub:
        sub.subscribe("urja/v1/burst")
        await sub.wait_connected(5)
        await pub.wait_connected(5)
        for t in (sub, pub):
            assert t._client.socket().getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        await pub.publish("urja/v1/burst", b"first", qos=1, retain=True, expiry_s=60)
        await inbox.wait(lambda it: it)
        mids = [pub.publish_nowait("urja/v1/burst", f"m{i}".encode(), qos=1) for i in range(200)]
        assert len(set(mids)) == 200
        items = await inbox.wait(lambda it: len(it) >= 201)
        assert [p for _, p, _ in items[1:]] == [f"m{i}".encode() for i in range(200)]
        await pub.publish("urja/v1/burst", b"", qos=1, retain=True)  # clear the retained message


def test_settings_reprs_hold_no_password():
    from protocols.mqtt.stack import NetworkConfig
    from protocols.ocpi.store import Party

    settings = MqttSettings(brokers=("mqtt://127.0.0.1:1883",), client_id="c", username="u", password="s3cret")
    config = NetworkConfig(username="u", password="s3cret")
    party = Party(pk=1, state="registered", versions_url="http://x", outgoing_token="s3cret", version="2.2.1")
    for obj in (settings, config, party):
        assert "s3cret" not in repr(obj)
    assert config.mqtt_settings(client_id="c").password == "s3cret"


def test_a_password_in_a_broker_url_is_refused_without_echoing_it():
    from protocols.mqtt.transport import BrokerAddress, TransportError

    try:
        BrokerAddress.parse("mqtts://owner:s3cret@broker.example:8883")
    except TransportError as exc:
        assert "s3cret" not in str(exc) and "password" in str(exc)
    else:
        raise AssertionError("credentials in the URL were accepted")


def test_a_misspelt_network_key_is_named_not_ignored():
    from types import SimpleNamespace

    from drivers.configfile import ConfigError
    from protocols.beckn.bpp import Policy
    from protocols.mqtt.stack import NetworkConfig

    table = {"brokers": ["mqtt://broker.example:1883"], "payment": "postpaid_certified"}
    assert NetworkConfig.from_table(table, "/etc/urja/urja.toml").brokers == ("mqtt://broker.example:1883",)
    site = SimpleNamespace(extra={"network": table}, path="/etc/urja/urja.toml")
    assert Policy.from_site(site).payment == "postpaid_certified"
    for typo in ({"broker": ["mqtt://broker.example:1883"]}, {"paymnet": "prepaid"}):
        with pytest.raises(ConfigError) as info:
            NetworkConfig.from_table(typo, "/etc/urja/urja.toml")
        assert info.value.key == f"network.{next(iter(typo))}" and "unknown key" in str(info.value)
        with pytest.raises(ConfigError) as info:
            Policy.from_site(SimpleNamespace(extra={"network": typo}, path="/etc/urja/urja.toml"))
        assert info.value.key == f"network.{next(iter(typo))}"


def test_a_registry_url_is_checked():
    from drivers.configfile import ConfigError
    from protocols.mqtt.stack import NetworkConfig

    assert NetworkConfig.from_table({"registry_url": "https://registry.example"}).registry_url == \
        "https://registry.example"
    with pytest.raises(ConfigError) as info:
        NetworkConfig.from_table({"registry_url": "registry.example"}, "/etc/urja/urja.toml")
    assert info.value.key == "network.registry_url"
