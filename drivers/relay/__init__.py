"""Contactor relay drivers: the ``Relay`` contract and its backends.

``GpiodRelay`` lives in ``drivers.relay.gpiod_relay`` and is imported only by whoever needs it,
so importing this package never loads ``gpiod``.
"""
from drivers.relay.base import Relay, RelayError
from drivers.relay.sim import SimRelay

__all__ = ["Relay", "RelayError", "SimRelay"]
