"""Beckn message signatures (BLAKE2b-512 digest, Ed25519, ``Signature keyId=...`` header).

The body is signed byte for byte, never re-serialised, so the same bytes verify over HTTP,
MQTT 3.1.1 and MQTT 5 alike. Verification is strict on purpose: every parameter exactly once,
no parameter we do not understand, base64 and lengths exact, and the two copies of the
algorithm (in ``keyId`` and in ``algorithm``) agreeing. A header we do not fully understand is
a header we cannot vouch for.

Key lookup goes through an injected asynchronous ``KeyLookup`` (see ``keys.py``); the clock is
an injected callable returning Unix seconds.

Over MQTT a signed message is framed as header lines, an empty line, then the exact body::

    Authorization: Signature keyId="...",algorithm="ed25519",...
    X-Gateway-Authorization: Signature ...      (optional)

    {"context": ...}
"""
from __future__ import annotations

import hashlib
import re
from dataclasses import dataclass
from typing import Callable

from protocols.errors import ProtocolError
from protocols.signing._codec import b64decode, b64encode
from protocols.signing.errors import SignatureError
from protocols.signing.keys import Ed25519Signer, KeyLookup, ed25519_public_from_bytes, ed25519_verify

ALGORITHM = "ed25519"
SIGNED_HEADERS = "(created) (expires) digest"
DEFAULT_MAX_BODY_BYTES = 64 * 1024
MAX_HEADER_CHARS = 1024
_PARAMS = ("keyId", "algorithm", "created", "expires", "headers", "signature")
_PARAM_RE = re.compile(r'[ \t]*([A-Za-z]+)="([^"\\]*)"[ \t]*(,|\Z)')
_TS_RE = re.compile(r"^[0-9]{1,12}$")


def body_digest(body: bytes) -> str:
    """Base64 of the BLAKE2b-512 digest of the exact body bytes."""
    return b64encode(hashlib.blake2b(body, digest_size=64).digest())


def signing_string(created_s: int, expires_s: int, digest_b64: str) -> str:
    return f"(created): {created_s}\n(expires): {expires_s}\ndigest: BLAKE-512={digest_b64}"


def sign_body(body: bytes, signer: Ed25519Signer, *, created_s: int, expires_s: int) -> str:
    """The ``Authorization`` (or ``X-Gateway-Authorization``) header value for ``body``."""
    created_s, expires_s = int(created_s), int(expires_s)
    if expires_s <= created_s:
        raise SignatureError("bad-window", f"expires ({expires_s}) must be after created ({created_s})")
    text = signing_string(created_s, expires_s, body_digest(body))
    signature = b64encode(signer.sign(text.encode("ascii")))
    key_ref = f"{signer.subscriber_id}|{signer.key_id}|{ALGORITHM}"
    return (
        f'Signature keyId="{key_ref}",algorithm="{ALGORITHM}",created="{created_s}",'
        f'expires="{expires_s}",headers="{SIGNED_HEADERS}",signature="{signature}"'
    )


def www_authenticate(realm: str, headers: str = SIGNED_HEADERS) -> str:
    """Value of ``WWW-Authenticate`` (or ``Proxy-Authenticate`` for a gateway) on a 401."""
    if '"' in realm or '"' in headers:
        raise ValueError("realm and headers must not contain quotes")
    return f'Signature realm="{realm}",headers="{headers}"'


@dataclass(frozen=True)
class SignatureParams:
    """A parsed, syntactically valid signature header."""

    subscriber_id: str
    key_id: str
    algorithm: str
    created_s: int
    expires_s: int
    signature: bytes


