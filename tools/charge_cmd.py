"""``urja charge SUBSCRIBER_ID --kwh X | --budget INR``: buy one charge over the network.

Runs select, init, pays the UPI intent (simulated: the node reports PAID with its own
reference), confirm and start; shows energy, power and cost until the session ends or Ctrl-C
stops it; then prints the receipt and whether it verifies offline (agency -> certificate ->
receipt -> meter data).
"""
from __future__ import annotations

import json
import signal
import sys
import time
from typing import TYPE_CHECKING

if TYPE_CHECKING:  # asyncio loads only in the commands that run a loop
    import asyncio


def register(subparsers) -> None:
    from protocols.node.options import add_node_options

    p = subparsers.add_parser("charge", help="buy a charge at a charger on the network and verify its receipt")
    p.add_argument("subscriber_id", help="the charger's network id (from `urja discover`)")
    ask = p.add_mutually_exclusive_group(required=True)
    ask.add_argument("--kwh", type=float, help="energy to buy in kWh")
    ask.add_argument("--budget", type=float, help="money to spend in INR (incl. GST)")
    p.add_argument("--json", action="store_true", help="print the result as JSON")
    p.add_argument("--poll", type=float, default=2.0, help="seconds between status requests (default 2)")
    add_node_options(p)
    p.set_defaults(func=handle)


def _show(progress) -> None:
    cost = f"{progress.cost} {progress.currency}" if progress.cost else "-"
    print(f"  {progress.state or '?':<18} {progress.energy_wh / 1000:7.3f} kWh  {progress.power_w / 1000:6.2f} kW  "
          f"{cost}", flush=True)


async def run(args, *, clock=time.time, stop: asyncio.Event | None = None, quiet: bool = False):
    import asyncio

    from protocols.node.charge import ChargeFlow
    from protocols.node.setup import build_node

    if args.kwh is not None and not 0 < args.kwh <= 500:
        raise ValueError(f"--kwh {args.kwh} must be more than 0 and at most 500")
    if args.budget is not None and not 0 < args.budget <= 100_000:
        raise ValueError(f"--budget {args.budget} must be more than 0 and at most 100000 INR")
    node = build_node(args, clock=clock)
    if node.certificate is None:
        raise ValueError("buying needs a node certificate: give --key-dir and --certificate "
                         "(or --agency-dir on a pilot network)")
    stop = stop or asyncio.Event()
    loop = asyncio.get_running_loop()
    try:
        loop.add_signal_handler(signal.SIGINT, stop.set)
    except (NotImplementedError, RuntimeError):
        pass
    talk = (lambda *a: None) if quiet or args.json else print
    try:
        async with node:
            charger = await node.fetch_catalog(args.subscriber_id, timeout_s=args.timeout)
            talk(f"charger {charger.subscriber_id} ({charger.name}) verified, key {charger.key_id}")

            def step(action, answer):
                order = answer.message.get("order") or {}
                if action == "select":
                    talk(f"quote: {((order.get('quote') or {}).get('price') or {}).get('value')} INR")
                elif action == "init":
                    pay = (order.get("payments") or [{}])[0]
                    talk(f"paying UPI intent {pay.get('url') or pay.get('params')}")
                elif action == "confirm":
                    talk(f"order {order.get('id')} confirmed; plug in and wait")
                elif action == "update":
                    talk("charging requested (Ctrl-C stops)")

            flow = ChargeFlow(node, args.subscriber_id,
                              energy_wh=None if args.kwh is None else int(round(args.kwh * 1000)),
                              budget_paise=None if args.budget is None else int(round(args.budget * 100)),
                              on_progress=None if quiet or args.json else _show, on_step=step, poll_s=args.poll)
            return await flow.run(stop)
    finally:
        try:
            loop.remove_signal_handler(signal.SIGINT)
        except (NotImplementedError, RuntimeError):
            pass


def handle(args) -> int:
    import asyncio

    from drivers.configfile import ConfigError
    from protocols.errors import ProtocolError

    try:
        result = asyncio.run(run(args))
    except (ValueError, ConfigError, ProtocolError) as exc:
        print(f"urja charge: {exc}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(result.as_dict(), indent=2))
    else:
        check = result.receipt_check
        print(f"receipt {check.receipt_id}: {check.energy_wh / 1000:.3f} kWh, total {check.total_paise / 100:.2f} "
              f"{check.currency}, paid {result.paid_paise / 100:.2f}, refund due {check.refund_due_paise / 100:.2f}")
        print(f"receipt verified: signed by {check.subscriber_id} under the agency's certificate"
              f"{', meter data (OCMF) verified' if check.ocmf_verified else ''}")
    return 0 if result.receipt_check is not None else 1
