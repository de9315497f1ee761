"""The bridge's parts without a broker: what it reads of a message, its directory, the choice
of one relay, its configuration file and the charger's choice of bridges."""
from __future__ import annotations

import asyncio
import json
import time

import pytest

from drivers.configfile import ConfigError
from protocols.bridge import envelope
from protocols.bridge.directory import Directory, bridge_presence, rendezvous
from protocols.bridge.relay import CallbackRelay
from protocols.bridge.settings import load_bridge_config
from protocols.mqtt import framing
from protocols.mqtt.identity import make_identity, memory_agency
from protocols.mqtt.stack import NetworkConfig
from protocols.mqtt.topics import Topics
from protocols.signing.beckn import frame_message, sign_body
from protocols.signing.keys import create_keyring
from tools.cli import main as urja

V2 = {"action": "select", "version": "2.0.0", "networkId": "nfh.global/ev", "bapId": "app.example",
      "bapUri": "https://app.example/beckn", "bppId": "blr-1", "bppUri": "https://bridge-a.example",
      "transactionId": "t-1", "messageId": "m-1", "timestamp": "2026-12-06T06:00:00Z", "ttl": "PT45S"}
V1 = {"action": "select", "version": "1.1.0", "bap_id": "app.example", "bap_uri": "https://app.example/beckn",
      "bpp_id": "blr-1", "transaction_id": "t-1", "message_id": "m-1", "ttl": "PT30S"}


def body(ctx: dict) -> bytes:
    return json.dumps({"context": ctx, "message": {}}).encode()


def test_the_bridge_reads_a_v2_and_a_v1_context_alike():
    for ctx, version, ttl_s in ((V2, "2", 45), (V1, "1", 30)):
        env = envelope.read(body(ctx))
        assert (env.version, env.action, env.bap_id, env.bpp_id, env.transaction_id, env.message_id, env.ttl_s) == \
            (version, "select", "app.example", "blr-1", "t-1", "m-1", ttl_s)
    assert envelope.read(body(V2)).network_id == "nfh.global/ev"


@pytest.mark.parametrize("change, path", [
    ({"bap_id": "x"}, "context.bap_id"),  # 1.1 and 2.0 keys in one context
    ({"transactionId": None}, "context.transactionId"),
    ({"messageId": "a b"}, "context.messageId"),
    ({"action": 7}, "context.action"),
    ({"ttl": "thirty seconds"}, "context.ttl"),
])
def test_a_context_the_bridge_cannot_route_by_is_refused_naming_the_field(change, path):
    ctx = {k: v for k, v in {**V2, **change}.items() if v is not None}
    with pytest.raises(envelope.EnvelopeError) as err:
        envelope.read(body(ctx))
    assert err.value.path == path


@pytest.mark.parametrize("bpp_id", ["urja/v1/inbox/other", "+", "#", "blr-1/../x", ""])
def test_no_bpp_id_can_name_a_topic_other_than_one_charger_inbox(bpp_id):
    with pytest.raises(envelope.EnvelopeError):
        envelope.charger_id(envelope.read(body({**V2, "bppId": bpp_id})))


def test_the_relay_owner_is_stable_and_only_a_departing_bridge_hands_on_its_share():
    bridges = ["bridge-a", "bridge-b", "bridge-c"]
    owners = {t: rendezvous(bridges, t) for t in (f"t-{i}" for i in range(300))}
    assert set(owners.values()) == set(bridges)  # every bridge gets a share
    after = {t: rendezvous(["bridge-a", "bridge-c"], t) for t in owners}
    assert all(after[t] == o for t, o in owners.items() if o != "bridge-b")
    assert rendezvous([], "t-1") is None


def _presence(ident, *, online: bool, bridges=()) -> bytes:
    b = framing.presence_body(subscriber_id=ident.subscriber_id, online=online, now_s=time.time(), lat=12.97,
                              lon=77.59, catalog_topic="urja/v1/catalog/t/d/r/1/w/" + ident.subscriber_id,
                              bridges=bridges)
    return framing.sign_and_frame(b, ident.signer, now_s=time.time(), window_s=60)


def test_the_directory_follows_presence_and_tells_what_to_publish_and_withdraw():
    agency = memory_agency()
    charger = make_identity(agency, "blr-1", lat=12.97, lon=77.59, now_s=time.time())
    told = []
    d = Directory(bridge_id="bridge-a", topics=Topics(), on_change=lambda e, what: told.append((e.charger_id, what)))
    presence_topic = "urja/v1/presence/t/d/r/1/w/blr-1"
    catalog = frame_message(b'{"context":{}}', "Signature x")
    d.handle("urja/v1/catalog/t/d/r/1/w/blr-1", catalog)
    d.handle(presence_topic, _presence(charger, online=True, bridges=("bridge-b",)))
    assert not d.fronts("blr-1") and told == []  # named another bridge: nothing to do here
    d.handle(presence_topic, _presence(charger, online=True, bridges=("bridge-b", "bridge-a")))
    assert d.fronts("blr-1") and d.online("blr-1") and told == [("blr-1", "online")]
    assert d.chargers["blr-1"].catalog == catalog
    d.handle(presence_topic, _presence(charger, online=False, bridges=("bridge-b", "bridge-a")))
    assert told[-1] == ("blr-1", "offline") and not d.online("blr-1")
    d.handle(presence_topic, b"garbage")
    assert d.ignored == 1


