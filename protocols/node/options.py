"""The command-line options of a node (``urja discover``, ``urja charge``), apart from the node.

Registering the ``urja`` sub-commands reads this module for every command, so it imports
nothing: the MQTT client and the crypto library load only when a node is built
(``protocols.node.setup``).
"""
from __future__ import annotations

from protocols.beckn2.vocabulary import PROFILES  # plain names, no imports of its own

DEFAULT_CONFIG = "/etc/urja/urja.toml"


def add_node_options(p) -> None:
    p.add_argument("--config", help=f"read [network] and [node] from this TOML file (default {DEFAULT_CONFIG} if present)")
    p.add_argument("--broker", action="append", default=[], help="broker URL, e.g. mqtt://127.0.0.1:1883 (repeatable: failover order)")
    p.add_argument("--agency-key", help="agency public key: base64 text, agency.pub or agency.json")
    # its own dest: ``urja charge`` names the charger in a positional ``subscriber_id``
    p.add_argument("--subscriber-id", dest="node_subscriber_id", help="this node's network subscriber id")
    p.add_argument("--key-dir", help="this node's keyring (from `urja keygen`)")
    p.add_argument("--certificate", help="the agency's certificate for this node's key (JSON)")
    p.add_argument("--agency-dir", help="pilot networks: let this local agency certify a fresh node key")
    p.add_argument("--revocations", help="the agency's signed revocation list (JSON): revoked chargers are refused")
    p.add_argument("--timeout", type=float, default=3.0, help="seconds to wait for answers (default 3)")
    p.add_argument("--profile", choices=PROFILES, help="the network's protocol (default: [network] profile, "
                                                        "else beckn-2.0)")