def parse_signature_header(value: object, *, headers: str = SIGNED_HEADERS) -> SignatureParams:  # noqa: C901
    """Parse a ``Signature ...`` header value, refusing anything not exactly as specified.

    ``headers`` is the one list of signed headers accepted: a request signature's by default,
    a Beckn 2.0 counter-signature's (``countersign.COUNTER_SIGNED_HEADERS``) where that is read."""
    if not isinstance(value, str):
        raise SignatureError("header-missing", "no signature header")
    if len(value) > MAX_HEADER_CHARS:
        raise SignatureError("header-malformed", f"header longer than {MAX_HEADER_CHARS} characters")
    if not value.startswith("Signature "):
        raise SignatureError("header-malformed", "auth-scheme must be 'Signature'")
    rest = value[len("Signature "):]
    params: dict[str, str] = {}
    pos = 0
    while pos < len(rest):
        m = _PARAM_RE.match(rest, pos)
        if not m:
            raise SignatureError("header-malformed", f"cannot parse parameters at {rest[pos:pos + 20]!r}")
        name, val, sep = m.groups()
        if name in params:
            raise SignatureError("header-duplicate-param", f"parameter {name!r} given twice")
        if name not in _PARAMS:
            raise SignatureError("header-unknown-param", f"unknown parameter {name!r} (allowed: {', '.join(_PARAMS)})")
        params[name] = val
        pos = m.end()
        if sep == "," and pos >= len(rest):
            raise SignatureError("header-malformed", "trailing comma")
    missing = [p for p in _PARAMS if p not in params]
    if missing:
        raise SignatureError("header-missing-param", f"missing parameter(s): {', '.join(missing)}")
    parts = params["keyId"].split("|")
    if len(parts) != 3 or not all(parts):
        raise SignatureError("header-malformed", "keyId must be 'subscriber_id|unique_key_id|algorithm'")
    subscriber_id, key_id, key_alg = parts
    if key_alg != params["algorithm"]:
        raise SignatureError(
            "algorithm-mismatch", f"keyId says {key_alg!r} but algorithm says {params['algorithm']!r}"
        )
    if params["algorithm"] != ALGORITHM:
        raise SignatureError("algorithm-unsupported", f"algorithm {params['algorithm']!r} (allowed: {ALGORITHM})")
    if params["headers"] != headers:
        raise SignatureError("headers-unsupported", f"headers must be {headers!r}")
    for name in ("created", "expires"):
        if not _TS_RE.match(params[name]):
            raise SignatureError("bad-time", f"{name} must be a Unix timestamp integer")
    created_s, expires_s = int(params["created"]), int(params["expires"])
    if expires_s < created_s:
        raise SignatureError("bad-window", "expires is before created")
    signature = b64decode(params["signature"], field="signature", length=64)
    return SignatureParams(subscriber_id, key_id, params["algorithm"], created_s, expires_s, signature)


@dataclass(frozen=True)
class VerifiedSignature:
    subscriber_id: str
    key_id: str
    created_s: int
    expires_s: int
    digest: str


@dataclass(frozen=True)
class VerifiedMessage:
    """A body whose sender (and gateway, when one forwarded it) have been verified."""

    body: bytes
    digest: str
    sender: VerifiedSignature
    gateway: VerifiedSignature | None


class Verifier:
    """Checks signature headers against a key lookup and a clock.

    ``clock_skew_s`` is how far in the future a ``created`` may lie before the message is
    refused (clocks on chargers drift between NTP syncs). ``max_body_bytes`` bounds what is
    hashed at all.
    """

    def __init__(
        self,
        *,
        lookup: KeyLookup,
        clock: Callable[[], float],
        clock_skew_s: int = 30,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ):
        self.lookup = lookup
        self.clock = clock
        self.clock_skew_s = clock_skew_s
        self.max_body_bytes = max_body_bytes

    async def verify(self, header: object, body: bytes, *, digest: str | None = None) -> VerifiedSignature:
        """Verify one signature header over ``body``; raise ``SignatureError`` with a reason."""
        if not isinstance(body, (bytes, bytearray)):
            raise SignatureError("body-malformed", "body must be bytes")
        if len(body) > self.max_body_bytes:
            raise SignatureError("body-too-large", f"body is {len(body)} bytes, limit {self.max_body_bytes}")
        params = parse_signature_header(header)
        digest = digest or body_digest(bytes(body))
        text = signing_string(params.created_s, params.expires_s, digest).encode("ascii")
        return await self.verify_parsed(params, text, digest=digest)

    async def verify_parsed(self, params: SignatureParams, text: bytes, *, digest: str) -> VerifiedSignature:
        """The checks every Beckn signature shares (window, key lookup, key validity, Ed25519)
        over an already built signing string: a request's or a 2.0 Ack's counter-signature."""
        now_s = self.clock()
        if params.created_s > now_s + self.clock_skew_s:
            raise SignatureError("created-in-future", f"created {params.created_s} is ahead of now {int(now_s)}")
        if params.expires_s < now_s:
            raise SignatureError("expired", f"signature expired at {params.expires_s}, now {int(now_s)}")
        try:
            record = await self.lookup.lookup(params.subscriber_id, params.key_id)
        except ProtocolError:
            raise
        except Exception as exc:  # a lookup bug must still end as a refusal, not a crash
            raise SignatureError("key-lookup-failed", f"key lookup failed: {type(exc).__name__}") from exc
        if record is None:
            raise SignatureError("key-unknown", f"no key {params.key_id!r} for {params.subscriber_id!r}")
        if not (record.covers(now_s) and record.valid_from_s <= params.created_s):
            raise SignatureError("key-not-valid", f"key {params.key_id!r} is outside its validity window")
        if not ed25519_verify(ed25519_public_from_bytes(record.signing_public_key), params.signature, text):
            raise SignatureError("signature-invalid", f"signature by {params.subscriber_id!r} does not verify")
        return VerifiedSignature(params.subscriber_id, params.key_id, params.created_s, params.expires_s, digest)

    async def verify_message(
        self, body: bytes, authorization: object, gateway_authorization: object = None
    ) -> VerifiedMessage:
        """Verify the sender's ``Authorization`` and, when present, ``X-Gateway-Authorization``."""
        if not isinstance(body, (bytes, bytearray)):
            raise SignatureError("body-malformed", "body must be bytes")
        if len(body) > self.max_body_bytes:
            raise SignatureError("body-too-large", f"body is {len(body)} bytes, limit {self.max_body_bytes}")
        digest = body_digest(bytes(body))
        sender = await self.verify(authorization, body, digest=digest)
        gateway = None
        if gateway_authorization is not None:
            try:
                gateway = await self.verify(gateway_authorization, body, digest=digest)
            except SignatureError as exc:
                exc.details["header"] = "X-Gateway-Authorization"
                raise
        return VerifiedMessage(bytes(body), digest, sender, gateway)


