"""The local demo: one charger on the simulated board, a car, a session, a verified receipt.

Everything real except the hardware: the meter is served over Modbus by pymodbus's own server,
the journal is SQLite on disk, the keys and the agency certificate are created as a site owner
would, and the receipt is checked the way an app would check it.
"""
from __future__ import annotations

import asyncio
import json
from pathlib import Path

from tools.sim_site import charge_one_car


def say(text: str) -> None:
    print(f"demo: {text}", flush=True)


async def run_local_demo(folder: Path, *, speed: float, limit_wh: int, keep_running: bool) -> int:
    from agent.bootstrap import open_runtime
    from agent.clock import Clock
    from agent.config import load_config
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
            from tools.shutdown import install_stop

            say("agent keeps running; Ctrl-C to stop")
            stop = asyncio.Event()
            install_stop(stop)
            await stop.wait()
    return 0
