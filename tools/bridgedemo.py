"""The bridge demo: a buyer on HTTP only buys a charge from a charger nobody can call.

``urja demo --bridge``. Three local mosquitto brokers bridged to each other stand for a broker
cluster; the charger (the real runtime on a simulated board) is connected to one of them and
accepts no inbound connection at all; two bridges (``protocols.bridge.Bridge``) on the other
two brokers serve Beckn over HTTP; the app has no MQTT, only HTTP, and sends its requests to
the two bridges in turn. It finds the charger, buys a charge, follows it and checks the
receipt offline against the agency's key: the charger's signatures reached it byte-exact.

Everything runs in one process on one accelerated clock, as in the network demo, because every
signed message carries its time and a validity window.
"""
from __future__ import annotations

import asyncio
import json
import sys
import time
from pathlib import Path

from tools.netdemo import APP_ID, CHARGERS, USER_PLACE, DemoFailed, Screen, _quiet_logs

BRIDGE_IDS = ("bridge-a.urja-demo.in", "bridge-b.urja-demo.in")
SEARCH_RADIUS_KM = 8.0


class _ScreenSink:
    """The bridges' catalog seam, shown: what would go to the catalog discovery services."""

    def __init__(self, screen: Screen, bridge_id: str):
        self.screen, self.bridge_id = screen, bridge_id

    async def publish(self, charger_id: str, catalog: bytes | None, request: bytes | None) -> None:
        size = len(catalog or request or b"")
        self.screen.line(f"{self.bridge_id}: {charger_id}'s signed catalog ({size} bytes) is current")

    async def withdraw(self, charger_id: str, request: bytes | None) -> None:
        self.screen.line(f"{self.bridge_id}: {charger_id} went offline; its catalog is withdrawn")


async def _joined(urls: list[str], timeout_s: float = 20.0) -> None:
    """Until a message published on the first broker arrives on each of the others."""
    from protocols.mqtt.transport import MqttSettings, MqttTransport

    for i, other in enumerate(urls[1:]):
        got = asyncio.Event()
        topic = f"urja/v1/probe/demo-{i}"
        rx = MqttTransport(MqttSettings(brokers=(other,), client_id=f"demo-probe-rx-{i}"),
                           on_message=lambda t, p, r, got=got: got.set())
        rx.subscribe(topic, 1)
        async with rx, MqttTransport(MqttSettings(brokers=(urls[0],), client_id=f"demo-probe-tx-{i}")) as tx:
            await rx.wait_connected(10)
            await tx.wait_connected(10)
            deadline = time.monotonic() + timeout_s
            while not got.is_set():
                if time.monotonic() > deadline:
                    raise DemoFailed(f"the brokers did not join within {timeout_s:g} s")
                await tx.publish(topic, b"ping", qos=1)
                try:
                    await asyncio.wait_for(got.wait(), 0.2)
                except asyncio.TimeoutError:
                    pass