# --------------------------------------------------------------------------- MQTT framing

AUTHORIZATION = "Authorization"
GATEWAY_AUTHORIZATION = "X-Gateway-Authorization"
# Beside a Beckn 2.0 discover, whose body has no place for it: the sender's agency certificate
# (base64 of its JSON), so a charger can verify a searcher offline on either transport.
CERTIFICATE_HEADER = "Urja-Agency-Certificate"
_FRAME_HEADERS = (AUTHORIZATION, GATEWAY_AUTHORIZATION, CERTIFICATE_HEADER)
MAX_CERTIFICATE_HEADER_CHARS = 24 * 1024


def frame_message(body: bytes, authorization: str, gateway_authorization: str | None = None, *,
                  certificate: str | None = None) -> bytes:
    """Header block, empty line, exact body: one payload that verifies like the HTTP request."""
    lines = [f"{AUTHORIZATION}: {authorization}"]
    if gateway_authorization is not None:
        lines.append(f"{GATEWAY_AUTHORIZATION}: {gateway_authorization}")
    if certificate is not None:
        lines.append(f"{CERTIFICATE_HEADER}: {certificate}")
    return ("\n".join(lines) + "\n\n").encode("ascii") + bytes(body)


@dataclass(frozen=True)
class FramedMessage:
    authorization: str
    gateway_authorization: str | None
    body: bytes
    certificate: str | None = None


def parse_frame(payload: bytes, *, max_bytes: int = DEFAULT_MAX_BODY_BYTES + 4 * MAX_HEADER_CHARS
                + MAX_CERTIFICATE_HEADER_CHARS) -> FramedMessage:
    """Split a framed payload; header names are case-insensitive, each at most once."""
    if not isinstance(payload, (bytes, bytearray)):
        raise SignatureError("frame-malformed", "payload must be bytes")
    if len(payload) > max_bytes:
        raise SignatureError("body-too-large", f"payload is {len(payload)} bytes, limit {max_bytes}")
    payload = bytes(payload)
    end = payload.find(b"\n\n")
    sep = 2
    crlf = payload.find(b"\r\n\r\n")
    if crlf != -1 and (end == -1 or crlf < end):
        end, sep = crlf, 4
    if end == -1:
        raise SignatureError("frame-malformed", "no empty line between the header block and the body")
    try:
        head = payload[:end].decode("ascii")
    except UnicodeDecodeError:
        raise SignatureError("frame-malformed", "header block is not ASCII") from None
    found: dict[str, str] = {}
    for line in head.replace("\r\n", "\n").split("\n"):
        name, colon, value = line.partition(":")
        canonical = next((h for h in _FRAME_HEADERS if h.lower() == name.strip().lower()), None)
        if not colon or canonical is None:
            raise SignatureError(
                "frame-malformed", f"unexpected header line {line[:40]!r} (allowed: {', '.join(_FRAME_HEADERS)})"
            )
        if canonical in found:
            raise SignatureError("frame-malformed", f"header {canonical} given twice")
        found[canonical] = value.strip()
    if AUTHORIZATION not in found:
        raise SignatureError("header-missing", "no Authorization header in the frame")
    return FramedMessage(found[AUTHORIZATION], found.get(GATEWAY_AUTHORIZATION), payload[end + sep:],
                         found.get(CERTIFICATE_HEADER))
