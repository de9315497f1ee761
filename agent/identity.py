"""The charger's identity: its keys and the agency certificate that vouches for them.

Loaded once at start, before the journal or the board is touched, so that a missing key or
certificate stops the agent with one line naming the file and key.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path

from agent.config import SiteConfig
from agent.core.errors import AgentError
from drivers.configfile import ConfigError

log = logging.getLogger("urja.runtime")


class Identity:
    """The charger's keys and its agency certificate, loaded once at start.

    Everything the charger signs (messages, offers, receipts, OCMF) is signed with the key the
    certificate vouches for, not the keyring's newest: after ``urja keygen --rotate`` the new
    key is useless to a buyer until the agency has certified it, and a receipt signed with it
    would not verify (the receipt builder refuses the mismatch outright). Installing the new
    certificate (and restarting) moves everything to the new key.
    """

    def __init__(self, *, keyring, certificate: dict, agency_public_key: bytes | None):
        self.keyring = keyring
        self.certificate = certificate
        self.agency_public_key = agency_public_key
        key_id = certificate.get("unique_key_id") if isinstance(certificate, dict) else None
        self._entry = next((e for e in keyring.entries if e.key_id == key_id), None)

    @property
    def certified_key_id(self) -> str | None:
        return self._entry.key_id if self._entry is not None else None

    def entry(self, now_s: float):
        """The certified key generation (signing, encryption and metering keys)."""
        if self._entry is None:
            raise AgentError(f"the certificate names key {self.certificate.get('unique_key_id')!r}, "
                             f"which is not in {self.keyring.key_dir}")
        return self._entry

    def signer(self, now_s: float):
        from protocols.signing.keys import Ed25519Signer

        entry = self.entry(now_s)
        return Ed25519Signer(subscriber_id=self.keyring.subscriber_id, key_id=entry.key_id,
                             private_key=entry.signing_key)

    def __repr__(self) -> str:
        return f"Identity({self.keyring.subscriber_id!r})"


def load_identity(config: SiteConfig) -> Identity:
    """Keys from ``[identity] key_dir``; the certificate from ``certificate`` or the key dir."""
    from protocols.signing.agency import read_agency_public_key
    from protocols.signing.errors import ProtocolError
    from protocols.signing.keys import load_keyring, read_file

    key_dir = Path(config.key_dir)
    if not key_dir.is_dir() or not any(key_dir.iterdir()):
        raise ConfigError(config.path, "identity.key_dir",
                          f"no keys in {key_dir}; create them with: urja keygen --key-dir {key_dir} "
                          f"--subscriber-id {config.site_id}")
    try:
        keyring = load_keyring(key_dir)
    except ProtocolError as exc:
        raise ConfigError(config.path, "identity.key_dir", str(exc)) from None
    cert_path = Path(config.certificate) if config.certificate else key_dir / "certificate.json"
    try:
        certificate = json.loads(read_file(cert_path).decode("utf-8"))
    except FileNotFoundError:
        raise ConfigError(config.path, "identity.certificate",
                          f"no agency certificate at {cert_path}; ask the agency: "
                          f"urja agency certify {key_dir}/subscription-request.json") from None
    except ValueError as exc:
        raise ConfigError(config.path, "identity.certificate", f"{cert_path} is not JSON: {exc}") from None
    except OSError as exc:
        raise ConfigError(config.path, "identity.certificate", f"{cert_path}: {exc.strerror or exc}") from None
    agency_key = None
    if config.agency_key:
        try:
            agency_key = read_agency_public_key(config.agency_key)
        except (OSError, ProtocolError) as exc:
            raise ConfigError(config.path, "identity.agency_key", str(exc)) from None
    identity = Identity(keyring=keyring, certificate=certificate, agency_public_key=agency_key)
    if identity.certified_key_id is None:
        raise ConfigError(config.path, "identity.certificate",
                          f"{cert_path} certifies key {certificate.get('unique_key_id')!r}, which is not among "
                          f"the keys in {key_dir} ({', '.join(e.key_id for e in keyring.entries)})")
    newest = keyring.entries[-1]
    if newest.key_id != identity.certified_key_id:
        log.warning("key %s waits for its agency certificate; signing with the certified key %s until it is "
                    "installed in %s", newest.key_id, identity.certified_key_id, cert_path)
    return identity


def load_revocations(config: SiteConfig, identity: Identity) -> dict | None:
    """The agency's revocation list named by ``[identity] revocations``, checked, or None.

    A buyer (app) whose certificate the agency revoked must not transact with the charger,
    postpaid least of all; a list that cannot be read or checked stops the start with an
    error naming the file and key, before anything else is opened.
    """
    path = getattr(config, "revocations", None)
    if not path:
        return None
    from protocols.errors import ProtocolError
    from protocols.signing.agency import read_revocation_file

    try:
        return read_revocation_file(path, identity.agency_public_key)
    except ProtocolError as exc:
        raise ConfigError(config.path, "identity.revocations", str(exc)) from None
