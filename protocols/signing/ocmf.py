"""OCMF (Open Charge Metering Format) documents for the start and stop meter readings.

``OCMF|{payload}|{signature}``: the payload is JSON with the OCMF field names (FV, GI, GS, GV,
PG, MV, MM, MS, IS, IT, ID, RD with TM/TX/RV/RI/RU/ST ...), the signature section carries
``SA`` (``ECDSA-secp256r1-SHA256``) and ``SD``, the hex of the DER-encoded ECDSA signature over
the exact payload bytes, made with the charger's metering key. A buyer can check the energy
figure on a receipt with generic OCMF transparency software, independently of our code.

Readings are written in ``Wh`` as integers, which the meter delivers exactly; a verifier also
accepts ``kWh`` with decimals and converts exactly (decimal arithmetic, no floats).
"""
from __future__ import annotations

import datetime as _dt
import json
import re
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from protocols.signing._codec import strict_json
from protocols.signing.errors import SignatureError

FORMAT_VERSION = "1.0"
SIGNATURE_ALGORITHM = "ECDSA-secp256r1-SHA256"
OBIS_ACTIVE_IMPORT = "1-b:1.8.0"
MAX_OCMF_BYTES = 16 * 1024
_TX_CODES = set("BCXELRAPST")
_END_CODES = set("ELRAP")
_TM_RE = re.compile(r"^(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}),(\d{3})([+-]\d{4}) ([UISR])$")
_PG_RE = re.compile(r"^[TF](0|[1-9][0-9]*)$")
_FILL_FORWARD = ("TX", "RI", "RU", "RT", "EF", "ST")


@dataclass(frozen=True)
class OcmfReading:
    time_s: float
    tx: str
    value_wh: int
    status: str = "G"


@dataclass(frozen=True)
class ParsedReading:
    time_s: float
    time_sync: str
    tx: str | None
    value_wh: Decimal
    obis: str | None
    status: str


@dataclass(frozen=True)
class OcmfDocument:
    payload: dict
    readings: list[ParsedReading]
    meter_serial: str
    pagination: str


def format_tm(time_s: float, *, utc_offset_min: int, sync: str = "S") -> str:
    """``2026-01-02T10:00:00,000+0530 S``: the OCMF time spelling with ms and zone."""
    zone = _dt.timezone(_dt.timedelta(minutes=utc_offset_min))
    moment = _dt.datetime.fromtimestamp(round(time_s, 3), zone)
    sign = "+" if utc_offset_min >= 0 else "-"
    hh, mm = divmod(abs(utc_offset_min), 60)
    return f"{moment:%Y-%m-%dT%H:%M:%S},{moment.microsecond // 1000:03d}{sign}{hh:02d}{mm:02d} {sync}"


def parse_tm(text: object) -> tuple[float, str]:
    m = _TM_RE.match(text) if isinstance(text, str) else None
    if not m:
        raise SignatureError("ocmf-malformed", f"TM {text!r} is not 'YYYY-MM-DDThh:mm:ss,fff+hhmm S'")
    stamp, ms, zone, sync = m.groups()
    try:
        moment = _dt.datetime.strptime(stamp + zone, "%Y-%m-%dT%H:%M:%S%z")
    except ValueError:
        raise SignatureError("ocmf-malformed", f"TM {text!r} is not a valid time") from None
    return moment.timestamp() + int(ms) / 1000, sync


