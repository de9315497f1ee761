"""The bridge: a public Beckn HTTP endpoint in front of chargers that only reach out over MQTT.

A charger behind carrier-grade NAT keeps an outbound MQTT connection; a Beckn 2.0 network is
HTTP only. The bridge joins the two at the transport level and nowhere else: it reads only the
context it routes by, forwards the exact request bytes (with the buyer's signature) to the
named charger's inbox, and relays the charger's callbacks byte-exact (with the charger's
signature) to the buyer's ``bapUri``. Nothing it does can make a charger accept what the
charger would refuse directly: the charger verifies every message itself.

State: only caches it rebuilds from the broker (retained presence of chargers and bridges,
retained catalogs). Several bridges over the same brokers answer alike; see ``docs/bridge.md``.
"""