def test_the_owner_is_chosen_among_live_bridges_the_charger_names():
    agency = memory_agency()
    charger = make_identity(agency, "blr-1", lat=12.97, lon=77.59, now_s=time.time())
    views = []
    for me in ("bridge-a", "bridge-b"):
        d = Directory(bridge_id=me, topics=Topics())
        d.handle("urja/v1/presence/t/d/r/1/w/blr-1", _presence(charger, online=True, bridges=("bridge-a", "bridge-b")))
        for other in ("bridge-a", "bridge-b", "bridge-c"):
            d.handle(f"urja/v1/bridges/{other}", bridge_presence(bridge_id=other, online=True, url="", now_s=0))
        views.append(d)
    owners = [[d.owner("blr-1", f"t-{i}") for d in views] for i in range(50)]
    assert all(a == b for a, b in owners) and {a for a, _ in owners} == {"bridge-a", "bridge-b"}
    for d in views:  # bridge-b's last will arrives: everything is bridge-a's
        d.handle("urja/v1/bridges/bridge-b", bridge_presence(bridge_id="bridge-b", online=False, url="", now_s=0))
    assert views[0].owner("blr-1", "t-1") == "bridge-a"


async def test_a_callback_signed_by_anyone_but_the_charger_it_names_is_not_relayed():
    agency = memory_agency()
    charger = make_identity(agency, "blr-1", lat=12.97, lon=77.59, now_s=time.time())
    intruder = make_identity(agency, "intruder", lat=12.97, lon=77.59, now_s=time.time())
    d = Directory(bridge_id="bridge-a", topics=Topics())
    d.handle("urja/v1/presence/t/d/r/1/w/blr-1", _presence(charger, online=True, bridges=("bridge-a",)))
    stats = {}
    relay = CallbackRelay(directory=d, session=lambda: None, stats=stats)
    b = body({**V2, "action": "on_select"})
    now = int(time.time())
    relay.take(frame_message(b, sign_body(b, intruder.signer, created_s=now, expires_s=now + 60)))
    assert stats == {"relay_refused": 1} and not relay.tasks
    native = body({**V2, "action": "on_select", "bapUri": "mqtt://network/urja/v1/inbox/app.example"})
    relay.take(frame_message(native, sign_body(native, charger.signer, created_s=now, expires_s=now + 60)))
    assert stats == {"relay_refused": 1} and not relay.tasks  # a buyer on MQTT has it from the broker


def _bridge_file(tmp_path, text: str):
    path = tmp_path / "bridge.toml"
    path.write_text(text)
    return path


GOOD = ('[bridge]\nid = "bridge-a"\npublic_url = "https://bridge-a.example"\nkey_dir = "keys"\n'
        'listen = "127.0.0.1:8080"\n\n[network]\nbrokers = ["mqtt://127.0.0.1:1883"]\n')


def test_a_bridge_file_is_read_and_its_mistakes_are_named(tmp_path):
    settings = load_bridge_config(_bridge_file(tmp_path, GOOD))
    assert (settings.bridge_id, settings.listen_port, settings.max_body_bytes) == ("bridge-a", 8080, 65536)
    assert settings.key_dir == str(tmp_path / "keys") and settings.network.brokers == ("mqtt://127.0.0.1:1883",)
    for bad, key in ((GOOD.replace('id = "bridge-a"', 'id = "a/b"'), "bridge.id"),
                     (GOOD.replace("127.0.0.1:8080", "8080"), "bridge.listen"),
                     (GOOD.replace('public_url = "https://', 'public_url = "ftp://'), "bridge.public_url"),
                     (GOOD + "colour = 1\n", "network.colour"),
                     (GOOD.replace("[network]", "relay_attemps = 3\n[network]"), "bridge.relay_attemps")):
        with pytest.raises(ConfigError) as err:
            load_bridge_config(_bridge_file(tmp_path, bad))
        assert key in str(err.value)


