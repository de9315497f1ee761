"""Driving a site on the simulated board: wait for what the runtime reaches by itself, and
script one car through a whole session.

``urja run --sim-car``, ``urja demo --local``, the network demo and the tests all drive the
simulated car the same way, so it lives here, below all of them, rather than in one of the
commands the others would then have to import.
"""
from __future__ import annotations

import asyncio


def _say(text: str) -> None:
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


async def charge_one_car(rt, *, token: str | None = None, park_s: float = 180, tell=_say) -> dict:
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
