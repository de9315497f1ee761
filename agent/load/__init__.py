"""Load management: sharing a site's sanctioned load between its connectors.

``settings`` holds what the site owner writes (``[load]`` in the site configuration), ``manager``
the pure, clock-injected decision (each connector's share from the grid meter's readings), and
``simsite`` a simulated site for the property test and the benchmark (the household it draws
beside the chargers is ``drivers.simhouse``, which the simulated grid meter serves too).
"""
from agent.load.manager import ConnectorSpec, LoadManager, Shares
from agent.load.settings import LoadSettings, TimeWindow, parse_load

__all__ = ["ConnectorSpec", "LoadManager", "LoadSettings", "Shares", "TimeWindow", "parse_load"]
