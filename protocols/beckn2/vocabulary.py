"""The words of Beckn 2.0 LTS the charger uses: version, actions, JSON-LD contexts.

Why one module: the codec, the Ack, the catalog and the bindings must spell each the same.
"""
from __future__ import annotations

VERSION = "2.0.0"
PROFILE_V1 = "beckn-1.1"
PROFILE_V2 = "beckn-2.0"
PROFILES = (PROFILE_V1, PROFILE_V2)

# Request actions of 2.0 and the 1.1 action the shared provider logic knows them by.
V2_TO_V1 = {"discover": "search", "select": "select", "init": "init", "confirm": "confirm",
            "status": "status", "track": "track", "update": "update", "cancel": "cancel",
            "rate": "rating", "support": "support"}
V1_TO_V2 = {v: k for k, v in V2_TO_V1.items()}
REQUEST_ACTIONS = tuple(V2_TO_V1)
CALLBACK_ACTIONS = tuple("on_" + a for a in REQUEST_ACTIONS)

_PACKS = "https://raw.githubusercontent.com/beckn/protocol-specifications-new/refs/heads/main/schema"
CORE_CONTEXT = f"{_PACKS}/core/v2/context.jsonld"
SERVICE_CONTEXT = f"{_PACKS}/EvChargingService/v1/context.jsonld"
OFFER_CONTEXT = f"{_PACKS}/EvChargingOffer/v1/context.jsonld"
SESSION_CONTEXT = f"{_PACKS}/EvChargingSession/v1/context.jsonld"
OPERATOR_CONTEXT = f"{_PACKS}/EvChargingPointOperator/v1/context.jsonld"
# The charger's own attribute type (``ChargeOrderDetail``): what the 1.1 order said that 2.0 has
# no place for. Its schema and JSON-LD context are in ``docs/schema/ChargeOrderDetail/v1/``.
URJA_CONTEXT = "urn:urja:beckn2:v1"
SCHEMA_CONTEXTS = (CORE_CONTEXT, SERVICE_CONTEXT, OFFER_CONTEXT, SESSION_CONTEXT, OPERATOR_CONTEXT)

DEFAULT_NETWORK_ID = "urja.local/ev-charging"

# OCPI-style connector standards of the charger and the EvChargingService enum.
CONNECTOR_TYPES = {"IEC_62196_T2": "Type2", "IEC_62196_T2_COMBO": "CCS2", "CHADEMO": "CHAdeMO",
                   "GBT_AC": "GB_T", "GBT_DC": "GB_T"}
UNIT_CODES = {"kwh": "KWH", "wh": "WHR", "minute": "MIN", "minutes": "MIN", "min": "MIN", "hour": "HUR",
              "hours": "HUR", "second": "SEC", "seconds": "SEC", "s": "SEC"}
CODE_UNITS = {"KWH": "kWh", "WHR": "Wh", "MIN": "minute", "HUR": "hour", "SEC": "second"}
CONTRACT_STATUS = {"ACTIVE": "ACTIVE", "COMPLETE": "COMPLETE", "COMPLETED": "COMPLETE", "CANCELLED": "CANCELLED"}
