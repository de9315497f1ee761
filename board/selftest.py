"""The factory self-test: is this board wired the way its profile says?

Run once on the bench after assembly and again on site at commissioning. It checks what a
wrong wire or a dead part would break, with no vehicle connected:

* the meter answers with plausible mains values, no current flows with the relay open, and
  its serial number is shown so it can be written on the test sheet;
* the pilot (if the board has one) reads state A without a diode fault;
* the relay closes and opens, and its mirror contact (if wired) agrees both ways within the
  timeout; a welded or jammed contactor fails here.

The relay is never switched while the pilot says a vehicle is connected, and it is always
left open.
"""
from __future__ import annotations

import asyncio
import contextlib

from drivers.errors import DriverError

PASS, FAIL, SKIP = "pass", "fail", "skip"

# Plausible mains at the meter: 230 V +/-20 % and 50 Hz +/-5 % (wide on purpose: the test
# finds wiring faults, the safety supervisor watches power quality).
VOLTAGE_MIN_V = 184.0
VOLTAGE_MAX_V = 276.0
FREQUENCY_MIN_HZ = 47.5
FREQUENCY_MAX_HZ = 52.5
IDLE_CURRENT_MAX_A = 0.5


class CheckResult:
    __slots__ = ("name", "status", "detail")

    def __init__(self, name: str, status: str, detail: str):
        self.name = name
        self.status = status
        self.detail = detail

    def __repr__(self):
        return f"CheckResult({self.name!r}, {self.status!r}, {self.detail!r})"


def passed(results: list[CheckResult]) -> bool:
    return all(r.status != FAIL for r in results)


async def run_selftest(
    board, *, relay_timeout_ms: int | None = None, meter_timeout_s: float = 5.0
) -> list[CheckResult]:
    """Run every check on a built board (see ``board.build.build_board``)."""
    results = [await _check_meter(board, meter_timeout_s)]
    pilot_result = _check_pilot(board)
    results.append(pilot_result)
    vehicle_present = board.pilot.state in ("B", "C", "D")
    results.extend(await _check_relay(board, relay_timeout_ms, vehicle_present))
    return results


async def run_running_checks(board, *, read_meter, relay_lock=None, relay_timeout_ms: int | None = None,
                             meter_timeout_s: float = 5.0) -> list[CheckResult]:
    """The subset that is safe on a running charger, where the safety gate owns the relay.

    Nothing is closed: the meter is judged from a reading the charger's own poll took
    (``read_meter``; two readers on one Modbus link would interleave), the pilot as above, and
    the relay is commanded open (under the runtime's ``relay_lock``) and its mirror contact
    must follow. Closing it is the gate's alone, so "relay closes" is skipped with the way to
    run it: the agent stopped, ``urja selftest``.
    """
    results = [await _check_meter(board, meter_timeout_s, read=read_meter), _check_pilot(board)]
    results.append(CheckResult("relay closes", SKIP, "closed only by the safety gate while the charger runs; "
                                                     "stop the agent and run `urja selftest` to switch it"))
    results.append(await _check_relay_opens(board, relay_timeout_ms, relay_lock))
    return results


async def _check_relay_opens(board, timeout_ms: int | None, lock) -> CheckResult:
    name = "relay opens"
    relay = board.relay
    timeout_ms = relay.settle_ms if timeout_ms is None else timeout_ms
    async with lock if lock is not None else contextlib.nullcontext():
        try:
            await relay.open()
            settled = await relay.wait_settled(timeout_ms=timeout_ms)
        except DriverError as exc:
            return CheckResult(name, FAIL, f"{exc.code}: {exc}")
    if not relay.has_feedback:
        return CheckResult(name, PASS, "commanded open; no feedback contact to confirm")
    if settled:
        return CheckResult(name, PASS, f"feedback open within {timeout_ms} ms")
    return CheckResult(name, FAIL, f"commanded open but feedback still closed after {timeout_ms} ms (welded contacts?)")


