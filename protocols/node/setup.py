"""Building a node from command-line flags and the ``[network]`` / ``[node]`` tables.

Shared by ``urja discover`` and ``urja charge`` so both read the same settings the same way::

    [network]
    brokers = ["mqtt://127.0.0.1:1883"]
    agency_public_key = "base64 of the agency's Ed25519 key"   # or a path to agency.pub
    protocol = "5"

    profile = "beckn-2.0"          # the network's protocol (default for the node: 2.0)
    network_id = "acmenet.org/charge-net"  # 2.0: the network, a registry on a DeDi host
    dedi_url = "https://dedi.example/dedi" # 2.0: look keys up there (the catalog service's, and
                                   # chargers' that carry no agency certificate)

    [node]
    subscriber_id = "app.example.in"
    key_dir = "node-keys"          # a keyring made with `urja keygen`
    certificate = "node-cert.json" # the agency's certificate for it (type BAP)
    cds_url = "https://cds.example/beckn"  # optional: discover through a catalog discovery service

Flags override the file. Without a certificate a node can still read the chargers' retained,
signed catalogs (``urja discover`` does so); asking a charger anything needs one.
"""
from __future__ import annotations

import base64
import binascii
import json
import uuid
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric import ed25519

from drivers.configfile import ConfigError, Section, load_toml
from protocols.beckn2.vocabulary import PROFILE_V2
from protocols.errors import ProtocolError
from protocols.mqtt.identity import make_identity
from protocols.mqtt.stack import NetworkConfig
from protocols.mqtt.topics import Topics
from protocols.mqtt.transport import MqttTransport
from protocols.node.client import NetworkNode
from protocols.node.options import DEFAULT_CONFIG, add_node_options  # noqa: F401  (re-exported)
from protocols.signing.agency import load_agency, read_agency_public_key
from protocols.signing.keys import Ed25519Signer


class SetupError(ProtocolError):
    code = "node-setup"


def _agency_key(value: str, where: str) -> bytes:
    if Path(value).exists():
        return read_agency_public_key(value)
    try:
        raw = base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raw = b""
    if len(raw) != 32:
        raise SetupError(f"{where}: agency key must be base64 of 32 bytes or a path to agency.pub/agency.json")
    return raw


def _read_certificate(path: str) -> dict:
    try:
        doc = json.loads(Path(path).read_text(encoding="utf-8"))
    except OSError as exc:
        raise SetupError(f"certificate {path}: cannot be read: {exc.strerror or exc}") from None
    except (ValueError, RecursionError) as exc:
        raise SetupError(f"certificate {path}: not valid JSON: {exc}") from None
    if not isinstance(doc, dict):
        raise SetupError(f"certificate {path}: must be a JSON object (from `urja agency certify`)")
    return doc


def build_node(args, *, clock) -> NetworkNode:
    """A node ready to ``start()``; raises ``ConfigError``/``SetupError`` naming what is missing."""
    data: dict = {}
    config_path = args.config or (DEFAULT_CONFIG if Path(DEFAULT_CONFIG).exists() else None)
    if config_path:
        data = load_toml(config_path)
    net = NetworkConfig.from_table(data.get("network"), config_path or "<flags>")
    node_sec = Section(data.get("node") or {}, config_path or "<flags>", "node")
    base = Path(config_path).parent if config_path else Path(".")

    def rel(value):
        return None if value is None else str(value if Path(value).is_absolute() else base / value)

    # every key is read before the flags are applied, so ``finish()`` knows them all
    file_subscriber_id = node_sec.str("subscriber_id", None)
    file_key_dir = rel(node_sec.str("key_dir", None))
    file_cert = rel(node_sec.str("certificate", None))
    cds_url = node_sec.str("cds_url", None)
    if cds_url is not None and not cds_url.startswith(("http://", "https://")):
        raise node_sec.error("cds_url", f"not an http(s) URL: {cds_url!r}", "https://cds.example/beckn")
    node_sec.finish()
    # the reference node speaks 2.0 unless told otherwise (a flag, or the file's own choice)
    profile = getattr(args, "profile", None) or ((data.get("network") or {}).get("profile") and net.policy.profile) \
        or PROFILE_V2
    subscriber_id = getattr(args, "node_subscriber_id", None) or file_subscriber_id
    key_dir = args.key_dir or file_key_dir
    cert_file = args.certificate or file_cert
    brokers = tuple(args.broker) or net.brokers
    agency_text = args.agency_key or net.agency_public_key
    if args.agency_dir and not agency_text:
        agency_text = str(Path(args.agency_dir) / "agency.pub")
    if not agency_text:
        raise ConfigError(config_path or "<flags>", "network.agency_public_key",
                          "missing: give --agency-key or set it in the config", allowed="base64 key or agency.pub path")
    agency_key = _agency_key(agency_text, "--agency-key" if args.agency_key else "network.agency_public_key")
    now = clock()
    certificate = None
    if key_dir:
        from protocols.signing.keys import load_keyring
        keyring = load_keyring(key_dir)
        signer = keyring.signer(now)
        if cert_file:
            certificate = _read_certificate(cert_file)
    else:
        subscriber_id = subscriber_id or f"node-{uuid.uuid4().hex[:12]}"
        if args.agency_dir:
            ident = make_identity(load_agency(args.agency_dir), subscriber_id, lat=0.0, lon=0.0, now_s=now,
                                  kind="BAP", valid_days=1)
            signer, certificate = ident.signer, ident.certificate
        else:
            # no certificate: chargers will not answer this key, but retained catalogs can be read
            signer = Ed25519Signer(subscriber_id=subscriber_id, key_id="ephemeral",
                                   private_key=ed25519.Ed25519PrivateKey.generate())
    settings = net.mqtt_settings(client_id=f"{signer.subscriber_id}-{uuid.uuid4().hex[:6]}", brokers=brokers)
    node = NetworkNode(transport=MqttTransport(settings), subscriber_id=signer.subscriber_id, signer=signer,
                       agency_public_key=agency_key, clock=clock, certificate=certificate,
                       topics=Topics(net.topic_root), profile=profile, network_id=net.policy.network_id)
    node.cds_url = cds_url
    if net.dedi_url is not None:  # keys no agency certificate vouches for: the network's DeDi registry
        from protocols.beckn2.dedi import DediRegistryClient

        node.use_registry(DediRegistryClient(session=None, base_url=net.dedi_url, clock=clock,
                                             network=net.policy.network_id))
    if getattr(args, "revocations", None):
        from protocols.signing.agency import read_revocation_file

        try:
            node.certs.set_revocations(read_revocation_file(args.revocations, agency_key))
        except ProtocolError as exc:
            raise ConfigError("<flags>", "--revocations", str(exc)) from None
    return node
