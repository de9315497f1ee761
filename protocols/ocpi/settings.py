"""The ``[ocpi]`` table of the site configuration, validated with errors naming file and key.

A charger usually sits behind NAT, a reverse proxy or a tunnel, so the URL partners use
(``public_url``) is configured apart from the address we listen on (``listen``); TLS on the
charger itself is optional (``tls_cert``/``tls_key``).
"""
from __future__ import annotations

import ssl
from pathlib import Path
from urllib.parse import urlparse

from drivers.configfile import Section, check_writable_path, pointed_by, read_bounded


class OcpiSettings:
    def __init__(self, *, enabled: bool, listen_host: str, listen_port: int, public_url: str, country_code: str,
                 party_id: str, tls_cert: Path | None, tls_key: Path | None, business_name: str | None,
                 store: Path | None):
        self.enabled = enabled
        self.listen_host = listen_host
        self.listen_port = listen_port
        self.public_url = public_url
        self.country_code = country_code
        self.party_id = party_id
        self.tls_cert = tls_cert
        self.tls_key = tls_key
        self.business_name = business_name
        self.store = store

    @classmethod
    def from_site(cls, site) -> "OcpiSettings":
        path = Path(getattr(site, "path", "urja.toml"))
        data = (getattr(site, "extra", None) or {}).get("ocpi", {})
        return cls.from_table(data, path)

    @classmethod
    def from_table(cls, data: dict, path) -> "OcpiSettings":
        sec = Section(data, path, "ocpi")
        enabled = sec.bool("enabled", bool(data))
        listen = sec.str("listen", "0.0.0.0:8443")
        host, _, port = listen.rpartition(":")
        if not host or not port.isdigit() or not 0 <= int(port) <= 65535:
            raise sec.error("listen", f"must be host:port, got {listen!r}", "e.g. 0.0.0.0:8443")
        tls_cert = sec.str("tls_cert", None)
        tls_key = sec.str("tls_key", None)
        if (tls_cert is None) != (tls_key is None):
            raise sec.error("tls_key" if tls_key is None else "tls_cert", "tls_cert and tls_key go together")
        scheme = "https" if tls_cert else "http"
        default_url = f"{scheme}://{'127.0.0.1' if host in ('0.0.0.0', '::') else host}:{port}/ocpi"
        public_url = sec.str("public_url", default_url).rstrip("/")
        parsed = urlparse(public_url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise sec.error("public_url", f"must be an http(s) URL, got {public_url!r}", "e.g. https://charger.example/ocpi")
        country_code = sec.str("country_code", "IN")
        if len(country_code) != 2 or not country_code.isalpha() or not country_code.isupper():
            raise sec.error("country_code", f"must be 2 capital letters, got {country_code!r}", "ISO 3166-1 alpha-2, e.g. IN")
        party_id = sec.str("party_id", "URJ")
        if len(party_id) != 3 or not party_id.isalnum() or not party_id.isupper():
            raise sec.error("party_id", f"must be 3 capital letters or digits, got {party_id!r}", "e.g. URJ")
        business_name = sec.str("business_name", None)
        store = sec.str("store", None)
        sec.finish()
        base = Path(path).parent

        def resolve(value):
            if value is None:
                return None
            p = Path(value)
            return p if p.is_absolute() else base / p

        settings = cls(enabled=enabled, listen_host=host, listen_port=int(port), public_url=public_url,
                       country_code=country_code, party_id=party_id, tls_cert=resolve(tls_cert),
                       tls_key=resolve(tls_key), business_name=business_name, store=resolve(store))
        settings._check_files(sec)
        return settings

    def _check_files(self, sec: Section) -> None:
        """The files the table names are usable now, not when the first partner connects."""
        if self.store is not None:
            with pointed_by(sec.file, sec.key("store")):
                check_writable_path(self.store)
        if self.tls_cert is None:
            return
        for name, path in (("tls_cert", self.tls_cert), ("tls_key", self.tls_key)):
            with pointed_by(sec.file, sec.key(name)):
                read_bounded(path)
        try:
            self.ssl_context()
        except (ssl.SSLError, ValueError) as exc:
            raise sec.error("tls_cert", f"{self.tls_cert} and {self.tls_key} are not a PEM certificate and "
                                        f"its private key: {exc}") from None

    def store_path(self, site) -> Path:
        """Registrations live beside the journal unless ``store`` says otherwise."""
        if self.store is not None:
            return self.store
        return Path(site.journal_path).parent / "ocpi.sqlite"

    def ssl_context(self) -> ssl.SSLContext | None:
        if self.tls_cert is None:
            return None
        ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ctx.load_cert_chain(str(self.tls_cert), str(self.tls_key))
        return ctx
