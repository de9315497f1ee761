"""An independent OCPI 2.2.1 eMSP used to test the charger's CPO side from the outside.

It shares no code with ``protocols.ocpi``: it is written from the specification and checks every
message against the official OpenAPI files in ``shared/specs/ocpi-2.2.1``.

Entry points: ``EmspPeer`` (server + client + flows), ``OcpiSpec``/``load_spec`` (schema
validation), ``ConformanceError`` (raised on any departure from the specification).
"""
from tests.emsp_peer.peer import CommandOutcome, EmspPeer
from tests.emsp_peer.schemas import SPECS_DIR, ConformanceError, OcpiSpec, load_spec

__all__ = ["CommandOutcome", "ConformanceError", "EmspPeer", "OcpiSpec", "SPECS_DIR", "load_spec"]
