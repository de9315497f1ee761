"""The charger's side of being fronted: which bridges it lets speak for it, and where buyers reach it.

Read from the charger's ``[network] bridges`` and carried in its signed, retained presence
(``protocols.mqtt.framing.presence_body``), so every bridge learns it from the broker. The
list is the charger's preference, not a trust boundary: the charger verifies every message it
gets whichever way it came, and the broker's access rules decide who may publish to its inbox.

``bridge_url`` is the public URL buyers reach the charger at through those bridges (one bridge's
``public_url``, or the address of a load balancer before several). A Beckn 2.0 charger names it
as its catalog's ``bppUri``, which it signs: so it comes from the charger's own configuration,
never from a bridge's presence on the broker, which nobody signs.
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


def fronted_url(section: Section, bridges: tuple[str, ...]) -> str | None:
    """``bridge_url`` of a charger's ``[network]`` table: an http(s) URL, only beside ``bridges``."""
    url = section.str("bridge_url", None)
    if url is None:
        return None
    if not url.startswith(("http://", "https://")) or len(url) > 512 or any(c.isspace() for c in url):
        raise section.error("bridge_url", f"{url!r} is not an http(s) URL", "https://bridge-a.example.net")
    if not bridges:
        raise section.error("bridge_url", "needs bridges: the bridges that answer at this URL",
                            'bridges = ["bridge-a.example.net"]')
    return url.rstrip("/")
