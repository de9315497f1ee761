"""The site owner's ``[network]`` choices that shape the charger's contracts.

Why its own module: the MQTT binding parses the ``[network]`` table (its transport keys and
these) without loading the provider logic.
"""
from __future__ import annotations

from dataclasses import dataclass

from drivers.configfile import Section

PAYMENT_POLICIES = ("prepaid", "postpaid_certified")
# The wire protocols a binding can speak (``protocols.beckn.profile``); a site whose file names
# none keeps the 1.1 it always spoke, and ``urja`` writes 2.0 into every new site's file.
PROTOCOL_PROFILES = ("beckn-1.1", "beckn-2.0")
DEFAULT_NETWORK_ID = "urja.local/ev-charging"


@dataclass(frozen=True, kw_only=True)
class Policy:
    """The site owner's ``[network]`` choices that shape contracts."""

    payment: str = "prepaid"
    reservation_grace_s: int = 900
    cancellation_fee_paise: int = 0
    quote_ttl_s: int = 300
    max_advance_s: int = 86400
    hold_lead_s: int = 900
    profile: str = "beckn-1.1"
    network_id: str = DEFAULT_NETWORK_ID  # Beckn 2.0 ``context.networkId``: {namespace}/{registry}[@host]

    @classmethod
    def from_section(cls, sec: Section) -> "Policy":
        """Read this module's keys from the ``[network]`` table's section.

        The table is parsed once, with the transport's keys, by
        ``protocols.mqtt.stack.NetworkConfig.from_table``, which calls this and then rejects any
        key neither read: so no list of the other's keys is kept on either side.
        """
        return cls(
            payment=sec.str("payment", "prepaid", choices=PAYMENT_POLICIES),
            reservation_grace_s=sec.int("reservation_grace_s", 900, min=60, max=86400),
            cancellation_fee_paise=sec.int("cancellation_fee_paise", 0, min=0, max=10_000_000),
            quote_ttl_s=sec.int("quote_ttl_s", 300, min=10, max=86400),
            max_advance_s=sec.int("max_advance_s", 86400, min=0, max=30 * 86400),
            hold_lead_s=sec.int("hold_lead_s", 900, min=0, max=86400),
            profile=sec.str("profile", "beckn-1.1", choices=PROTOCOL_PROFILES),
            network_id=_network_id(sec),
        )

    @classmethod
    def from_site(cls, site) -> "Policy":
        """The policy of a loaded site (its parsed ``[network]`` settings), or, for a site built
        in code without loading a file, read from its raw ``[network]`` table."""
        settings = (getattr(site, "bindings", None) or {}).get("network")
        if settings is None:
            # The table's one parse (transport and policy keys, unknown keys refused) lives with
            # the network binding; imported here only for a site that skipped it.
            from protocols.mqtt.stack import NetworkConfig

            data = (getattr(site, "extra", None) or {}).get("network") or {}
            settings = NetworkConfig.from_table(data, getattr(site, "path", "<site>"))
        return settings.policy


def _network_id(sec: Section) -> str:
    value = sec.str("network_id", DEFAULT_NETWORK_ID)
    namespace, slash, rest = value.partition("/")
    if not slash or not namespace or not rest or any(c.isspace() for c in value) or len(value) > 200:
        raise sec.error("network_id", f"not a network id: {value!r}", "{namespace}/{registry}[@dedi-host], "
                                                                     "e.g. acmenet.org/charge-net")
    return value
