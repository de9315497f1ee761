"""The charger's side of being fronted: which bridges it lets speak for it.

Read from the charger's ``[network] bridges`` and carried in its signed, retained presence
(``protocols.mqtt.framing.presence_body``), so every bridge learns it from the broker. The
list is the charger's preference, not a trust boundary: the charger verifies every message it
gets whichever way it came, and the broker's access rules decide who may publish to its inbox.
"""
from __future__ import annotations

from drivers.configfile import Section
from protocols.errors import ProtocolError
from protocols.mqtt.topics import check_subscriber_id

MAX_FRONTING_BRIDGES = 8


def fronting_bridges(section: Section) -> tuple[str, ...]:
    """``bridges`` of a charger's ``[network]`` table: subscriber ids of bridges, at most 8."""
    value = section.list("bridges", [])
    try:
        ids = tuple(check_subscriber_id(v) for v in value)
    except ProtocolError:
        ids = ()
    if len(ids) != len(value) or len(ids) > MAX_FRONTING_BRIDGES or len(set(ids)) != len(ids):
        raise section.error("bridges", f"must be at most {MAX_FRONTING_BRIDGES} distinct bridge subscriber ids",
                            '["bridge-a.example.net"]')
    return ids
