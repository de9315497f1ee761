"""Record a real exchange on the MQTT binding, for the protocol document's examples.

Runs a simulated site (the real runtime on the simulated board, with its own agency), a node,
and a tap subscribed to every topic under the root; then discovers the site and buys a small
charge. Every payload the tap saw is written to ``out_dir`` as ``NN-<kind>-<action>.txt``:
first line ``topic: ...`` (and ``retain: true`` when retained), an empty line, then the exact
payload bytes (signature header block, empty line, body). Nothing is edited after capture.

It is a tool, not part of the binding: it boots a whole provisioned site, which the protocol
layer below must not know how to do.

    python -m tools.capture_examples --broker mqtt://127.0.0.1:1883 docs/examples
    python -m tools.capture_examples --broker mqtt://127.0.0.1:1883 --profile beckn-2.0 docs/examples-2.0
"""
from __future__ import annotations

import argparse
import asyncio
import json
import tempfile
from pathlib import Path


async def capture(broker_url: str, out_dir: Path, workdir: Path, *, speed: float = 20.0,
                  profile: str = "beckn-1.1") -> list[Path]:
    """``profile``: the protocol charger and node speak (``docs/examples`` is 1.1,
    ``docs/examples-2.0`` is 2.0)."""
    from agent.aio import within
    from agent.bootstrap import open_runtime
    from agent.clock import Clock
    from agent.config import load_config
    from protocols.beckn.policy import Policy
    from protocols.mqtt.identity import make_identity
    from protocols.mqtt.stack import ChargerNetwork, NetworkConfig
    from protocols.mqtt.transport import MqttSettings, MqttTransport
    from protocols.node.charge import ChargeFlow
    from protocols.node.client import NetworkNode
    from protocols.signing.agency import load_agency
    from tools.provision import provision_site

    site_id = "in.example.koramangala-1"
    cfg = load_config(provision_site(workdir / site_id, site_id=site_id, name="Koramangala 5th Block",
                                     lat=12.9352, lon=77.6245, auth="network", address="80 Feet Road"))
    seen: list[tuple[str, bytes, bool]] = []
    tap = MqttTransport(MqttSettings(brokers=(broker_url,), client_id="capture-tap"),
                        on_message=lambda t, p, r: seen.append((t, bytes(p), r)))
    tap.subscribe("urja/v1/#", 1)
    async with tap:
        await tap.wait_connected(10)
        async with open_runtime(cfg, clock=Clock(speed=speed)) as rt:
            network = ChargerNetwork.for_runtime(rt, config=NetworkConfig(brokers=(broker_url,),
                                                                          policy=Policy(profile=profile)))
            await network.start(connect_timeout_s=10)
            agency = load_agency(workdir / site_id / "agency")
            ident = make_identity(agency, "app.example.in", lat=12.93, lon=77.62, now_s=rt.now_s(), kind="BAP")
            node = NetworkNode(transport=MqttTransport(MqttSettings(brokers=(broker_url,), client_id="app-1")),
                               subscriber_id="app.example.in", signer=ident.signer,
                               agency_public_key=agency.public_key, clock=rt.now_s, certificate=ident.certificate,
                               profile=profile)
            car = rt.board.sim.car
            try:
                await node.start()
                await node.discover(12.9401, 77.6210, 2.0, timeout_s=5, expect=1)

                def step(action, answer):
                    if action == "confirm":
                        car.plug_in()
                        car.request_power()

                def progress(p):
                    if rt.core.stop_reason == "limit_energy" and car.plugged:
                        car.unplug()
                flow = ChargeFlow(node, site_id, energy_wh=100, poll_s=0.5, on_step=step, on_progress=progress)
                await within(flow.run(), 60, name="capture-charge")
                from protocols.beckn import messages

                def ctx(action):
                    return node.context(action, transaction_id=flow.result.transaction_id, bpp_id=site_id)
                order_id = flow.result.order_id
                await node.request(messages.track(ctx("track"), order_id=order_id))
                await node.request(messages.rating(ctx("rating"), ref_id=order_id, value=5))
                await node.request(messages.support(ctx("support"), ref_id=order_id))
                # a refusal, as every refusal looks: the order has ended, there is nothing to cancel
                from protocols.node.client import NodeError
                try:
                    await node.request(messages.cancel(ctx("cancel"), order_id=order_id))
                except NodeError:
                    pass
            finally:
                await node.close()
                await network.close()
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for i, (topic, payload, retained) in enumerate(seen):
        kind = topic.split("/")[2]
        head, _, body = payload.partition(b"\n\n")
        try:
            doc = json.loads(body)
            name = (doc.get("context") or {}).get("action") or doc.get("kind", "message")
        except ValueError:
            name = "message"
        path = out_dir / f"{i:02d}-{kind}-{name.replace('.', '-')}.txt"
        path.write_bytes(f"topic: {topic}\n".encode() + (b"retain: true\n" if retained else b"") + b"\n" + payload)
        written.append(path)
    return written


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--broker", required=True)
    p.add_argument("--profile", default="beckn-1.1", choices=("beckn-1.1", "beckn-2.0"))
    p.add_argument("out_dir")
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        files = asyncio.run(capture(args.broker, Path(args.out_dir), Path(tmp), profile=args.profile))
    print("\n".join(str(f) for f in files))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
