"""The network demo: three chargers in Bengaluru, one app, a charge bought and a receipt checked.

What a user sees is the whole project at work: a nodal agency certifies three chargers and
an app; each charger runs the real runtime (``open_runtime``) on its own simulated board with
its own meter served over Modbus TCP, and joins the MQTT network on a local mosquitto; the
app finds the chargers near the user (identities verified offline, live availability,
prices), asks each for a signed quote, buys the cheapest charge, follows it, and checks the
signed receipt down to the meter's own signature.

The three chargers run in this process, as three ``open_runtime`` contexts, not as child
processes: they and the app must share one accelerated clock (``agent.clock.Clock``), since
every signed message carries its time and a validity window, and three processes would each
start their own fast clock and drift apart; in one process the demo can also drive the
simulated car through ``rt.board.sim.car``, and a failure anywhere tears everything down in
one place (relays open first, as always).

The buyer picks by the quotes the chargers sign in ``on_select`` (``agent.core.offers`` priced on
the charger for this energy at this time of day, exactly as the receipt will price it), not
by the catalog's listed price, which for a time-of-day tariff is only one of its prices.
"""
from __future__ import annotations

import argparse
import asyncio
import json
import logging
import sys
import time
from dataclasses import dataclass
from pathlib import Path

IST_OFFSET_S = 5 * 3600 + 1800


@dataclass(frozen=True)
class ChargerSpec:
    site_id: str
    name: str
    area: str
    lat: float
    lon: float
    address: str
    tariff: str
    tariff_words: str
    upi_vpa: str


CHARGERS = (
    ChargerSpec("in.blr.koramangala-1", "Koramangala 5th Block", "Koramangala", 12.9352, 77.6245,
                "80 Feet Road, Koramangala 5th Block", "flat", "Rs 18/kWh all day", "koramangala.ev@okaxis"),
    ChargerSpec("in.blr.indiranagar-1", "Indiranagar 100 Feet Road", "Indiranagar", 12.9784, 77.6408,
                "100 Feet Road, HAL 2nd Stage, Indiranagar", "time_of_day",
                "Rs 12/kWh night, Rs 16 day, Rs 22.50 evening peak (18-22 h)", "indiranagar.ev@okicici"),
    ChargerSpec("in.blr.hsr-layout-1", "HSR Layout Sector 2", "HSR Layout", 12.9116, 77.6474,
                "27th Main Road, HSR Layout Sector 2", "idle_fee",
                "Rs 17.50/kWh + Rs 5 per session + Rs 60/h idle after charging", "hsr.ev@oksbi"),
)
USER_PLACE = ("Ejipura", 12.9400, 77.6300)
APP_ID = "app.urja-demo.in"
SEARCH_RADIUS_KM = 8.0


class DemoFailed(Exception):
    """A step of the story did not happen; the message says which."""


def _rupees(paise: int) -> str:
    return f"Rs {paise / 100:,.2f}"


class Screen:
    """What the user reads: numbered steps and indented details, flushed line by line."""

    def __init__(self, out=None):
        self.out = out or sys.stdout
        self.step_no = 0

    def step(self, text: str) -> None:
        self.step_no += 1
        print(f"\n[{self.step_no}] {text}", file=self.out, flush=True)

    def line(self, text: str = "") -> None:
        print(f"    {text}", file=self.out, flush=True)

    def car(self, text: str) -> None:
        print(f"    [simulated car] {text}", file=self.out, flush=True)


def _ist(clock) -> str:
    return time.strftime("%H:%M", time.gmtime(clock.wall_s() + IST_OFFSET_S))


async def _until(predicate, timeout_s: float, what: str) -> None:
    from tools.sim_site import wait_until

    await wait_until(predicate, timeout_s, what, error=DemoFailed)