async def _check_meter(board, timeout_s: float, read=None) -> CheckResult:
    name = "meter answers"
    try:
        reading = await asyncio.wait_for((read or board.meter.read)(), timeout_s)
    except asyncio.TimeoutError:
        return CheckResult(name, FAIL, f"no reading within {timeout_s:g} s")
    except DriverError as exc:
        return CheckResult(name, FAIL, f"{exc.code}: {exc}")
    problems = []
    for i, volts in enumerate(reading.voltage_v, 1):
        if not VOLTAGE_MIN_V <= volts <= VOLTAGE_MAX_V:
            problems.append(f"L{i} {volts:.1f} V outside {VOLTAGE_MIN_V:g}-{VOLTAGE_MAX_V:g} V")
    hz = reading.frequency_hz
    if hz is not None and not FREQUENCY_MIN_HZ <= hz <= FREQUENCY_MAX_HZ:
        problems.append(f"{hz:.2f} Hz outside {FREQUENCY_MIN_HZ:g}-{FREQUENCY_MAX_HZ:g} Hz")
    for i, amps in enumerate(reading.current_a, 1):
        if amps > IDLE_CURRENT_MAX_A:
            problems.append(f"L{i} {amps:.2f} A flowing with the relay open")
    if reading.energy_import_wh < 0:
        problems.append(f"energy register negative ({reading.energy_import_wh} Wh)")
    serial = reading.serial or getattr(board.meter, "serial", None) or "unknown"
    volts = "/".join(f"{v:.1f}" for v in reading.voltage_v)
    summary = f"serial {serial}, {volts} V, " + (f"{hz:.2f} Hz, " if hz is not None else "") + \
        f"{reading.energy_import_wh / 1000:.3f} kWh"
    if problems:
        return CheckResult(name, FAIL, "; ".join(problems) + f" ({summary})")
    return CheckResult(name, PASS, summary)


def _check_pilot(board) -> CheckResult:
    name = "pilot reads A"
    pilot = board.pilot
    if not pilot.has_pilot:
        return CheckResult(name, SKIP, "board has no control pilot (socket outlet)")
    if pilot.state != "A":
        hint = "unplug the vehicle" if pilot.state in ("B", "C", "D") else "check the pilot wiring"
        return CheckResult(name, FAIL, f"state {pilot.state} ({pilot.state_text}); {hint}")
    if pilot.diode_fault:
        return CheckResult(name, FAIL, "diode fault reported with nothing connected")
    return CheckResult(name, PASS, "state A (not connected)")


async def _check_relay(board, timeout_ms: int | None, vehicle_present: bool) -> list[CheckResult]:
    relay = board.relay
    timeout_ms = relay.settle_ms if timeout_ms is None else timeout_ms
    names = ("relay closes", "relay opens")
    if vehicle_present:
        why = "not switched with a vehicle connected"
        return [CheckResult(n, SKIP, why) for n in names]
    results = []
    try:
        for name, command, word in ((names[0], relay.close, "closed"), (names[1], relay.open, "open")):
            try:
                await command()
                settled = await relay.wait_settled(timeout_ms=timeout_ms)
            except DriverError as exc:
                results.append(CheckResult(name, FAIL, f"{exc.code}: {exc}"))
                break
            if not relay.has_feedback:
                results.append(CheckResult(name, PASS, f"commanded {word}; no feedback contact to confirm"))
            elif settled:
                results.append(CheckResult(name, PASS, f"feedback {word} within {timeout_ms} ms"))
            else:
                seen = "closed" if relay.feedback else "open"
                fault = "welded contacts?" if word == "open" else "coil or wiring fault?"
                detail = f"commanded {word} but feedback still {seen} after {timeout_ms} ms ({fault})"
                results.append(CheckResult(name, FAIL, detail))
    finally:
        await relay.open()
    for name in names[len(results):]:
        results.append(CheckResult(name, SKIP, "not reached"))
    return results


def format_table(results: list[CheckResult]) -> str:
    width = max(len(r.name) for r in results)
    lines = [f"{'check'.ljust(width)}  result  detail", f"{'-' * width}  ------  ------"]
    for r in results:
        lines.append(f"{r.name.ljust(width)}  {r.status.upper().ljust(6)}  {r.detail}")
    verdict = "PASS" if passed(results) else "FAIL"
    lines.append(f"self-test {verdict}: {sum(r.status == PASS for r in results)} passed, "
                 f"{sum(r.status == FAIL for r in results)} failed, {sum(r.status == SKIP for r in results)} skipped")
    return "\n".join(lines)
