"""The site owner's ``[network]`` choices that shape the charger's contracts.

Why its own module: the MQTT binding reads the same ``[network]`` table for its transport
keys and checks them against ``POLICY_KEYS`` without loading the provider logic.
"""
from __future__ import annotations

from dataclasses import dataclass

from drivers.configfile import Section

PAYMENT_POLICIES = ("prepaid", "postpaid_certified")
POLICY_KEYS = ("payment", "reservation_grace_s", "cancellation_fee_paise", "quote_ttl_s", "max_advance_s",
               "hold_lead_s")
# ``[network]`` keys the MQTT binding reads (``protocols.mqtt.stack.NetworkConfig``)
NETWORK_TRANSPORT_KEYS = ("brokers", "protocol", "topic_root", "username", "password", "ca_file", "cert_file",
                          "key_file", "keepalive_s", "agency_public_key", "registry_url")


@dataclass(frozen=True, kw_only=True)
class Policy:
    """The site owner's ``[network]`` choices that shape contracts."""

    payment: str = "prepaid"
    reservation_grace_s: int = 900
    cancellation_fee_paise: int = 0
    quote_ttl_s: int = 300
    max_advance_s: int = 86400
    hold_lead_s: int = 900

    @classmethod
    def from_site(cls, site) -> "Policy":
        """Read the keys this module owns from ``[network]`` (other bindings read the rest)."""
        data = (getattr(site, "extra", None) or {}).get("network") or {}
        sec = Section(data, getattr(site, "path", "<site>"), "network")
        sec.known(*NETWORK_TRANSPORT_KEYS)
        policy = cls(
            payment=sec.str("payment", "prepaid", choices=PAYMENT_POLICIES),
            reservation_grace_s=sec.int("reservation_grace_s", 900, min=60, max=86400),
            cancellation_fee_paise=sec.int("cancellation_fee_paise", 0, min=0, max=10_000_000),
            quote_ttl_s=sec.int("quote_ttl_s", 300, min=10, max=86400),
            max_advance_s=sec.int("max_advance_s", 86400, min=0, max=30 * 86400),
            hold_lead_s=sec.int("hold_lead_s", 900, min=0, max=86400),
        )
        sec.finish()  # a misspelt key must not silently leave a default in force
        return policy

