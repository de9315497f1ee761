"""One charger's network stack: the Beckn provider, signing and the MQTT binding, wired together.

The runtime (or fleet mode, or a test) supplies a ``ChargerService``, the charger's identity
and the network settings; this module builds ``Bpp`` + ``ChargerLink`` + ``MqttTransport`` and
owns their start and stop order: the provider's unsolicited-message pump starts after the link
(so nothing is sent into a binding that is not listening) and stops before it.

``[network]`` is parsed once, here (``NetworkConfig.from_table``): the transport's keys below and the
provider's own (``protocols.beckn.policy.Policy``: ``payment``, ``quote_ttl_s``, ...)::

    brokers = ["mqtts://broker.example.in:8883", "mqtt://backup.example.in:1883"]   # failover order
    protocol = "5"                 # or "3.1.1"
    topic_root = "urja/v1"
    bridges = ["bridge-a.example.net"]   # optional: HTTP bridges that may front this charger
    bridge_url = "https://bridge-a.example.net"   # Beckn 2.0: where buyers reach it through them;
                                   # the catalog's bppUri, its signed publish kept for the bridges
    username = "..."               # with password; or client certificate:
    password = "..."
    ca_file = "/etc/urja/network-ca.pem"
    cert_file = "/etc/urja/client.pem"
    key_file = "/etc/urja/client.key"
    keepalive_s = 30
    agency_public_key = "base64..."   # nodes: the agency key to verify chargers by
    registry_url = "https://registry.example"   # optional: a Beckn registry to look up buyers in
    dedi_url = "https://dedi.example/dedi"      # or: the DeDi host whose registry network_id names
    catalog_services = ["https://cds.example.in"]   # Beckn 2.0: where the catalog is published
                                   # (from the HTTP binding when the site has one, else from here
                                   # without a callback URL; the services' keys are looked up in
                                   # the registry: registry_url or dedi_url)
"""
from __future__ import annotations

import asyncio
import random as _random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from drivers.configfile import ConfigError, Section
from protocols.beckn.bpp import Bpp
from protocols.beckn.policy import Policy
from protocols.beckn.trust import buyer_lookup, dedi_url, registry_url
from protocols.beckn2.profile import profile_for
from protocols.mqtt.charger import ChargerLink
from protocols.mqtt.topics import DEFAULT_ROOT, TopicError, Topics, check_root
from protocols.mqtt.transport import PROTOCOLS, MqttSettings, MqttTransport, TransportError
from protocols.signing.beckn import Verifier
from protocols.signing.keys import StaticKeyLookup, signer_at

DEFAULT_BROKERS = ("mqtt://127.0.0.1:1883",)
ORDER_BINDING = "mqtt"  # this binding's rows in the journal's order store


