"""In-memory network identities: a signing key with its agency certificate, made without files.

Fleet mode, benchmarks and tests put hundreds of chargers (and nodes) on one broker; giving
each a keyring on disk would test the file system, not the network. The records are exactly
what ``urja keygen`` + ``urja agency certify`` produce, signed by a real agency key.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, x25519

from protocols.signing._codec import b64encode, format_time
from protocols.signing.agency import Agency, certify
from protocols.signing.detached import sign_object
from protocols.signing.keys import DEFAULT_DOMAIN, Ed25519Signer


@dataclass
class NetworkIdentity:
    signer: Ed25519Signer
    certificate: dict

    @property
    def subscriber_id(self) -> str:
        return self.signer.subscriber_id

    def signer_for(self, now_s: float) -> Ed25519Signer:
        return self.signer


def memory_agency(agency_id: str = "agency", key_id: str = "agency-key-1") -> Agency:
    return Agency(agency_id=agency_id, key_id=key_id, private_key=ed25519.Ed25519PrivateKey.generate(),
                  agency_dir=Path("/nonexistent/agency"))


def make_identity(agency: Agency, subscriber_id: str, *, lat: float, lon: float, now_s: float,
                  kind: str = "BPP", key_id: str | None = None, valid_days: int = 30,
                  city: str = "std:080", domain: str = DEFAULT_DOMAIN,
                  private_key: ed25519.Ed25519PrivateKey | None = None) -> NetworkIdentity:
    """A key pair (fresh unless ``private_key`` is given, e.g. for a key another process
    holds) and the agency's certificate for it (``kind`` BPP for chargers, BAP for nodes)."""
    key = private_key or ed25519.Ed25519PrivateKey.generate()
    key_id = key_id or f"{subscriber_id}-k1"
    signer = Ed25519Signer(subscriber_id=subscriber_id, key_id=key_id, private_key=key)
    encr = x25519.X25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    record = {"subscriber_id": subscriber_id, "unique_key_id": key_id, "signing_public_key": b64encode(signer.public_key_bytes),
              "encr_public_key": b64encode(encr), "type": kind, "domain": domain, "city": city, "country": "IND",
              "gps": f"{lat:.6f},{lon:.6f}", "valid_from": format_time(now_s - 60),
              "valid_until": format_time(now_s + valid_days * 86400)}
    if kind == "BPP":
        cert = certify(record, agency, valid_days=valid_days, now_s=now_s - 60)
    else:
        # the agency tool certifies chargers only; buyer certificates share the record format
        cert = sign_object({**record, "status": "SUBSCRIBED"}, agency.signer)
    return NetworkIdentity(signer, cert)
