"""Several boards on one site share one limit, over MQTT on the site's local broker.

``[load_share]`` in the site configuration: ``role`` (``manager`` on the board with the grid
meter and the ``[load]`` table, ``follower`` on the others, up to 8 boards a site), ``broker``
(the local broker's URL), ``site`` and ``board`` (topic names: the site, and this board, unique
on it), ``period_ms`` (how often a follower reports and the manager answers), ``timeout_ms``
(a follower without an answer for this long falls back to ``safe_share_a`` on each connector;
the manager leaves a silent follower out of the budget after as long).

Topics: a follower publishes its connectors to ``urja/v1/load/<site>/<board>/state`` and takes
its shares from ``urja/v1/load/<site>/<board>/shares``; both JSON (``agent.load.federation``).
The decisions are the site's load manager's (``agent.load``); this binding only carries them,
through the ``ChargerService`` facade.
"""
from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from agent.bindings import BindingSpec
from drivers.configfile import Section

ROLES = ("manager", "follower")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]{0,31}$")


@dataclass(frozen=True, kw_only=True)
class LoadShareSettings:
    role: str
    broker: str
    site: str
    board: str
    period_ms: int = 1000
    timeout_ms: int = 5000
    safe_share_a: float = 6.0


def parse(data: dict, file: Path) -> LoadShareSettings:
    sec = Section(data, file, "load_share")
    role = sec.str("role", choices=ROLES)
    broker = sec.str("broker")
    if not broker.startswith(("mqtt://", "mqtts://")):
        raise sec.error("broker", f"not a broker URL {broker!r}", "mqtt://host:port or mqtts://host:port")
    names = {}
    for key in ("site", "board"):
        value = sec.str(key)
        if not _NAME.match(value):
            raise sec.error(key, f"{value!r} is not a topic name", "lower-case letters, digits, '-' and '_'")
        names[key] = value
    period_ms = sec.int("period_ms", 1000, min=100, max=10_000)
    timeout_ms = sec.int("timeout_ms", 5000, min=500, max=60_000)
    if timeout_ms < 2 * period_ms:
        raise sec.error("timeout_ms", f"{timeout_ms} leaves no room for a lost message", f"at least {2 * period_ms}")
    safe_share_a = sec.float("safe_share_a", 6.0, min=0.0, max=80.0)
    sec.finish()
    return LoadShareSettings(role=role, broker=broker, period_ms=period_ms, timeout_ms=timeout_ms,
                             safe_share_a=safe_share_a, **names)


def build(ctx, settings: LoadShareSettings):
    from protocols.loadshare.link import LoadShareLink

    return LoadShareLink(ctx, settings)


BINDING = BindingSpec(table="load_share", parse=parse, build=build)
