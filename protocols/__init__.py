"""Protocols: signing, network messages and their MQTT/HTTP bindings, OCPI."""