def provision_network(folder: Path, broker_url: str, services=None) -> tuple[list, object]:
    """The agency, three chargers and the app, as files on disk; returns (site configs, app files).
    With ``services`` (``demo_services.DemoServices``) each key is listed in the registry, the
    chargers publish to the catalog service and the app discovers through it."""
    from agent.config import load_config
    from tools.provision import ensure_agency, provision_app, provision_site

    agency_dir = folder / "agency"
    ensure_agency(agency_dir)
    configs = []
    for spec in CHARGERS:
        path = provision_site(folder / spec.site_id, site_id=spec.site_id, name=spec.name, lat=spec.lat,
                              lon=spec.lon, address=spec.address, tariff=spec.tariff, auth="network",
                              agency_dir=agency_dir, upi_vpa=spec.upi_vpa, broker_url=broker_url)
        if services is not None:
            services.join(path, folder / spec.site_id / "keys")
        configs.append(load_config(path))
    app = provision_app(folder / "app", subscriber_id=APP_ID, agency_dir=agency_dir, broker_url=broker_url)
    if services is not None:
        services.join_app(app.config, app.key_dir)
    return configs, app


async def _quote(node, charger, energy_wh: int, agency_key: bytes):
    """Ask one charger for a signed quote and check the quote's signature against its certificate."""
    from protocols.beckn import messages
    from protocols.signing.agency import verify_certificate
    from protocols.signing.detached import verify_object

    ctx = node.context("select", transaction_id=node.new_id(), bpp_id=charger.subscriber_id)
    answer = await node.request(messages.select(ctx, provider_id=charger.subscriber_id, energy_wh=energy_wh,
                                                certificate=node.certificate), timeout_s=10)
    order = answer.message.get("order") or {}
    signed = messages.signed_documents(order, messages.TAG_QUOTE)
    if not signed:
        raise DemoFailed(f"{charger.subscriber_id} answered select without a signed quote")
    quote = signed[0]
    key = verify_certificate(charger.certificate, agency_key, now_s=node.clock()).key
    verify_object(quote, key.signing_public_key, expected_key_id=(key.subscriber_id, key.key_id))
    if quote.get("energy_wh") != energy_wh or quote.get("bpp_id") != charger.subscriber_id:
        raise DemoFailed(f"{charger.subscriber_id} signed a quote for something else: {quote}")
    return quote


def _print_receipt(screen: Screen, receipt: dict, check, spec: ChargerSpec) -> None:
    cost = receipt["cost_paise"]
    screen.line(f"receipt {receipt['receipt_id']} for order {receipt.get('order_id')}")
    screen.line(f"  charger    {spec.name} ({receipt['charger']['subscriber_id']})")
    screen.line(f"  meter      {receipt['meter'].get('vendor')} {receipt['meter'].get('model')} "
                f"serial {receipt['meter']['serial']}: {receipt['start']['meter_wh']} Wh at "
                f"{receipt['start']['time']} -> {receipt['stop']['meter_wh']} Wh at {receipt['stop']['time']}")
    screen.line(f"  energy     {receipt['energy_wh'] / 1000:.3f} kWh, tariff {(receipt.get('tariff') or {}).get('id')}")
    parts = [f"{name} {_rupees(cost[name])}" for name in ("flat", "energy", "time", "parking") if cost.get(name)]
    screen.line(f"  cost       {' + '.join(parts) or 'nothing'} + GST {_rupees(cost['tax'])} "
                f"= {_rupees(cost['total'])}"
                + (f" (held to the amount paid; {_rupees(receipt['waived_paise'])} waived)"
                   if receipt.get("waived_paise") else ""))
    due = receipt.get("balance_due_paise") or 0
    screen.line(f"  paid       {_rupees(receipt['paid_paise'])} by UPI; refund due {_rupees(check.refund_due_paise)}"
                + (f"; balance due {_rupees(due)}" if due else ""))


