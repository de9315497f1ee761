"""A real mosquitto broker for tests: the library broker (``tools/broker.py``) plus TLS files.

Used by the MQTT, node, federation tests and the network benchmark; the demo starts its
broker with the same ``tools.broker.Broker``, so both run the configuration users see.
"""
from __future__ import annotations

import datetime
import ipaddress
from pathlib import Path

from tools.broker import Broker, find_mosquitto, find_mosquitto_passwd, free_port

MOSQUITTO = find_mosquitto()
MOSQUITTO_PASSWD = find_mosquitto_passwd()

__all__ = ["MOSQUITTO", "MOSQUITTO_PASSWD", "Broker", "free_port", "make_tls_files"]


def make_tls_files(directory: Path, *, client_cn: str | None = None) -> dict:
    """A throwaway CA, a server certificate for 127.0.0.1/localhost and optionally a client one."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.timezone.utc)

    def name(cn):
        return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])

    def write_key(key, path):
        path.write_bytes(key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))

    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = (x509.CertificateBuilder().subject_name(name("urja test CA")).issuer_name(name("urja test CA"))
          .public_key(ca_key.public_key()).serial_number(x509.random_serial_number())
          .not_valid_before(now - datetime.timedelta(minutes=5)).not_valid_after(now + datetime.timedelta(days=1))
          .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
          .sign(ca_key, hashes.SHA256()))
    out = {"ca": directory / "ca.pem"}
    out["ca"].write_bytes(ca.public_bytes(serialization.Encoding.PEM))

    def leaf(cn, san, stem):
        key = ec.generate_private_key(ec.SECP256R1())
        builder = (x509.CertificateBuilder().subject_name(name(cn)).issuer_name(ca.subject)
                   .public_key(key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(minutes=5))
                   .not_valid_after(now + datetime.timedelta(days=1)))
        if san:
            builder = builder.add_extension(x509.SubjectAlternativeName(san), critical=False)
        cert = builder.sign(ca_key, hashes.SHA256())
        (directory / f"{stem}.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
        write_key(key, directory / f"{stem}.key")
        return directory / f"{stem}.pem", directory / f"{stem}.key"

    out["cert"], out["key"] = leaf("127.0.0.1", [x509.IPAddress(ipaddress.ip_address("127.0.0.1")),
                                                  x509.DNSName("localhost")], "server")
    if client_cn:
        out["client_cert"], out["client_key"] = leaf(client_cn, None, "client")
    return out
