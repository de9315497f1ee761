"""Urja agent: the portable charging core (sessions, safety, tariffs) and the runtime that wires it."""