async def network_story(folder: Path, broker_url: str, *, speed: float = 60.0, energy_wh: int = 5000,
                        keep_running: bool = False, screen: Screen | None = None, clock=None,
                        stop: asyncio.Event | None = None) -> Path:
    """Run the whole story on a broker that is already up; returns the verified receipt's file.

    ``clock`` is the one clock of chargers and app (a ``Clock`` at ``speed`` unless given);
    with ``keep_running`` the chargers stay up until ``stop`` is set (Ctrl-C without one).
    """
    from agent.clock import Clock
    from tools.demo_services import DemoServices

    screen = screen or Screen()
    clock = clock or Clock(speed=speed)
    speed = clock.speed
    power_w = 11_040  # the simulated car: 16 A on three phases at 230 V
    minutes = energy_wh / power_w * 60
    screen.line(f"simulated time runs {speed:g}x faster than real time: a {minutes:.0f}-minute charge "
                f"takes about {minutes * 60 / speed:.0f} s here; clock times below are simulated (IST)")

    async with DemoServices(folder / "network", clock=clock.wall_s) as services:
        return await _story(folder, broker_url, services, screen=screen, clock=clock, energy_wh=energy_wh,
                            minutes=minutes, keep_running=keep_running, stop=stop)


async def _story(folder: Path, broker_url: str, services, *, screen: Screen, clock, energy_wh: int,  # noqa: C901
                 minutes: float, keep_running: bool, stop) -> Path:
    from agent.aio import within
    from protocols.node.cds import discover_via_cds
    from protocols.node.charge import ChargeFlow
    from protocols.node.setup import build_node
    from protocols.signing.agency import read_agency_public_key, verify_certificate
    from protocols.signing.errors import SignatureError
    from protocols.signing.receipt import verify_receipt

    speed = clock.speed
    screen.line(f"the network's registry (who holds which key): {services.registry_url}")
    screen.line(f"the network's catalog discovery service (where chargers list themselves): {services.cds_url}")
    screen.line("both are small reference versions that run inside this demo, not production services")

    screen.step("A nodal agency certifies three chargers in Bengaluru and one app")
    configs, app = provision_network(folder, broker_url, services)
    agency_pub = folder / "agency" / "agency.pub"
    agency_key = read_agency_public_key(agency_pub)
    for spec in CHARGERS:
        screen.line(f"{spec.name:<27} {spec.site_id:<22} tariff {spec.tariff}: {spec.tariff_words}, + 18 % GST")
    screen.line(f"{'the app':<27} {APP_ID:<22} certified as a buyer (BAP): {app.certificate}")
    screen.line(f"each has its own Ed25519 key, the chargers an ECDSA meter key too; files in {folder}")
    screen.line("each key is also listed in the network's registry, so anyone on the network can look it up")

    screen.step("The chargers start: the real runtime on a simulated board each, joining the network")
    async with _Chargers(configs, clock) as runtimes, _Drivers(runtimes, screen) as drivers:
        for spec, rt in zip(CHARGERS, runtimes, strict=True):
            meter = rt.board.meter
            protocol = rt.bindings["network"].network.bpp.profile.name if "network" in rt.bindings else "-"
            screen.line(f"{spec.area:<12} board '{rt.board.profile.name}', meter {meter.model} over Modbus TCP, "
                        f"connector {rt.connectors()[0].status.lower()}, MQTT {broker_url}, {protocol}")
        by_id = {spec.site_id: (spec, rt) for spec, rt in zip(CHARGERS, runtimes, strict=True)}
        await _published(runtimes, screen)

        node = build_node(argparse.Namespace(config=str(app.config), broker=[], agency_key=None,
                                             node_subscriber_id=None, key_dir=None, certificate=None,
                                             agency_dir=None), clock=clock.wall_s)
        async with node:
            where, lat, lon = USER_PLACE
            screen.step(f"The app asks the catalog service for chargers within {SEARCH_RADIUS_KM:g} km of you "
                        f"({where}, {lat:.4f},{lon:.4f}) at {_ist(clock)} IST")
            found = await discover_via_cds(node, node.cds_url, lat, lon, SEARCH_RADIUS_KM, timeout_s=10)
            if len(found) < len(CHARGERS):
                raise DemoFailed(f"the catalog service listed only {len(found)} of {len(CHARGERS)} chargers "
                                 f"(last rejection: {node.last_rejection})")
            screen.line("the service's answer is signed with its key, which the app looked up in the registry;")
            screen.line("each charger's listing carries its agency certificate and signed prices, checked by the app")
            quotes = await asyncio.gather(*(_quote(node, c, energy_wh, agency_key) for c in found))
            screen.line(f"{'charger':<26} {'distance':>8}  {'free':>4}  {'listed/kWh':>10}  "
                        f"{f'quote {energy_wh / 1000:g} kWh':>12}  identity, verified offline")
            for c, q in zip(found, quotes, strict=True):
                cert = verify_certificate(c.certificate, agency_key, now_s=clock.wall_s())
                free = sum(1 for k in c.connectors if k.available)
                listed = f"Rs {float(c.price):.2f}" if c.price else "-"
                name = by_id[c.subscriber_id][0].name if c.subscriber_id in by_id else (c.name or "?")
                screen.line(f"{name:<26} {c.distance_km:>5.1f} km  {f'{free}/{len(c.connectors)}':>4}  "
                            f"{listed:>10}  {_rupees(q['price_paise']):>12}  agency {cert.agency_key_id[0]} -> "
                            f"{c.subscriber_id} key {c.key_id[:8]}")
            best_i = min(range(len(found)), key=lambda i: (quotes[i]["price_paise"], found[i].distance_km))
            best, best_quote = found[best_i], quotes[best_i]
            spec, rt = by_id[best.subscriber_id]
            screen.line(f"cheapest for {energy_wh / 1000:g} kWh: {spec.name}, {_rupees(best_quote['price_paise'])} "
                        f"incl. GST {_rupees(best_quote['tax_paise'])}")
            screen.line("picked by the quotes each charger signed in on_select (signature checked against its "
                        "certificate);")
            screen.line("the listed price is a tariff's first energy price, the quote prices this charge at this "
                        "time of day, as the receipt will")

            screen.step(f"The app buys {energy_wh / 1000:g} kWh at {spec.name}")
            def step(action, answer):
                order = answer.message.get("order") or {}
                if action == "select":
                    price = ((order.get("quote") or {}).get("price") or {}).get("value")
                    screen.line(f"select  -> on_select: signed quote Rs {price} incl. GST")
                elif action == "init":
                    pay = (order.get("payments") or [{}])[0]
                    screen.line("init    -> on_init: pay with UPI:")
                    screen.line(f"           {pay.get('url') or pay.get('params')}")
                    screen.line("           (simulated payment: the app reports PAID with its UPI reference)")
                elif action == "confirm":
                    screen.line(f"confirm -> on_confirm: order {order.get('id')} confirmed, paid "
                                f"{_rupees(flow.result.paid_paise)} (ref {flow.result.payment_ref})")
                    screen.line("           a simulated driver at each charger comes when an order starts there")
                elif action == "update":
                    screen.line("update  -> on_update: start charging; the safety gate closes the relay")

            shown = {"wh": -1}

            def progress(p):
                if p.energy_wh >= shown["wh"] + 500 or (p.energy_wh > 0 and shown["wh"] < 0):
                    shown["wh"] = p.energy_wh
                    cost = f"Rs {p.cost}" if p.cost else "-"
                    screen.line(f"{_ist(clock)} IST  {p.state or '?':<12} {p.energy_wh / 1000:6.3f} kWh  "
                                f"{p.power_w / 1000:5.2f} kW  {cost} so far")

            flow = ChargeFlow(node, best.subscriber_id, energy_wh=energy_wh, on_progress=progress, on_step=step,
                              poll_s=1.0, request_timeout_s=15, receipt_timeout_s=120)
            try:
                result = await within(flow.run(), 120 + 3 * minutes * 60 / speed, name="demo-charge")
            except asyncio.TimeoutError:
                drivers.raise_failure()
                raise DemoFailed(f"the charge did not finish: {flow.result.progress}") from None
            drivers.raise_failure()

            screen.step("The signed receipt, checked offline by the app")
            receipt = result.receipt
            if receipt is None:
                raise DemoFailed("the charger sent no receipt")
            try:
                cert = verify_certificate(receipt["charger"]["certificate"], agency_key,
                                          now_s=_issued_s(receipt))
                screen.line(f"agency {cert.agency_key_id[0]} (key {cert.agency_key_id[1][:8]}...) signed the "
                            f"certificate of {cert.key.subscriber_id}")
                check = verify_receipt(receipt, agency_public_key=agency_key, require_ocmf=True)
            except SignatureError as exc:
                raise DemoFailed(f"the receipt does NOT verify: {exc}") from None
            screen.line(f"the certificate vouches for key {cert.key.key_id}, which signed the receipt")
            screen.line("the sums add up (energy = stop - start, total = parts, refund = paid - total)")
            screen.line("the OCMF meter data is signed by the charger's metering key, named in the same certificate, "
                        "and matches the receipt's readings")
            _print_receipt(screen, receipt, check, spec)
            receipts = folder / "receipts"
            receipts.mkdir(exist_ok=True)
            path = receipts / f"{receipt['receipt_id']}.json"
            path.write_text(json.dumps(receipt, indent=2) + "\n")
            screen.line(f"saved to {path}")
            screen.line("check it again yourself:")
            screen.line(f"  urja verify {path} --agency-key {agency_pub}")

        if keep_running:  # the story's app has left: the commands below are the app from now on
            await _keep_running(screen, broker_url, app, clock, charger_id=spec.site_id, energy_wh=energy_wh,
                                drivers=drivers, stop=stop)
    return path