def build_ocmf(
    *,
    metering_key: ec.EllipticCurvePrivateKey,
    gateway_id: str,
    gateway_serial: str,
    gateway_version: str,
    pagination: int,
    meter_vendor: str,
    meter_model: str,
    meter_serial: str,
    identification_type: str = "CENTRAL",
    identification: str | None = None,
    identified: bool = True,
    readings: list[OcmfReading],
    utc_offset_min: int = 330,
    time_sync: str = "S",
    charge_point_id: str | None = None,
) -> str:
    """Sign readings (start ``B`` ... stop ``E``) as one OCMF document.

    ``charge_point_id`` (OCMF ``CI``, of type ``CT`` = ``EVSEID``) names the connector the readings
    are of, where one gateway serves several.
    """
    if not readings:
        raise SignatureError("ocmf-malformed", "at least one reading is needed")
    if any("|" in s for s in (gateway_id, gateway_serial, gateway_version, meter_vendor, meter_model,
                              meter_serial, identification or "")):
        raise SignatureError("ocmf-malformed", "OCMF fields must not contain '|'")
    rd = []
    previous: dict = {}
    for r in readings:
        if r.tx not in _TX_CODES:
            raise SignatureError("ocmf-malformed", f"TX {r.tx!r} (allowed: {''.join(sorted(_TX_CODES))})")
        if isinstance(r.value_wh, bool) or not isinstance(r.value_wh, int) or r.value_wh < 0:
            raise SignatureError("ocmf-malformed", f"reading value must be whole Wh >= 0, got {r.value_wh!r}")
        full = {"TM": format_tm(r.time_s, utc_offset_min=utc_offset_min, sync=time_sync), "TX": r.tx,
                "RV": r.value_wh, "RI": OBIS_ACTIVE_IMPORT, "RU": "Wh", "RT": "AC", "EF": "", "ST": r.status}
        item = {k: v for k, v in full.items() if k in ("TM", "TX", "RV", "ST") or previous.get(k) != v}
        previous = full
        rd.append(item)
    payload = {"FV": FORMAT_VERSION, "GI": gateway_id, "GS": gateway_serial, "GV": gateway_version,
               "PG": f"T{int(pagination)}", "MV": meter_vendor, "MM": meter_model, "MS": meter_serial,
               "IS": identified, "IT": identification_type}
    if identification is not None:
        payload["ID"] = identification
    if charge_point_id is not None:
        if "|" in charge_point_id:
            raise SignatureError("ocmf-malformed", "OCMF fields must not contain '|'")
        payload["CT"] = "EVSEID"
        payload["CI"] = charge_point_id
    payload["RD"] = rd
    payload_text = json.dumps(payload, separators=(",", ":"), ensure_ascii=True)
    der = metering_key.sign(payload_text.encode("ascii"), ec.ECDSA(hashes.SHA256()))
    signature = json.dumps({"SA": SIGNATURE_ALGORITHM, "SD": der.hex().upper()}, separators=(",", ":"))
    return f"OCMF|{payload_text}|{signature}"


def load_metering_public_key(hex_der: object, *, reason: str = "bad-key") -> ec.EllipticCurvePublicKey:
    """The metering key from hex DER; ``reason`` lets a caller (a certificate check) name the refusal."""
    try:
        key = serialization.load_der_public_key(bytes.fromhex(hex_der))
    except (TypeError, ValueError):
        raise SignatureError(reason, "metering_public_key is not hex DER of a public key") from None
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise SignatureError(reason, "metering_public_key must be an ECDSA secp256r1 key")
    return key


def _section(text: str, name: str) -> dict:
    value = strict_json(text, reason="ocmf-malformed", what=f"{name} section is not JSON", parse_float=Decimal)
    if not isinstance(value, dict):
        raise SignatureError("ocmf-malformed", f"{name} section must be a JSON object")
    return value