async def bridge_story(folder: Path, urls: list[str], *, speed: float = 60.0, energy_wh: int = 3000,
                       screen: Screen | None = None) -> Path:  # noqa: C901 - one story, told in order
    """Tell the story on brokers that are up and joined; returns the verified receipt's file."""
    from agent.aio import within
    from agent.bootstrap import open_runtime
    from agent.clock import Clock
    from agent.config import load_config
    from protocols.beckn import messages
    from protocols.bridge.buyer import BridgeRefused, HttpBuyerLink
    from protocols.bridge.server import Bridge
    from protocols.bridge.settings import BridgeSettings
    from protocols.mqtt.stack import NetworkConfig
    from protocols.mqtt.topics import Topics
    from protocols.node.charge import ChargeFlow
    from protocols.node.client import NetworkNode
    from protocols.signing.agency import read_agency_public_key
    from protocols.signing.errors import SignatureError
    from protocols.signing.keys import create_keyring, load_keyring
    from protocols.signing.receipt import verify_receipt
    from tools.provision import ensure_agency, provision_app, provision_site
    from tools.sim_site import SimDriver

    screen = screen or Screen()
    clock = Clock(speed=speed)
    spec = CHARGERS[0]
    hub, east, west = urls
    screen.step("A charger behind NAT: it connects out to one broker and accepts nothing inbound")
    agency_dir = folder / "agency"
    ensure_agency(agency_dir)
    agency_key = read_agency_public_key(agency_dir / "agency.pub")
    fronting = ", ".join(f'"{b}"' for b in BRIDGE_IDS)
    cfg = load_config(provision_site(folder / spec.site_id, site_id=spec.site_id, name=spec.name, lat=spec.lat,
                                     lon=spec.lon, address=spec.address, tariff=spec.tariff, auth="network",
                                     agency_dir=agency_dir, upi_vpa=spec.upi_vpa, broker_url=west,
                                     extra_toml=f"bridges = [{fronting}]\n"))
    screen.line(f"{spec.name} ({spec.site_id}) on {west}; [network] bridges = [{fronting}]")
    app = provision_app(folder / "app", subscriber_id=APP_ID, agency_dir=agency_dir, broker_url=hub)
    bridges = []
    for bridge_id, url in zip(BRIDGE_IDS, (hub, east), strict=True):
        key_dir = folder / bridge_id / "keys"
        keyring = load_keyring(key_dir) if (key_dir / "keyring.json").exists() else \
            create_keyring(key_dir, subscriber_id=bridge_id, valid_days=30, now_s=clock.wall_s())
        settings = BridgeSettings(bridge_id=bridge_id, public_url=f"https://{bridge_id}",
                                  network=NetworkConfig(brokers=(url,)), clock_skew_s=600)
        bridges.append(Bridge(settings=settings, signer_for=keyring.signer, clock=clock.wall_s,
                              sink=_ScreenSink(screen, bridge_id)))

    async with open_runtime(cfg, clock=clock) as rt:
        await rt.bindings["network"].transport.wait_connected(10)
        driver = asyncio.create_task(SimDriver(rt, park_s=0, error=DemoFailed,
                                               tell=lambda text: screen.car(text)).serve(), name="bridge-demo-driver")
        link = None
        try:
            screen.step("Two bridges, anyone's, on two other brokers of the cluster")
            for bridge in bridges:
                port = await bridge.start(connect_timeout_s=10)
                bridge.url = f"http://127.0.0.1:{port}"
                screen.line(f"{bridge.bridge_id}: Beckn over HTTP on {bridge.url}, MQTT "
                            f"{bridge.settings.network.brokers[0]}")
            for bridge in bridges:
                await bridge.until(lambda d: d.fronts(spec.site_id) and d.online(spec.site_id), 20)
            screen.line("both learnt from the charger's retained, signed presence that it may front it")

            screen.step("An app with no MQTT at all: HTTP requests to the bridges, callbacks to its own URL")
            keyring = load_keyring(app.key_dir)
            link = HttpBuyerLink(bridges=[b.url for b in bridges], inbox_topic=Topics().inbox(APP_ID))
            uri = await link.listen()
            node = NetworkNode(transport=link, subscriber_id=APP_ID, signer=keyring.signer(clock.wall_s()),
                               agency_public_key=agency_key, clock=clock.wall_s,
                               certificate=json.loads(app.certificate.read_text()), uri=uri,
                               **_same_protocol(rt))
            where, lat, lon = USER_PLACE
            found = await node.discover(lat, lon, SEARCH_RADIUS_KM, timeout_s=10, expect=1)
            if not found:
                raise DemoFailed(f"the charger did not answer through the bridges ({node.last_rejection})")
            charger = found[0]
            screen.line(f"found {charger.subscriber_id} {charger.distance_km:.1f} km from {where}: identity "
                        f"verified offline (agency -> certificate -> signature), callbacks at {uri}")

            screen.step(f"The app buys {energy_wh / 1000:g} kWh, its requests spread over both bridges")

            def step(action, answer):
                sent = next((a for a in reversed(link.answers) if a[0] == action), None)
                served = sent[3].rsplit("/", 1)[0] if sent else "?"
                bridge_id = next((b.bridge_id for b in bridges if b.url == served), served)
                screen.line(f"{action:<7} via {bridge_id}: on_{action} signed by {answer.sender}")

            flow = ChargeFlow(node, charger.subscriber_id, energy_wh=energy_wh, on_step=step, poll_s=1.0,
                              request_timeout_s=15, receipt_timeout_s=120)
            minutes = energy_wh / 11_040 * 60
            try:
                result = await within(flow.run(), 120 + 3 * minutes * 60 / speed, name="bridge-demo-charge")
            except asyncio.TimeoutError:
                raise DemoFailed(f"the charge did not finish: {flow.result.progress}") from None
            if driver.done() and driver.exception() is not None:
                raise driver.exception()

            screen.step("The receipt, relayed byte-exact, checked offline by the app")
            receipt = result.receipt
            if receipt is None:
                raise DemoFailed("the charger sent no receipt")
            try:
                check = verify_receipt(receipt, agency_public_key=agency_key, require_ocmf=True)
            except SignatureError as exc:
                raise DemoFailed(f"the receipt does NOT verify: {exc}") from None
            screen.line(f"signed by {check.subscriber_id}: {check.energy_wh / 1000:.3f} kWh, total "
                        f"Rs {check.total_paise / 100:.2f}, paid Rs {result.paid_paise / 100:.2f}, refund due "
                        f"Rs {check.refund_due_paise / 100:.2f}")
            relayed = sum(b.stats.get("relayed", 0) for b in bridges)
            screen.line(f"the bridges forwarded {sum(b.stats.get('forwarded', 0) for b in bridges)} requests and "
                        f"relayed {relayed} callbacks, each once; they signed only their Acks")
            path = folder / "receipts" / f"{receipt['receipt_id']}.json"
            path.parent.mkdir(exist_ok=True)
            path.write_text(json.dumps(receipt, indent=2) + "\n")
            screen.line(f"saved to {path}; check it yourself: urja verify {path} --agency-key "
                        f"{agency_dir / 'agency.pub'}")

            screen.step("The charger goes offline: the bridges say so at once")
            await rt.bindings["network"].close()
            for bridge in bridges:
                await bridge.until(lambda d: not d.online(spec.site_id), 20)
            ask = messages.select(node.context("select", transaction_id=node.new_id(), bpp_id=spec.site_id),
                                  provider_id=spec.site_id, energy_wh=energy_wh, certificate=node.certificate)
            started = time.monotonic()
            try:
                await node.request(ask, timeout_s=15)
                raise DemoFailed("a bridge forwarded a request to a charger that is offline")
            except BridgeRefused as exc:
                screen.line(f"select answered in {(time.monotonic() - started) * 1000:.0f} ms: {exc}")
        finally:
            if link is not None:
                await link.close()
            for bridge in bridges:
                await bridge.close()
            from agent.aio import cancel_and_wait

            await cancel_and_wait([driver])
    return path