@dataclass(frozen=True, kw_only=True)
class NetworkConfig:
    brokers: tuple[str, ...] = DEFAULT_BROKERS
    protocol: str = "5"
    topic_root: str = DEFAULT_ROOT
    bridges: tuple[str, ...] = ()  # HTTP bridges that may front this charger (protocols.bridge)
    bridge_url: str | None = None  # where buyers reach this charger through its bridges (2.0 catalogs)
    username: str | None = None
    password: str | None = field(default=None, repr=False)  # a secret: never in a log line
    ca_file: str | None = None
    cert_file: str | None = None
    key_file: str | None = None
    keepalive_s: int = 30
    agency_public_key: str | None = None
    registry_url: str | None = None  # a Beckn registry to look up buyers without a certificate
    policy: Policy = field(default_factory=Policy)  # the provider's keys of the same table
    catalog_services: tuple[str, ...] = ()  # Beckn 2.0 catalog discovery services to publish to
    enabled: bool = True  # false: the table is kept but the charger stays off the network
    dedi_url: str | None = None  # a DeDi host to look participants up in, on the network policy.network_id names

    @classmethod
    def from_table(cls, data: dict | None, file: str | Path = "<config>") -> "NetworkConfig":
        """Validate the MQTT keys of a ``[network]`` table; errors name file, key and what is allowed."""
        from protocols.beckn2.publish import catalog_services

        sec = Section(data or {}, file, "network")
        brokers = sec.list("brokers", list(DEFAULT_BROKERS))
        if not brokers or not all(isinstance(b, str) for b in brokers):
            raise sec.error("brokers", "must be a non-empty list of broker URLs", "mqtt://host:port, mqtts://host:port")
        base = Path(file).parent if str(file) != "<config>" else Path(".")
        from protocols.bridge.fronting import fronted_url, fronting_bridges  # the bridge package reads its keys

        def path(name):
            value = sec.str(name, None)
            if value is None:
                return None
            p = Path(value)
            return str(p if p.is_absolute() else base / p)

        bridges = fronting_bridges(sec)
        cfg = cls(brokers=tuple(brokers), bridges=bridges, bridge_url=fronted_url(sec, bridges),
                  protocol=sec.str("protocol", "5", choices=PROTOCOLS),
                  topic_root=sec.str("topic_root", DEFAULT_ROOT), username=sec.str("username", None),
                  password=sec.str("password", None), ca_file=path("ca_file"), cert_file=path("cert_file"),
                  key_file=path("key_file"), keepalive_s=sec.int("keepalive_s", 30, min=5, max=3600),
                  agency_public_key=sec.str("agency_public_key", None), registry_url=registry_url(sec),
                  policy=Policy.from_section(sec), catalog_services=catalog_services(sec), dedi_url=dedi_url(sec),
                  enabled=sec.bool("enabled", True))
        _check_registry(sec, cfg)
        sec.finish()  # a misspelt key must not silently leave a default in force
        try:
            check_root(cfg.topic_root)
            cfg.mqtt_settings(client_id="check")
        except (TopicError, TransportError) as exc:
            key = exc.details.get("field", "brokers")
            raise ConfigError(file, f"network.{key}", str(exc)) from None
        return cfg

    @classmethod
    def from_site(cls, site) -> "NetworkConfig":
        return cls.from_table((getattr(site, "extra", None) or {}).get("network"), getattr(site, "path", "<config>"))

    def mqtt_settings(self, *, client_id: str, **overrides) -> MqttSettings:
        values = dict(brokers=self.brokers, client_id=client_id, protocol=self.protocol, username=self.username,
                      password=self.password, ca_file=self.ca_file, cert_file=self.cert_file,
                      key_file=self.key_file, keepalive_s=self.keepalive_s)
        values.update(overrides)
        return MqttSettings(**values)


def _check_registry(sec: Section, cfg: NetworkConfig) -> None:
    """A DeDi lookup needs a network id it can name a registry by."""
    if cfg.dedi_url is not None:
        from protocols.beckn2.dedi import DediError, NetworkId

        try:
            NetworkId.parse(cfg.policy.network_id, field="network_id")
        except DediError as exc:
            raise sec.error("network_id", str(exc), "NAMESPACE/REGISTRY[@HOST], e.g. acmenet.org/charge-net") from None


def network_lookup(ctx, config: NetworkConfig):
    """The key lookup of a site's network registry: ``(lookup, session)``."""
    return buyer_lookup(ctx, config.registry_url, dedi=config.dedi_url, network_id=config.policy.network_id)


