"""Helpers for tests that run the real runtime on the simulated board."""
from __future__ import annotations

from pathlib import Path

from agent.config import SiteConfig, load_config
from tools.provision import provision_site


def sim_config(tmp_path: Path, **overrides) -> SiteConfig:
    """A provisioned simulated site in ``tmp_path`` (keys, certificate, tariff, config)."""
    values = dict(site_id="in.test.site-1", name="Test site", lat=12.9352, lon=77.6245, tariff="flat",
                  auth="free_vend", default_limit_wh=0)
    values.update(overrides)
    return load_config(provision_site(tmp_path / values["site_id"], **values))


async def wait_until(predicate, *, timeout_s: float = 10.0, what: str = "condition", poll_s: float = 0.005):
    """Wait for a condition the runtime reaches by itself (bounded; fails with what was awaited)."""
    from tools.sim_site import wait_until as _wait

    await _wait(predicate, timeout_s, what, error=AssertionError, poll_s=poll_s)


def car_charge_flow(node, rt, site_id: str, *, energy_wh: int = 100, poll_s: float = 0.3):
    """A buyer's ``ChargeFlow`` at the runtime's simulated site: the car plugs in and asks for
    power once the order is confirmed, and leaves when the energy bought has been delivered."""
    from protocols.node.charge import ChargeFlow

    car = rt.board.sim.car

    def step(action, answer):
        if action == "confirm":
            car.plug_in()
            car.request_power()

    def progress(p):
        if rt.core.stop_reason == "limit_energy" and car.plugged:
            car.unplug()
    return ChargeFlow(node, site_id, energy_wh=energy_wh, poll_s=poll_s, on_step=step, on_progress=progress)