def _same_protocol(rt) -> dict:
    """The app speaks the charger's protocol profile, where the configuration names one."""
    policy = getattr(rt.site.bindings.get("network"), "policy", None)
    profile = getattr(policy, "profile", None)
    return {} if profile is None else {"profile": profile, "network_id": policy.network_id}


def run_bridge_demo(folder: Path, *, speed: float = 60.0, energy_wh: int = 3000, verbose: bool = False,
                    out=None) -> int:
    """``urja demo --bridge``: three local brokers, the story, brokers stopped; 0 only for a verified receipt."""
    from tools.broker import Broker, BrokerMissing

    screen = Screen(out)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    print("Urja bridge demo: a buyer on HTTP only buys from a charger behind NAT -- all local",
          file=screen.out, flush=True)
    quiet = None if verbose else _quiet_logs()
    try:
        with Broker(folder, name="hub") as hub, Broker(folder, name="east", bridge_to=hub.port) as east, \
                Broker(folder, name="west", bridge_to=hub.port) as west:
            urls = [hub.url, east.url, west.url]
            screen.line(f"mosquitto brokers {', '.join(urls)}, bridged to each other (a small cluster)")

            async def story():
                await _joined(urls)
                return await bridge_story(folder, urls, speed=speed, energy_wh=energy_wh, screen=screen)
            asyncio.run(story())
    except BrokerMissing as exc:
        print(f"urja demo: {exc}", file=sys.stderr)
        return 3
    except DemoFailed as exc:
        print(f"urja demo: {exc}", file=sys.stderr)
        return 1
    finally:
        if quiet is not None:
            quiet()
    print("\ndemo finished: brokers stopped, the charger shut down with its relay open", file=screen.out, flush=True)
    return 0