class ChargerNetwork:
    """Bpp + ChargerLink + transport for one ``ChargerService``."""

    def __init__(self, *, service, signer, certificate: dict | None, agency_public_key: bytes | None,
                 settings: MqttSettings, topics: Topics | None = None, journal=None,
                 clock: Callable[[], float] | None = None, rng: _random.Random | None = None,
                 revocations: Any = None, buyer_keys: Any = None, order_store: Any = None,
                 policy: Policy | None = None, **link_options):
        self.service = service
        clock = clock or service.now_s
        site = service.site
        self.topics = topics or Topics()
        self.transport = MqttTransport(settings, rng=rng)
        self.verifier = Verifier(lookup=buyer_keys or StaticKeyLookup(), clock=clock)
        subscriber_id = site.site_id
        link_options.setdefault("clock_status", self._clock_status)
        self.link = ChargerLink(transport=self.transport, provider=None, subscriber_id=subscriber_id,
                                lat=site.place.lat, lon=site.place.lon, signer_for=signer_at(signer), clock=clock,
                                topics=self.topics, journal=journal, rng=rng, **link_options)
        self.bpp = Bpp(service=service, signer=signer, verifier=self.verifier, bpp_uri=self.link.uri,
                       clock=clock, bpp_id=subscriber_id, certificate=certificate,
                       agency_public_key=agency_public_key, revocations=revocations, send=self.link.send,
                       store=order_store, binding=ORDER_BINDING,
                       profile=profile_for(policy or Policy.from_site(site), bpp_id=subscriber_id,
                                           bpp_uri=self.link.uri))
        self.link.provider = self.bpp
        self._registry_session = None  # the registry lookup's HTTP session, when one was made here
        self.publisher = None  # Beckn 2.0 on MQTT only: the catalog publisher (``site_publish``)

    def _clock_status(self) -> dict | None:
        view = self.service.clock_status() if hasattr(self.service, "clock_status") else None
        return view.as_dict() if view is not None else None

    def _on_event(self, kind: str, obj) -> None:
        if kind == "clock":  # presence says it: publish it again now, not at the next refresh
            self.link.refresh_catalog()

    @classmethod
    def for_runtime(cls, rt, *, config: NetworkConfig | None = None, **options) -> "ChargerNetwork":
        """Wire the network for an ``agent.runtime.Runtime`` (its ``[network]`` settings unless
        others are given)."""
        config = config or rt.site.bindings.get("network") or NetworkConfig.from_site(rt.site)
        return cls.from_context(rt.binding_context(), config, **options)

    @classmethod
    def from_context(cls, ctx, config: NetworkConfig, **options) -> "ChargerNetwork":
        """Wire the network from a binding context (``agent.bindings``): keys, certificate,
        outbox and order store from it.

        The order store keeps this binding's confirmed orders, so they survive a restart of the
        charger (``protocols.beckn.orders``); fleet mode and tests that build a
        ``ChargerNetwork`` directly keep them in memory.
        """
        options.setdefault("order_store", ctx.orders)
        options.setdefault("policy", config.policy)  # the protocol profile among them
        options.setdefault("clock", ctx.now_s)
        options.setdefault("revocations", ctx.revocations)
        options.setdefault("bridges", config.bridges)
        session = None
        if "buyer_keys" not in options:
            options["buyer_keys"], session = network_lookup(ctx, config)
        ident = ctx.identity
        settings = config.mqtt_settings(client_id=ctx.site.site_id)
        net = cls(service=ctx.service, signer=ident, certificate=ident.certificate,
                  agency_public_key=ident.agency_public_key, settings=settings, topics=Topics(config.topic_root),
                  journal=ctx.outbox, **options)
        net._registry_session = session
        if (config.policy.profile == "beckn-2.0" and (config.catalog_services or config.bridge_url)
                and "http" not in (getattr(ctx.site, "bindings", None) or {})):
            net.publish_catalog(config)
        return net

    def publish_catalog(self, config: NetworkConfig) -> None:
        """Beckn 2.0 behind NAT on MQTT: publish to ``catalog_services`` without a callback URL
        (the services answer with the results) and, with ``bridge_url``, keep the signed
        requests on the broker for the bridges, the catalog naming ``bridge_url`` as ``bppUri``."""
        from protocols.beckn2.publish import RETAINED
        from protocols.beckn2.site_publish import SitePublisher

        services = config.catalog_services + ((RETAINED,) if config.bridge_url else ())
        self.publisher = SitePublisher(bpp=self.bpp, services=services, lookup=self.verifier.lookup,
                                       network_id=config.policy.network_id, callback_uri=None,
                                       catalog_uri=config.bridge_url, retain=self._retain_catalog_requests,
                                       retained_window_s=2 * self.link.catalog_refresh_s)
        if config.bridge_url:
            link_on_connect = self.transport.on_connect

            def on_connect() -> None:
                link_on_connect()
                self.publisher.republish()  # sign afresh: the retained one may have been withdrawn
            self.transport.on_connect = on_connect

    async def _retain_catalog_requests(self, publish: bytes, withdraw: bytes) -> None:
        """The withdrawal first: a bridge that sees the publish can already withdraw it. At start
        the publisher is quicker than the broker's connection, which is waited for (bounded)."""
        await asyncio.wait_for(self.transport.connected.wait(), 10)
        site = self.link
        for payload, gone in ((withdraw, True), (publish, False)):
            topic = self.topics.catalog_request(site.lat, site.lon, site.subscriber_id, withdraw=gone)
            await self.transport.publish(topic, payload, qos=1, retain=True, timeout_s=5)

    async def start(self, *, connect_timeout_s: float | None = None) -> None:
        self.service.add_listener(self._on_event)
        await self.link.start()
        await self.bpp.start()
        if self.publisher is not None:
            await self.publisher.start()
        if connect_timeout_s is not None:
            await self.transport.wait_connected(connect_timeout_s)

    async def close(self) -> None:
        self.service.remove_listener(self._on_event)
        try:
            if self.publisher is not None:
                await self.publisher.close()
            await self.bpp.close()
            await self.link.close()
        finally:
            if self._registry_session is not None:
                await self._registry_session.close()
                self._registry_session = None

    async def __aenter__(self):
        await self.start()
        return self

    async def __aexit__(self, *exc):
        await self.close()
