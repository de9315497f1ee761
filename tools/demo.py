"""The local demo: one charger on the simulated board, a car, a session, a verified receipt.

Everything real except the hardware: the meter is served over Modbus by pymodbus's own server,
the journal is SQLite on disk, the keys and the agency certificate are created as a site owner
would, and the receipt is checked the way an app would check it.
"""
from __future__ import annotations

import asyncio
import json
from pathlib import Path


def say(text: str) -> None:
    print(f"demo: {text}", flush=True)


async def wait_until(predicate, timeout_s: float, what: str, *, error=SystemExit, poll_s: float = 0.02) -> None:
    """Wait for a state the runtime reaches by itself; bounded, and says what it waited for.

    Used by the demos and the tests alike; ``error`` is what a timeout raises.
    """
    async def loop():
        while not predicate():
            await asyncio.sleep(poll_s)

    try:
        await asyncio.wait_for(loop(), timeout_s)
    except asyncio.TimeoutError:
        raise error(f"gave up waiting for {what} after {timeout_s:g} s") from None


async def charge_one_car(rt, *, token: str | None = None, park_s: float = 180, tell=say) -> dict:
    """Script one car on the simulated board: arrive, charge to the limit, park, leave.

    Returns the signed receipt. With ``token`` the car's driver presents a token (an RFID card,
    say: on the site's allow-list, or an eMSP's card when the site serves OCPI) instead of
    relying on free vend.
    """
    car = rt.board.sim.car
    receipts: list = []
    done = asyncio.Event()

    def on_event(kind, obj):
        if kind == "receipt":
            receipts.append(obj)
            done.set()

    rt.add_listener(on_event)
    try:
        car.plug_in()
        if token is not None:
            tell(f"a car plugs in (pilot A -> B); the driver shows token {token}")
            await rt.present_token(token)
        else:
            tell("a car plugs in (pilot A -> B); free vend authorizes it")
        await wait_until(lambda: rt.core.session_id is not None, 10, "authorization")
        limits = rt.core.authorization.limits() if rt.core.authorization else {}
        tell("limits: " + (", ".join(f"{k}={v}" for k, v in limits.items() if v is not None) or "none"))
        tell("the car asks for power (pilot B -> C); the safety gate closes the relay")
        car.request_power()
        await wait_until(lambda: rt.board.relay.closed, 10, "relay closed")
        energy_limit = limits.get("energy_limit_wh") or 1000
        speed = rt.clock.speed
        await wait_until(lambda: rt.core.stop_reason is not None, 60 + 3600 * energy_limit / 7000 / speed,
                     "the session limit")
        tell(f"limit reached ({rt.core.stop_reason}): relay open")
        tell(f"the car stays parked for {park_s / 60:.0f} minutes (idle time is measured), then unplugs")
        await rt.clock.sleep(park_s)
        car.unplug()
        await asyncio.wait_for(done.wait(), 10)
    finally:
        rt.remove_listener(on_event)
    return receipts[0][1]


async def run_local_demo(folder: Path, *, speed: float, limit_wh: int, keep_running: bool) -> int:
    from agent.clock import Clock
    from agent.config import load_config
    from agent.bootstrap import open_runtime
    from protocols.signing.agency import read_agency_public_key
    from protocols.signing.errors import ProtocolError
    from protocols.signing.receipt import verify_receipt
    from tools.provision import provision_site

    say(f"provisioning a site in {folder}: charger keys, agency certificate, flat tariff Rs 18/kWh + 18 % GST")
    config = load_config(provision_site(folder, site_id="in.blr.koramangala.demo-1",
                                        name="Koramangala 5th Block, home charger", lat=12.9352, lon=77.6245,
                                        address="80 Feet Road, Koramangala", tariff="flat", auth="free_vend",
                                        default_limit_wh=limit_wh))
    say(f"simulated time runs {speed:g}x faster than real time")
    async with open_runtime(config, clock=Clock(speed=speed)) as rt:
        say(f"charger up on board '{rt.board.profile.name}', meter {rt.board.meter.model} over Modbus TCP, "
            f"connector {rt.connectors()[0].status}")
        receipt = await charge_one_car(rt)
        cost = receipt["cost_paise"]
        say(f"receipt {receipt['receipt_id']}: {receipt['energy_wh']} Wh from meter {receipt['meter']['serial']} "
            f"({receipt['start']['meter_wh']} -> {receipt['stop']['meter_wh']} Wh)")
        say("cost: energy Rs %.2f + GST Rs %.2f = Rs %.2f" % (cost["energy"] / 100, cost["tax"] / 100,
                                                            cost["total"] / 100))
        try:
            verify_receipt(receipt, agency_public_key=read_agency_public_key(config.agency_key), require_ocmf=True)
        except ProtocolError as exc:
            say(f"receipt does NOT verify: {exc}")
            return 1
        path = folder / f"{receipt['receipt_id']}.json"
        path.write_text(json.dumps(receipt, indent=2) + "\n")
        say(f"receipt signature, agency certificate and OCMF meter data verify; saved to {path}")
        say(f"check it yourself: urja verify {path} --agency-key {config.agency_key}")
        if keep_running:
            from tools.run_cmd import _install_stop

            say("agent keeps running; Ctrl-C to stop")
            stop = asyncio.Event()
            _install_stop(stop)
            await stop.wait()
    return 0
