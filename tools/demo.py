"""The local demo: one charger on the simulated board, a car, a session, a verified receipt.

Everything real except the hardware: the meter is served over Modbus by pymodbus's own server,
the journal is SQLite on disk, the keys and the agency certificate are created as a site owner
would, and the receipt is checked the way an app would check it.
"""
from __future__ import annotations

import asyncio
import json
import sys
from pathlib import Path


def say(text: str) -> None:
    print(f"demo: {text}", flush=True)


async def _until(predicate, timeout_s: float, what: str) -> None:
    async def loop():
        while not predicate():
            await asyncio.sleep(0.02)

    try:
        await asyncio.wait_for(loop(), timeout_s)
    except asyncio.TimeoutError:
        raise SystemExit(f"demo: gave up waiting for {what} after {timeout_s:.0f} s") from None


async def run_local_demo(folder: Path, *, speed: float, limit_wh: int, keep_running: bool) -> int:
    from agent.clock import Clock
    from agent.config import load_config
    from agent.runtime import open_runtime
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
    receipts: list = []
    async with open_runtime(config, clock=Clock(speed=speed)) as rt:
        rt.add_listener(lambda kind, obj: receipts.append(obj) if kind == "receipt" else None)
        car = rt.board.sim.car
        say(f"charger up on board '{rt.board.profile.name}', meter {rt.board.meter.model} over Modbus TCP, "
            f"connector {rt.connectors()[0].status}")
        say("a car plugs in (pilot A -> B); free vend authorizes it, up to %d Wh" % limit_wh)
        car.plug_in()
        await _until(lambda: rt.core.session_id is not None, 10, "authorization")
        say("the car asks for power (pilot B -> C); the safety gate closes the relay")
        car.request_power()
        await _until(lambda: rt.board.relay.closed, 10, "relay closed")
        await _until(lambda: rt.core.stop_reason is not None, 60 + 3600 * limit_wh / 7000 / speed,
                     "the energy limit")
        view = rt.session(rt.core.session_id)
        say(f"limit reached ({rt.core.stop_reason}): relay open after {view.energy_wh} Wh")
        say("the car stays parked for 3 minutes (idle time is measured), then unplugs")
        await rt.clock.sleep(180)
        car.unplug()
        await _until(lambda: receipts, 10, "the receipt")
        sid, receipt = receipts[0]
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
        path = folder / f"receipt-{sid}.json"
        path.write_text(json.dumps(receipt, indent=2) + "\n")
        say(f"receipt signature, agency certificate and OCMF meter data verify; saved to {path}")
        say(f"check it yourself: urja verify {path} --agency-key {config.agency_key}")
        if keep_running:
            say("agent keeps running; Ctrl-C to stop")
            stop = asyncio.Event()
            from tools.run_cmd import _install_stop

            _install_stop(stop)
            await stop.wait()
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(run_local_demo(Path(sys.argv[1]), speed=30, limit_wh=1000, keep_running=False)))