def verify_ocmf(document: object, public_key: ec.EllipticCurvePublicKey | str) -> OcmfDocument:  # noqa: C901
    """Check the signature over the exact payload bytes and the shape of the readings."""
    if isinstance(public_key, str):
        public_key = load_metering_public_key(public_key)
    if not isinstance(document, str) or len(document) > MAX_OCMF_BYTES:
        raise SignatureError("ocmf-malformed", f"OCMF document must be a string of at most {MAX_OCMF_BYTES} bytes")
    parts = document.split("|")
    if len(parts) != 3 or parts[0] != "OCMF":
        raise SignatureError("ocmf-malformed", "expected 'OCMF|<payload>|<signature>'")
    payload_text, sig_text = parts[1], parts[2]
    sig = _section(sig_text, "signature")
    if sig.get("SA", SIGNATURE_ALGORITHM) != SIGNATURE_ALGORITHM:
        raise SignatureError("algorithm-unsupported", f"SA {sig.get('SA')!r} (allowed: {SIGNATURE_ALGORITHM})")
    if sig.get("SE", "hex") != "hex" or sig.get("SM", "application/x-der") != "application/x-der":
        raise SignatureError("ocmf-malformed", "signature must be hex-encoded DER (SE=hex, SM=application/x-der)")
    sd = sig.get("SD")
    try:
        der = bytes.fromhex(sd) if isinstance(sd, str) else None
    except ValueError:
        der = None
    if not der:
        raise SignatureError("ocmf-malformed", "SD must be the signature in hex")
    try:
        public_key.verify(der, payload_text.encode("utf-8"), ec.ECDSA(hashes.SHA256()))
    except InvalidSignature:
        raise SignatureError("signature-invalid", "OCMF signature does not verify with the metering key") from None
    payload = _section(payload_text, "payload")
    for name in ("PG", "MS", "IT"):
        if not isinstance(payload.get(name), str):
            raise SignatureError("ocmf-malformed", f"payload field {name} missing")
    if not _PG_RE.match(payload["PG"]):
        raise SignatureError("ocmf-malformed", f"PG {payload['PG']!r} must be T<n> or F<n>")
    if not isinstance(payload.get("IS"), bool):
        raise SignatureError("ocmf-malformed", "payload field IS must be true or false")
    rd = payload.get("RD")
    if not isinstance(rd, list) or not rd or not all(isinstance(r, dict) for r in rd):
        raise SignatureError("ocmf-malformed", "RD must be a non-empty list of readings")
    readings: list[ParsedReading] = []
    carried: dict = {}
    for i, item in enumerate(rd):
        carried.update({k: item[k] for k in _FILL_FORWARD if k in item})
        time_s, sync = parse_tm(item.get("TM"))
        tx = carried.get("TX")
        if tx is not None and tx not in _TX_CODES:
            raise SignatureError("ocmf-malformed", f"RD[{i}].TX {tx!r} unknown")
        unit = carried.get("RU")
        rv = item.get("RV")
        if isinstance(rv, bool) or not isinstance(rv, (int, Decimal)) or unit not in ("Wh", "kWh"):
            raise SignatureError("ocmf-malformed", f"RD[{i}] needs a numeric RV with RU Wh or kWh")
        try:
            value_wh = Decimal(rv) * (1000 if unit == "kWh" else 1)
        except InvalidOperation:
            raise SignatureError("ocmf-malformed", f"RD[{i}].RV is not a number") from None
        status = carried.get("ST")
        if not isinstance(status, str):
            raise SignatureError("ocmf-malformed", f"RD[{i}].ST missing")
        readings.append(ParsedReading(time_s, sync, tx, value_wh, carried.get("RI"), status))
    return OcmfDocument(payload, readings, payload["MS"], payload["PG"])


def transaction_span(doc: OcmfDocument) -> tuple[ParsedReading, ParsedReading]:
    """Begin and end readings of a transaction document; refuses meter faults in between."""
    first, last = doc.readings[0], doc.readings[-1]
    if first.tx != "B" or last.tx not in _END_CODES:
        raise SignatureError("ocmf-incomplete", "readings must run from TX=B to an end code (E, L, R, A, P)")
    bad = [r for r in doc.readings if r.status != "G"]
    if bad:
        raise SignatureError("ocmf-meter-fault", f"meter status {bad[0].status!r} during the transaction")
    if any(r.tx == "X" for r in doc.readings):
        raise SignatureError("ocmf-meter-fault", "an exception reading (TX=X) makes the values unusable")
    if last.value_wh < first.value_wh or last.time_s < first.time_s:
        raise SignatureError("ocmf-malformed", "stop reading is before the start reading")
    return first, last
