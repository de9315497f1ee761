"""A binding as small as one can be, registered by the tests the way every binding is."""
from __future__ import annotations

from pathlib import Path

from agent.bindings import BindingSpec
from drivers.configfile import Section

EVENTS: list = []
class EchoSettings:
    def __init__(self, greeting: str):
        self.greeting = greeting


def parse(data: dict, file: Path) -> EchoSettings:
    sec = Section(data, file, "echo")
    greeting = sec.str("greeting", "hello")
    sec.finish()
    return EchoSettings(greeting)


class Echo:
    def __init__(self, ctx, settings):
        self.ctx = ctx
        self.settings = settings

    async def start(self) -> None:
        # started after the runtime: the charger is reconciled and its connector readable
        EVENTS.append(("start", self.settings.greeting, self.ctx.service.connectors()[0].status))

    def describe(self) -> str:
        return f"echo says {self.settings.greeting}"

    async def close(self) -> None:
        EVENTS.append(("close", self.ctx.service.connectors()[0].status))


BINDING = BindingSpec(table="echo", parse=parse, build=Echo)
