"""Load management: sharing a site's sanctioned load between its connectors.

``settings`` holds what the site owner writes (``[load]`` in the site configuration), ``manager``
the pure, clock-injected decision (each connector's share from the grid meter's readings), and
``house`` a simulated household's draw for the simulated board and the benchmark.
"""
from agent.load.manager import ConnectorSpec, LoadManager, Shares
from agent.load.settings import LoadSettings, TimeWindow, parse_load

__all__ = ["ConnectorSpec", "LoadManager", "LoadSettings", "Shares", "TimeWindow", "parse_load"]
