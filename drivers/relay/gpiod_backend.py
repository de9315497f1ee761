"""The ``gpiod`` relay backend: a coil on a GPIO line, an optional mirror contact on another.

Reading the profile needs no ``gpiod``: ``drivers.relay.gpiod_relay`` (which imports it at its
top) is imported only when the relay is built, so a GPIO profile can be checked anywhere.
"""
from __future__ import annotations

from typing import Any, Mapping

from drivers.backend import Backend, BoardFacts, BuildParts
from drivers.configfile import Section
from drivers.relay.settings import read_fail_safe, read_settle_ms


def read_line(sec: Section, name: str, *, required: bool) -> int | str | None:
    """A GPIO line: an offset on the chip or a line name from the device tree."""
    if not sec.has(name):
        return sec.str(name) if required else sec.str(name, None)
    value = sec.data[name]
    if isinstance(value, str):
        if not value:
            raise sec.error(name, "line name must not be empty")
        return sec.str(name)
    if isinstance(value, int) and not isinstance(value, bool):
        return sec.int(name, min=0, max=4095)
    raise sec.error(name, f"must be a line offset (whole number) or a line name (string), got {value!r}")


def parse(sec: Section, facts: BoardFacts) -> dict[str, Any]:
    opts: dict[str, Any] = {"settle_ms": read_settle_ms(sec)}
    opts["chip"] = sec.str("chip", "/dev/gpiochip0")
    opts["line"] = read_line(sec, "line", required=True)
    opts["active_low"] = sec.bool("active_low", False)
    opts["feedback_line"] = read_line(sec, "feedback_line", required=False)
    opts["feedback_active_low"] = sec.bool("feedback_active_low", False)
    if opts["feedback_line"] is not None and opts["feedback_line"] == opts["line"]:
        raise sec.error("feedback_line", "must differ from relay.line")
    opts["fail_safe"] = read_fail_safe(sec)
    return opts


async def build(settings: Mapping[str, Any], parts: BuildParts):
    from drivers.relay.gpiod_relay import GpiodRelay

    opts = {k: v for k, v in settings.items() if k != "fail_safe"}
    return GpiodRelay(clock=parts.clock, sleep=parts.sleep, request_lines=parts.gpio_request_lines, **opts)


BACKEND = Backend(kind="relay", name="gpiod", parse=parse, build=build)
