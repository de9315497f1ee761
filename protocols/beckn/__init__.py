"""Beckn-shaped contracts for EV charging: messages (``messages``), the charger's provider
logic (``bpp``), refusal codes (``errors``) and buyer trust (``trust``).

Import the submodules directly; this package module stays empty so a binding loads only what
it uses.
"""
