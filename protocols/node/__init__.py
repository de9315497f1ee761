"""The buyer side of the network: a small client an app or a gateway embeds to find chargers
near a place, check who they are, and buy a charge from one of them over MQTT."""