async def _published(runtimes, screen: Screen) -> None:
    """Every charger's catalog taken by the catalog service (the first publish after start)."""
    for spec, rt in zip(CHARGERS, runtimes, strict=True):
        publisher = rt.bindings["network"].network.publisher
        if publisher is None:
            raise DemoFailed(f"{spec.site_id} has no catalog service to publish to")
        try:
            await publisher.publisher.wait_for(
                lambda services: all(s.state == "accepted" for s in services.values()), 30)
        except asyncio.TimeoutError:
            errors = "; ".join(s.last_error for s in publisher.publisher.services.values() if s.last_error)
            raise DemoFailed(f"{spec.site_id} could not publish its catalog: {errors or 'no answer'}") from None
    screen.line("each charger published its signed catalog (place, connectors, availability, prices) to the "
                "catalog service;")
    screen.line("on MQTT alone a charger cannot be called back, so the service answered each publish at once; "
                "they publish again whenever availability or price changes")


def _issued_s(receipt: dict) -> float:
    from protocols.signing._codec import parse_time

    return parse_time(receipt.get("issued_at"), field="issued_at")


async def _keep_running(screen: Screen, broker_url: str, app, clock, *, charger_id: str, energy_wh: int,
                        drivers: "_Drivers", stop: asyncio.Event | None) -> None:
    """Keep chargers, drivers and broker up and say how to buy from them as the app."""
    from tools.shutdown import install_stop

    screen.step("The chargers and the broker keep running; Ctrl-C stops them")
    port = broker_url.rsplit(":", 1)[1]
    screen.line(f"watch the network: mosquitto_sub -h 127.0.0.1 -p {port} -t 'urja/v1/#' -v")
    where, lat, lon = USER_PLACE
    screen.line(f"search as the app: urja discover --config {app.config} --near {lat},{lon}")
    screen.line("buy a charge as the app, as often as you like (a simulated car comes for every order):")
    screen.line(f"  urja charge {charger_id} --kwh {energy_wh / 1000:g} --config {app.config}")
    if clock.speed != 1:
        screen.line(f"(the chargers keep simulated time, {clock.speed:g}x faster than real time, and refuse "
                    "messages signed with the real time: run the demo with --speed 1 to use these commands)")
    if stop is None:
        stop = asyncio.Event()
        install_stop(stop)
    waiting = asyncio.get_running_loop().create_task(stop.wait())
    try:
        await asyncio.wait([waiting, *drivers.tasks], return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiting.cancel()
        await asyncio.gather(waiting, return_exceptions=True)
    drivers.raise_failure()


class _Chargers:
    """Three ``open_runtime`` contexts entered together and left in reverse order."""

    def __init__(self, configs, clock):
        self.contexts = [_runtime_context(cfg, clock) for cfg in configs]
        self.entered: list = []

    async def __aenter__(self):
        try:
            for ctx in self.contexts:
                rt = await ctx.__aenter__()
                self.entered.append((ctx, rt))
                await rt.bindings["network"].transport.wait_connected(10)
        except BaseException:
            await self.__aexit__(*sys.exc_info())
            raise
        return [rt for _, rt in self.entered]

    async def __aexit__(self, *exc):
        first: BaseException | None = None
        while self.entered:
            ctx, rt = self.entered.pop()
            try:
                await ctx.__aexit__(*exc)
            except BaseException as e:  # every charger must still shut down (relay open)
                first = first or e
        if first is not None:
            raise first


class _Drivers:
    """A simulated driver at each charger, serving every order there until the demo ends."""

    def __init__(self, runtimes, screen: Screen):
        self._runtimes = runtimes
        self._screen = screen
        self.tasks: list[asyncio.Task] = []

    async def __aenter__(self) -> "_Drivers":
        from tools.sim_site import SimDriver

        loop = asyncio.get_running_loop()
        for spec, rt in zip(CHARGERS, self._runtimes, strict=True):
            driver = SimDriver(rt, park_s=0, error=DemoFailed,
                               tell=lambda text, area=spec.area: self._screen.car(f"{text} ({area})"))
            self.tasks.append(loop.create_task(driver.serve(), name=f"demo-driver-{spec.site_id}"))
        return self

    def raise_failure(self) -> None:
        """A driver that gave up explains a charge that did not finish better than a timeout."""
        for task in self.tasks:
            if task.done() and not task.cancelled() and task.exception() is not None:
                raise task.exception()

    async def __aexit__(self, *exc) -> None:
        from agent.aio import cancel_and_wait

        await cancel_and_wait(self.tasks)


def _runtime_context(cfg, clock):
    from agent.bootstrap import open_runtime

    return open_runtime(cfg, clock=clock)


def run_network_demo(folder: Path, *, speed: float = 60.0, energy_wh: int = 5000, keep_running: bool = False,
                     verbose: bool = False, out=None) -> int:
    """``urja demo``: start a local broker, tell the story, stop the broker; 0 only for a verified receipt."""
    from tools.broker import Broker, BrokerMissing

    screen = Screen(out)
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    print("Urja network demo: find, buy and verify a charge in Bengaluru -- all local, nothing to configure",
          file=screen.out, flush=True)
    try:
        broker = Broker(folder, name="broker")
    except BrokerMissing as exc:
        print(f"urja demo: {exc}", file=sys.stderr)
        return 3
    quiet = None if verbose else _quiet_logs()
    try:
        with broker:
            screen.line(f"MQTT broker: mosquitto on {broker.url} (config and log in {broker.workdir}); "
                        "stopped at the end")
            asyncio.run(network_story(folder, broker.url, speed=speed, energy_wh=energy_wh,
                                      keep_running=keep_running, screen=screen))
    except DemoFailed as exc:
        print(f"urja demo: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        from drivers.configfile import ConfigError
        from protocols.errors import ProtocolError

        if not isinstance(exc, (ConfigError, ProtocolError, RuntimeError)):
            raise
        print(f"urja demo: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    finally:
        if quiet is not None:
            quiet()
    print("\ndemo finished: broker stopped, chargers shut down with their relays open", file=screen.out, flush=True)
    return 0


def _quiet_logs():
    """Keep the story readable: the agents log warnings only (``--verbose`` shows everything)."""
    logger = logging.getLogger("urja")
    level = logger.level
    logger.setLevel(logging.WARNING)
    return lambda: logger.setLevel(level)
