"""Relay on a GPIO line through the Linux GPIO character device (libgpiod 2.x bindings).

This is the only module that imports ``gpiod``; nothing imports it until a board profile asks
for the ``gpiod`` relay backend, so the agent runs on machines without GPIO.

Why the line is safe when the agent is gone: the output is requested with the *inactive* level
(contacts open, ``active_low`` taken into account) so there is no glitch closed at start-up;
``release()`` drives it inactive and hands the request back; and if the process dies (crash,
``kill -9``) the kernel releases the request with the file descriptor. A released line is no
longer driven, so the board must pull the driver input to the open level (pull-down on the
transistor or opto input, normally-open contactor). The board profile records how its hardware
does this in ``relay.fail_safe``.
"""
from __future__ import annotations

import asyncio
import time
from typing import Any, Awaitable, Callable

import gpiod
from gpiod.line import Direction, Drive, Value

from drivers.relay.base import Relay, RelayError

RequestLines = Callable[..., Any]


class GpiodRelay(Relay):
    """Relay coil on one output line, with an optional mirror contact on an input line.

    ``chip`` is a path such as ``/dev/gpiochip0``; ``line`` and ``feedback_line`` are offsets
    or line names from the device tree (``"RELAY_EN"``). ``request_lines`` defaults to
    ``gpiod.request_lines`` and is injectable so the logic can be tested with a fake request.
    """

    def __init__(
        self,
        *,
        chip: str,
        line: int | str,
        active_low: bool = False,
        feedback_line: int | str | None = None,
        feedback_active_low: bool = False,
        consumer: str = "urja-relay",
        request_lines: RequestLines | None = None,
        settle_ms: int = 100,
        poll_ms: int = 5,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[None]] = asyncio.sleep,
    ):
        super().__init__(settle_ms=settle_ms, poll_ms=poll_ms, clock=clock, sleep=sleep)
        if feedback_line is not None and feedback_line == line:
            raise ValueError("feedback_line must differ from the relay output line")
        self.chip = chip
        self.line = line
        self.active_low = active_low
        self.feedback_line = feedback_line
        self.feedback_active_low = feedback_active_low
        self.consumer = consumer
        self._request_lines = request_lines or gpiod.request_lines
        self._request: Any = None

    @property
    def has_feedback(self) -> bool:
        return self.feedback_line is not None

    def line_config(self) -> dict:
        """The line settings requested: the output starts inactive, i.e. contacts open."""
        config = {
            self.line: gpiod.LineSettings(
                direction=Direction.OUTPUT,
                drive=Drive.PUSH_PULL,
                active_low=self.active_low,
                output_value=Value.INACTIVE,
            )
        }
        if self.feedback_line is not None:
            config[self.feedback_line] = gpiod.LineSettings(
                direction=Direction.INPUT, active_low=self.feedback_active_low
            )
        return config

    async def start(self) -> None:
        if self._released:
            raise RelayError("relay already released", code="relay-released")
        if self._request is not None:
            return
        try:
            self._request = self._request_lines(self.chip, config=self.line_config(), consumer=self.consumer)
        except (OSError, ValueError) as exc:
            raise RelayError(
                f"cannot request relay line {self.line!r} on {self.chip}: {exc}",
                code="relay-unavailable",
                chip=self.chip,
                line=self.line,
            ) from exc
        self._closed = False

    def _need_request(self) -> Any:
        if self._request is None:
            raise RelayError("relay not started (call start() first)", code="relay-not-started")
        return self._request

    async def _drive(self, on: bool) -> None:
        if self._request is None:
            if on:
                self._need_request()
            return  # never requested: the line is undriven, which the board keeps open
        try:
            self._request.set_value(self.line, Value.ACTIVE if on else Value.INACTIVE)
        except OSError as exc:
            raise RelayError(f"cannot set relay line {self.line!r}: {exc}", code="relay-io") from exc

    @property
    def feedback(self) -> bool | None:
        if self.feedback_line is None:
            return None
        request = self._need_request()
        try:
            return request.get_value(self.feedback_line) == Value.ACTIVE
        except OSError as exc:
            raise RelayError(
                f"cannot read relay feedback line {self.feedback_line!r}: {exc}", code="relay-io"
            ) from exc

    async def _release_hardware(self) -> None:
        request, self._request = self._request, None
        if request is not None:
            request.release()
