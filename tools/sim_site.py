"""Driving a site on the simulated board: wait for what the runtime reaches by itself, and a
simulated driver who brings the car whenever the charger has a session for it.

``urja run --sim-car``, ``urja demo --local``, the network demo and the tests all drive the
simulated car the same way, so it lives here, below all of them, rather than in one of the
commands the others would then have to import.
"""
from __future__ import annotations

import asyncio
from typing import Callable

WAITING_FOR_CAR = "authorized_waiting_for_car"


def _say(text: str) -> None:
    print(f"demo: {text}", flush=True)


async def wait_until(predicate, timeout_s: float | None, what: str, *, error=SystemExit,
                     poll_s: float = 0.02) -> None:
    """Wait for a state the runtime reaches by itself; bounded, and says what it waited for.

    Used by the demos and the tests alike; ``error`` is what a timeout raises. ``None`` waits
    as long as it takes: the driver waiting for the next buyer, who may never come.
    """
    # A deadline of its own rather than ``asyncio.wait_for``: on Python 3.11 that can swallow a
    # cancellation landing as it returns, and a driver told to stop would then wait on for ever.
    loop = asyncio.get_running_loop()
    deadline_s = None if timeout_s is None else loop.time() + timeout_s
    while not predicate():
        if deadline_s is not None and loop.time() >= deadline_s:
            raise error(f"gave up waiting for {what} after {timeout_s:g} s")
        await asyncio.sleep(poll_s)


class SimDriver:
    """The person with the simulated car: arrives, plugs in, charges, parks, leaves; again.

    The car is there only while somebody charges: an empty connector is what a network buyer
    is sold (a car plugged in from the start makes the charger busy, and every ``select`` is
    refused). ``serve()`` brings the car whenever a session waits for one (a network order or
    an eMSP's remote start has been authorized), for as many sessions as come; ``visit()``
    is one arrival at a scripted time, which starts its own session (free vend, or ``token``
    shown at the charger). Works for a pilot car and for a socket outlet's load alike.
    """

    def __init__(self, rt, *, park_s: float = 180, token: str | None = None,
                 tell: Callable[[str], None] = _say, error=SystemExit, charge_kw: float = 1.0):
        car = rt.board.sim.car if rt.board.sim is not None else None
        if car is None:
            raise ValueError("the simulated driver needs a simulated board with a car (board sim or sim-socket)")
        self._rt = rt
        self.car = car
        self.park_s = park_s
        self.token = token
        self._tell = tell
        self._error = error
        self._pilot = bool(getattr(rt.board.pilot, "has_pilot", False))
        self.charge_kw = charge_kw  # the least it charges at, for how long a charge may take
        self._receipts: dict[str, dict] = {}
        self.visits = 0

    def _on_event(self, kind, obj) -> None:
        if kind == "receipt":
            sid, receipt = obj
            self._receipts[sid] = receipt

    async def serve(self, *, on_receipt: Callable[[dict], None] | None = None) -> None:
        """Come whenever a session waits for a car, charge, leave; until cancelled."""
        rt = self._rt
        while True:
            await wait_until(lambda: rt.core.state == WAITING_FOR_CAR and not self.car.plugged, None,
                             "a session waiting for a car")
            receipt = await self.visit(ordered=True)
            if on_receipt is not None:
                on_receipt(receipt)

    async def visit(self, *, ordered: bool = False) -> dict:
        """One arrival, a whole session, and the departure; returns the signed receipt.

        ``ordered``: a session is already authorized and waits for this car. Otherwise the car
        starts its own: free vend on plug-in (a socket outlet has no plug-in signal, so the
        driver starts it as a start button would), or the driver shows ``token``.
        """
        rt, car, tell = self._rt, self.car, self._tell
        rt.add_listener(self._on_event)
        try:
            car.plug_in()
            self.visits += 1
            what = "pilot A -> B" if self._pilot else "the socket"
            if ordered:
                tell(f"plugs in for the session waiting for it ({what})")
            elif self.token is not None:
                tell(f"a car plugs in ({what}); the driver shows token {self.token}")
                await rt.present_token(self.token)
            else:
                tell(f"a car plugs in ({what}); free vend authorizes it")
                if not self._pilot and rt.core.session_id is None:
                    await rt.start_session(source="free_vend", reference="free-vend")
            await wait_until(lambda: rt.core.session_id is not None, 10, "authorization", error=self._error)
            sid = rt.core.session_id
            limits = rt.core.authorization.limits() if rt.core.authorization else {}
            tell("limits: " + (", ".join(f"{k}={v}" for k, v in limits.items() if v is not None) or "none"))
            tell("the car asks for power" + (" (pilot B -> C)" if self._pilot else "")
                 + "; the safety gate closes the relay")
            car.request_power()
            await wait_until(lambda: rt.core.stop_reason is not None or rt.core.session_id != sid,
                             self._charge_bound_s(limits, ordered=ordered), "the end of the charge", error=self._error)
            tell(f"the charge ended ({rt.core.stop_reason or 'session over'}): relay open")
            if self.park_s:
                tell(f"the car stays parked for {self.park_s / 60:.0f} minutes (idle time is measured), "
                     "then unplugs")
                await rt.clock.sleep(self.park_s)
            car.unplug()
            tell("the driver unplugs and drives off")
            await wait_until(lambda: sid in self._receipts, 10, "the receipt", error=self._error)
        finally:
            rt.remove_listener(self._on_event)
        return self._receipts.pop(sid)

    def _charge_bound_s(self, limits: dict, *, ordered: bool) -> float | None:
        """Real seconds a charge may take, from its energy limit at no less than ``charge_kw``
        (1 kW; less where connectors share a site's limit).

        A buyer's session without an energy limit ends by money, time or the buyer's stop,
        whenever that is; a scripted arrival is a test or a demo and is always bounded.
        """
        energy_limit = limits.get("energy_limit_wh")
        if energy_limit is None:
            if ordered:
                return None
            energy_limit = 1000
        return 60 + 3600 * energy_limit / 1000 / self.charge_kw / self._rt.clock.speed


async def charge_one_car(rt, *, token: str | None = None, park_s: float = 180, tell=_say) -> dict:
    """Script one car on the simulated board: arrive, charge to the limit, park, leave.

    Returns the signed receipt. With ``token`` the car's driver presents a token (an RFID card,
    say: on the site's allow-list, or an eMSP's card when the site serves OCPI) instead of
    relying on free vend.
    """
    return await SimDriver(rt, park_s=park_s, token=token, tell=tell).visit()
