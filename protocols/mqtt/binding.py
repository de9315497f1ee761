"""The MQTT network as a binding: ``[network]`` in the site configuration joins it.

The table is read once, when the configuration is loaded (``NetworkConfig.from_table``: the
transport's keys and the provider's policy keys); the stack is built from it after the runtime
is up (``protocols.mqtt.stack.ChargerNetwork``).
"""
from __future__ import annotations

from agent.bindings import BindingSpec
from protocols.mqtt.stack import ChargerNetwork, NetworkConfig


class NetworkBinding:
    """The charger's network stack, started and stopped by the agent."""

    def __init__(self, network: ChargerNetwork, config: NetworkConfig):
        self.network = network
        self.config = config

    @classmethod
    def from_context(cls, ctx, config: NetworkConfig) -> "NetworkBinding | None":
        """None when ``[network] enabled = false``: nothing is built, no broker is dialled."""
        if not config.enabled:
            return None
        return cls(ChargerNetwork.from_context(ctx, config), config)

    @property
    def transport(self):
        return self.network.transport

    async def start(self) -> None:
        await self.network.start()

    def healthy(self) -> bool:
        """Connected to a broker now (the owner's page shows it as the broker's health)."""
        return self.transport.connected.is_set()

    def describe(self) -> str:
        return (f"joined the network over MQTT ({', '.join(self.config.brokers)}, topics {self.config.topic_root}, "
                f"{self.network.bpp.profile.name})")

    async def close(self) -> None:
        await self.network.close()


BINDING = BindingSpec(table="network", parse=NetworkConfig.from_table, build=NetworkBinding.from_context)