def test_urja_bridge_check_says_one_line_for_a_bad_file_and_passes_a_good_one(tmp_path, capsys):
    path = _bridge_file(tmp_path, GOOD.replace('listen = "127.0.0.1:8080"', 'listen = "nowhere"'))
    assert urja(["bridge", "check", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "bridge.listen" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1
    path = _bridge_file(tmp_path, GOOD)
    create_keyring(tmp_path / "keys", subscriber_id="someone-else", valid_days=2, now_s=time.time())
    assert urja(["bridge", "check", "--config", str(path)]) == 2
    assert "someone-else" in capsys.readouterr().err
    create_keyring(tmp_path / "keys2", subscriber_id="bridge-a", valid_days=2, now_s=time.time())
    path.write_text(GOOD.replace('key_dir = "keys"', 'key_dir = "keys2"'))
    assert urja(["bridge", "check", "--config", str(path)]) == 0


def test_a_charger_names_its_bridges_in_its_network_table():
    assert NetworkConfig.from_table({"bridges": ["bridge-a", "bridge-b"]}).bridges == ("bridge-a", "bridge-b")
    assert NetworkConfig.from_table({}).bridges == ()
    for bad in (["a/b"], ["x", "x"], "bridge-a", [f"b{i}" for i in range(9)]):
        with pytest.raises(ConfigError) as err:
            NetworkConfig.from_table({"bridges": bad})
        assert "network.bridges" in str(err.value)


def test_a_charger_names_the_url_buyers_reach_it_at_through_its_bridges_only_beside_them():
    cfg = NetworkConfig.from_table({"bridges": ["bridge-a"], "bridge_url": "https://bridge-a.example/"})
    assert cfg.bridge_url == "https://bridge-a.example"
    assert NetworkConfig.from_table({"bridges": ["bridge-a"]}).bridge_url is None
    for table, problem in (({"bridge_url": "https://bridge-a.example"}, "needs bridges"),
                           ({"bridges": ["bridge-a"], "bridge_url": "mqtt://broker"}, "not an http(s) URL"),
                           ({"bridges": ["bridge-a"], "bridge_url": "https://a b"}, "not an http(s) URL")):
        with pytest.raises(ConfigError) as err:
            NetworkConfig.from_table(table)
        assert "network.bridge_url" in str(err.value) and problem in str(err.value)


def _discover(spatial) -> bytes:
    return json.dumps({"context": {**V2, "action": "discover"}, "message": {"intent": {"spatial": spatial}}}).encode()


def test_a_v2_discover_names_its_area_as_a_point_and_a_distance():
    point = {"op": "S_DWITHIN", "targets": "$['provider']['availableAt'][*]['geo']",
             "geometry": {"type": "Point", "coordinates": [77.621, 12.9401]}, "distanceMeters": 2000}
    assert envelope.discover_circle(_discover([point])) == (12.9401, 77.621, 2.0)
    for bad in ([], [{**point, "op": "S_INTERSECTS"}], [{**point, "distanceMeters": -1}],
                [{**point, "geometry": {"type": "Point", "coordinates": [12.9, 95.0]}}], "here",
                [{**point, "geometry": {"type": "Point", "coordinates": ["77", 12]}}]):
        with pytest.raises(envelope.EnvelopeError) as err:
            envelope.discover_circle(_discover(bad))
        assert err.value.path.startswith("message.intent.spatial")


def test_a_frame_made_by_the_bridge_is_the_frame_a_charger_reads():
    b = body(V2)
    with_cert = frame_message(b, "Signature a", None, certificate=envelope.certificate_header("eyJhIjoxfQ=="))
    assert with_cert == b"Authorization: Signature a\nUrja-Agency-Certificate: eyJhIjoxfQ==\n\n" + b
    with pytest.raises(envelope.EnvelopeError):
        envelope.certificate_header("not base64!\nAuthorization: x")


async def test_a_callback_is_retried_while_the_buyer_is_down_and_not_after_the_buyer_refuses_it():
    from aiohttp import ClientSession, web

    from protocols.http.serve import serve

    answers = {"/on_select": [503, 200], "/on_init": [400, 200]}
    seen = []

    async def handle(request):
        seen.append(request.path)
        return web.json_response({}, status=answers[request.path].pop(0))
    app = web.Application()
    for path in answers:
        app.router.add_post(path, handle)
    runner, port = await serve(app, "127.0.0.1", 0)
    agency = memory_agency()
    charger = make_identity(agency, "blr-1", lat=12.97, lon=77.59, now_s=time.time())
    d = Directory(bridge_id="bridge-a", topics=Topics())
    d.handle("urja/v1/presence/t/d/r/1/w/blr-1", _presence(charger, online=True, bridges=("bridge-a",)))
    stats = {}
    async with ClientSession() as session:
        relay = CallbackRelay(directory=d, session=lambda: session, stats=stats, retry_initial_s=0.01, attempts=3)
        now = int(time.time())
        for action, uri in (("on_select", f"http://127.0.0.1:{port}"), ("on_init", f"http://127.0.0.1:{port}"),
                            ("on_status", "http://127.0.0.1:9")):
            b = body({**V2, "action": action, "bapUri": uri, "messageId": f"m-{action}"})
            relay.take(frame_message(b, sign_body(b, charger.signer, created_s=now, expires_s=now + 60)))
        relay.take(frame_message(b, sign_body(b, charger.signer, created_s=now, expires_s=now + 60)))
        await asyncio.gather(*relay.tasks)
    await runner.cleanup()
    assert sorted(seen) == ["/on_init", "/on_select", "/on_select"]  # 503 retried, 400 not
    assert stats["relayed"] == 1 and stats["relay_refused_by_buyer"] == 1 and stats["relay_failed"] == 1
    assert stats["relay_duplicates"] == 1  # the same callback heard twice (QoS 1) is sent once
