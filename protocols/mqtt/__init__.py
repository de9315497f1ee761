"""The MQTT binding of the Urja network: topics partitioned by geohash, signed framed payloads,
retained catalog and presence with a last will, durable delivery through the journal's outbox.

Modules: ``transport`` (paho driven by asyncio, failover, TLS), ``topics`` and ``geohash``
(where messages go), ``framing`` (signed payloads), ``charger`` (the charger's side),
``stack`` (Bpp + link + transport for one charger), ``fleet`` (many chargers in one process),
``identity`` (in-memory certified keys), ``capture`` (records a real exchange for the docs).
The wire format is specified in ``docs/network-protocol.md``.
"""
