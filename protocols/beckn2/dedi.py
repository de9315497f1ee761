"""Participants' keys the DeDi way: a lookup client with a cache, and a reference registry.

On a Beckn 2.0 network the registry is a namespace and registry on a DeDi host, named by
``context.networkId`` (``{namespace}/{registry}@{host}``, the host optional). Keys are looked up
through the DeDi wrapper API that beckn-onix's ``dediregistry`` plugin calls::

    GET {base}/lookup/{subscriber_id}/subscribers.beckn.one/{key_id}     one participant's key
    GET {base}/lookup/{namespace}/{registry}                             a registry's metadata

(``subscribers.beckn.one`` asks across every registry the host caches.) The answer is
``{"message": ..., "data": {"record_id", "details": {"subscriber_id", "url", "type", "domain",
"signing_public_key", "encr_public_key"}, "network_memberships": [...], "is_revoked",
"created_at", "updated_at", "ttl"}}``. As in that plugin, a participant counts for a network
only when the network is among its ``network_memberships``; ``ttl`` (seconds), when given,
shortens how long the answer is cached. This project reads two more fields when present:
``details.valid_from``/``valid_until`` (the key's window, as a 1.1 registry lists it); a record
without them is valid for as long as it is cached.

``DediRegistryClient`` is a ``KeyLookup``: plug it into ``Verifier`` and every signature from a
network participant is checked against the registry, each key fetched once per TTL.

``DediRegistryServer`` is a small registry that answers those two lookups from a JSON file. It
is the reference for tests and the demo (``urja registry serve``), written from the lookup API
above; it is not a DeDi host (no namespaces to verify, no publishing API, no signatures on its
answers).
"""
from __future__ import annotations

import asyncio
import json
import logging
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Callable
from urllib.parse import quote

import aiohttp
from aiohttp import web

from protocols.errors import ProtocolError
from protocols.signing._codec import b64decode, format_time, parse_time
from protocols.signing.errors import SignatureError
from protocols.signing.keys import PublicKeyRecord
from protocols.signing.registry import MISS, AnswerCache
from protocols.streams import read_body

log = logging.getLogger("urja.dedi")

ALL_REGISTRIES = "subscribers.beckn.one"
MAX_RESPONSE_BYTES = 256 * 1024
REGISTRY_FORMAT = "urja-dedi/1"
NO_END_S = 253402300799  # 9999-12-31T23:59:59Z: a record that names no end of validity
_NETWORK_RE = re.compile(r"^([A-Za-z0-9][A-Za-z0-9._-]{0,252})/([A-Za-z0-9][A-Za-z0-9._-]{0,127})(@[A-Za-z0-9.-]{1,253})?$")
_SEGMENT_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,252}$")


class DediError(ProtocolError):
    """A registry file or setting that cannot be used; names the file or key and the problem."""

    code = "registry-invalid"


@dataclass(frozen=True)
class NetworkId:
    """``{namespace}/{registry}@{host}``: which registry on which DeDi host a network is."""

    namespace: str
    registry: str
    host: str = ""

    @classmethod
    def parse(cls, text: object, *, field: str = "networkId") -> "NetworkId":
        m = _NETWORK_RE.match(text) if isinstance(text, str) else None
        if m is None:
            raise DediError(f"{field} {text!r} must be NAMESPACE/REGISTRY or NAMESPACE/REGISTRY@HOST, "
                            "e.g. acmenet.org/charge-net", field=field)
        return cls(m.group(1), m.group(2), (m.group(3) or "@")[1:])

    @property
    def membership(self) -> str:
        """How a participant's record lists this network (``network_memberships``)."""
        return f"{self.namespace}/{self.registry}"

    def __str__(self) -> str:
        return self.membership + (f"@{self.host}" if self.host else "")


@dataclass(frozen=True)
class Participant:
    """One participant key as the registry lists it."""

    subscriber_id: str
    key_id: str
    url: str
    type: str
    domain: str
    signing_public_key: bytes
    encr_public_key: str
    network_memberships: tuple[str, ...]
    valid_from_s: int
    valid_until_s: int
    revoked: bool

    @property
    def status(self) -> str:
        return "REVOKED" if self.revoked else "SUBSCRIBED"

    def member_of(self, network: NetworkId) -> bool:
        return network.membership in self.network_memberships

    def record(self) -> PublicKeyRecord:
        return PublicKeyRecord(self.subscriber_id, self.key_id, self.signing_public_key, self.valid_from_s,
                               self.valid_until_s)


def _window(details: dict, where: str) -> tuple[int, int]:
    start = details.get("valid_from")
    end = details.get("valid_until")
    valid_from_s = parse_time(start, field=f"{where}.valid_from") if start is not None else 0
    valid_until_s = parse_time(end, field=f"{where}.valid_until") if end is not None else NO_END_S
    return valid_from_s, valid_until_s


def participant_from_data(data: object, subscriber_id: str, key_id: str) -> Participant:
    """Read a lookup answer's ``data``; ``SignatureError("registry-malformed")`` names the field."""
    if not isinstance(data, dict) or not isinstance(data.get("details"), dict):
        raise SignatureError("registry-malformed", "registry answer has no data.details object")
    details = data["details"]
    where = f"registry record {subscriber_id}|{key_id}"
    if details.get("subscriber_id") != subscriber_id:
        raise SignatureError("registry-malformed",
                             f"{where}: details.subscriber_id is {details.get('subscriber_id')!r}")
    record_id = data.get("record_id")
    if record_id is not None and record_id != key_id:
        raise SignatureError("registry-malformed", f"{where}: record_id is {record_id!r}")
    key = b64decode(details.get("signing_public_key"), field=f"{where}.signing_public_key", length=32)
    memberships = data.get("network_memberships") or []
    if not isinstance(memberships, list):
        raise SignatureError("registry-malformed", f"{where}: network_memberships must be an array")
    valid_from_s, valid_until_s = _window(details, where)
    revoked = data.get("is_revoked", False)
    if not isinstance(revoked, bool):
        raise SignatureError("registry-malformed", f"{where}: is_revoked must be true or false")
    return Participant(
        subscriber_id, key_id, str(details.get("url") or ""), str(details.get("type") or ""),
        str(details.get("domain") or ""), key, str(details.get("encr_public_key") or ""),
        tuple(m for m in memberships if isinstance(m, str) and m), valid_from_s, valid_until_s, revoked,
    )


class DediRegistryClient:
    """Looks participants' keys up on a DeDi host and caches each answer (found or not).

    ``network`` is this node's network (``[network] network_id``): a participant that is not a
    member is refused (``SignatureError("network-mismatch")``) even when its key is listed, as
    ONIX's ``allowedNetworkIDs`` does. A revoked record is an unknown key. An unreachable host is
    ``registry-unavailable``: the message is refused, never accepted unverified.
    """

    def __init__(self, *, session: aiohttp.ClientSession | None, base_url: str, clock: Callable[[], float],
                 network: NetworkId | str | None = None, cache_ttl_s: float = 300.0,
                 negative_ttl_s: float = 30.0, max_entries: int = 1024, timeout_s: float = 5.0):
        self.session = session  # None: one of its own, made on the first lookup and ended by ``close()``
        self._own_session = session is None
        self.base_url = base_url.rstrip("/")
        self.clock = clock
        self.network = NetworkId.parse(network) if isinstance(network, str) else network
        self.cache_ttl_s = cache_ttl_s
        self.negative_ttl_s = negative_ttl_s
        self.max_entries = max_entries
        self.timeout_s = timeout_s
        self.requests_sent = 0
        self._cache = AnswerCache(clock=clock, max_entries=max_entries)

    async def lookup(self, subscriber_id: str, key_id: str) -> PublicKeyRecord | None:
        participant = await self.participant(subscriber_id, key_id)
        if participant is None or participant.revoked:
            return None
        if self.network is not None and not participant.member_of(self.network):
            raise SignatureError("network-mismatch",
                                 f"{subscriber_id!r} is not a member of network {self.network.membership!r}")
        return participant.record()

    async def participant(self, subscriber_id: str, key_id: str) -> Participant | None:
        """The registry's record for this key, revoked or not, member or not; ``None`` when
        the registry does not know it."""
        now_s = self.clock()
        cache_key = (subscriber_id, key_id)
        hit = self._cache.get(cache_key)
        if hit is not MISS:
            return hit
        data = await self._get(self._record_url(subscriber_id, key_id))
        participant = None if data is None else participant_from_data(data, subscriber_id, key_id)
        ttl_s = self.negative_ttl_s if participant is None else self._ttl_s(data, participant, now_s)
        self._cache.put(cache_key, participant, ttl_s)
        return participant

    async def registry_meta(self, network: NetworkId | None = None) -> dict:
        """A registry's ``meta`` (its own description: name, catalog services ...)."""
        network = network or self.network
        if network is None:
            raise DediError("no network to look up: give a networkId")
        data = await self._get(f"{self.base_url}/lookup/{quote(network.namespace, safe='')}/"
                               f"{quote(network.registry, safe='')}")
        if data is None:
            raise SignatureError("registry-unknown", f"no registry {network.membership!r} on {self.base_url}")
        meta = data.get("meta")
        if not isinstance(meta, dict):
            raise SignatureError("registry-malformed", f"registry {network.membership!r} has no meta object")
        return meta

    def forget(self, subscriber_id: str, key_id: str) -> None:
        self._cache.forget((subscriber_id, key_id))

    def _record_url(self, subscriber_id: str, key_id: str) -> str:
        for name, value in (("subscriber id", subscriber_id), ("key id", key_id)):
            if not isinstance(value, str) or not _SEGMENT_RE.match(value):
                raise SignatureError("key-unknown", f"{name} {value!r} cannot be looked up")
        return f"{self.base_url}/lookup/{quote(subscriber_id, safe='')}/{ALL_REGISTRIES}/{quote(key_id, safe='')}"

    def _ttl_s(self, data: dict, participant: Participant, now_s: float) -> float:
        ttl_s = self.cache_ttl_s
        answer_ttl = data.get("ttl")
        if isinstance(answer_ttl, (int, float)) and not isinstance(answer_ttl, bool) and answer_ttl > 0:
            ttl_s = min(ttl_s, float(answer_ttl))
        return min(ttl_s, max(0.0, participant.valid_until_s - now_s))

    async def _get(self, url: str) -> dict | None:
        self.requests_sent += 1
        try:
            status, raw = await asyncio.wait_for(self._fetch(url), self.timeout_s)
        except asyncio.TimeoutError:
            raise SignatureError("registry-unavailable", f"registry did not answer within {self.timeout_s} s") from None
        except aiohttp.ClientError as exc:
            raise SignatureError("registry-unavailable", f"registry request failed: {type(exc).__name__}") from None
        if status == 404:
            return None
        if status != 200:
            raise SignatureError("registry-unavailable", f"registry answered HTTP {status}")
        try:
            answer = json.loads(raw)
        except (ValueError, RecursionError):
            raise SignatureError("registry-malformed", "registry answer is not JSON") from None
        if not isinstance(answer, dict) or not isinstance(answer.get("data"), dict):
            raise SignatureError("registry-malformed", "registry answer has no data object")
        return answer["data"]

    async def close(self) -> None:
        if self._own_session and self.session is not None:
            await self.session.close()
            self.session = None

    async def _fetch(self, url: str) -> tuple[int, bytes]:
        if self.session is None:
            self.session = aiohttp.ClientSession()
        async with self.session.get(url) as resp:
            raw = await read_body(resp.content, MAX_RESPONSE_BYTES)
            if len(raw) > MAX_RESPONSE_BYTES:
                raise SignatureError("registry-malformed", f"registry answer larger than {MAX_RESPONSE_BYTES} bytes")
            return resp.status, raw


# --------------------------------------------------------------------------- reference registry


def record_from_subscription(request: dict, *, network: NetworkId, url: str, registry: str | None = None,
                             now_s: float) -> dict:
    """A registry record for a keyring's subscription request (``subscription-request.json``)."""
    for name in ("subscriber_id", "unique_key_id", "signing_public_key", "valid_from", "valid_until"):
        if not isinstance(request.get(name), str) or not request[name]:
            raise DediError(f"subscription request: {name} missing or not a string", field=name)
    b64decode(request["signing_public_key"], field="signing_public_key", length=32)
    return {
        "namespace": request["subscriber_id"],
        "registry": registry or network.registry,
        "record_id": request["unique_key_id"],
        "details": {
            "subscriber_id": request["subscriber_id"],
            "url": url,
            "type": request.get("type", "BPP"),
            "domain": request.get("domain", ""),
            "signing_public_key": request["signing_public_key"],
            "encr_public_key": request.get("encr_public_key", ""),
            "valid_from": request["valid_from"],
            "valid_until": request["valid_until"],
        },
        "network_memberships": [network.membership],
        "is_revoked": False,
        "created_at": format_time(now_s),
        "updated_at": format_time(now_s),
    }


def _check_registry_doc(doc: object, path: str) -> dict:
    if not isinstance(doc, dict) or doc.get("format") != REGISTRY_FORMAT:
        raise DediError(f"{path}: not a registry file (format must be {REGISTRY_FORMAT!r})")
    for key in ("registries", "records"):
        if not isinstance(doc.get(key, []), list):
            raise DediError(f"{path}: {key} must be an array")
    for i, rec in enumerate(doc.get("records", [])):
        where = f"{path}: records[{i}]"
        if not isinstance(rec, dict) or not isinstance(rec.get("details"), dict):
            raise DediError(f"{where} must be an object with details")
        for key in ("namespace", "registry", "record_id"):
            if not isinstance(rec.get(key), str) or not _SEGMENT_RE.match(rec[key]):
                raise DediError(f"{where}.{key} missing or not a name (letters, digits, . _ : @ -)")
        try:
            participant_from_data(rec, rec["details"].get("subscriber_id"), rec["record_id"])
        except SignatureError as exc:
            raise DediError(f"{where}: {exc}") from None
    for i, reg in enumerate(doc.get("registries", [])):
        if not isinstance(reg, dict) or not all(isinstance(reg.get(k), str) for k in ("namespace", "registry")):
            raise DediError(f"{path}: registries[{i}] needs namespace and registry")
        if not isinstance(reg.get("meta", {}), dict):
            raise DediError(f"{path}: registries[{i}].meta must be an object")
    return doc


def load_registry_file(path: str | Path) -> dict:
    """Read and check a registry file; a missing file is an empty registry."""
    path = Path(path)
    if not path.exists():
        return {"format": REGISTRY_FORMAT, "registries": [], "records": []}
    try:
        doc = json.loads(path.read_text())
    except (OSError, ValueError) as exc:
        raise DediError(f"{path}: cannot read registry file: {exc}") from None
    return _check_registry_doc(doc, str(path))


def save_registry_file(path: str | Path, doc: dict) -> None:
    path = Path(path)
    _check_registry_doc(doc, str(path))
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(json.dumps(doc, indent=2) + "\n")
    tmp.replace(path)


def add_record(doc: dict, record: dict) -> dict:
    """``doc`` with ``record`` in place of any record for the same participant key."""
    same = (record["details"]["subscriber_id"], record["record_id"])
    records = [r for r in doc.get("records", []) if (r["details"].get("subscriber_id"), r["record_id"]) != same]
    return {**doc, "records": records + [record]}


class DediRegistryServer:
    """The reference DeDi-compatible registry for tests and the demo: the two lookups above,
    answered from records held in memory (``doc`` in the registry file's format)."""

    def __init__(self, *, doc: dict | None = None, prefix: str = "/dedi", ttl_s: int | None = None):
        self.doc = _check_registry_doc(doc or {"format": REGISTRY_FORMAT}, "registry")
        self.prefix = "/" + prefix.strip("/") if prefix.strip("/") else ""
        self.ttl_s = ttl_s
        self.lookups = 0
        self._runner: web.AppRunner | None = None

    def add(self, record: dict) -> None:
        self.doc = _check_registry_doc(add_record(self.doc, record), "registry")

    def revoke(self, subscriber_id: str, key_id: str) -> bool:
        found = False
        for rec in self.doc.get("records", []):
            if rec["details"].get("subscriber_id") == subscriber_id and rec["record_id"] == key_id:
                rec["is_revoked"] = found = True
        return found

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get(self.prefix + "/lookup/{namespace}/{registry}/{record}", self._lookup_record)
        app.router.add_get(self.prefix + "/lookup/{namespace}/{registry}", self._lookup_registry)
        return app

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> int:
        from protocols.http.serve import serve

        self._runner, bound = await serve(self.app(), host, port)
        return bound

    async def close(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _lookup_record(self, request: web.Request) -> web.Response:
        self.lookups += 1
        ns, reg, rec_id = (request.match_info[k] for k in ("namespace", "registry", "record"))
        for rec in self.doc.get("records", []):
            if rec["namespace"] == ns and rec["record_id"] == rec_id and reg in (ALL_REGISTRIES, rec["registry"]):
                data = {k: v for k, v in rec.items() if k not in ("namespace", "registry")}
                if self.ttl_s is not None:
                    data["ttl"] = self.ttl_s
                return web.json_response({"message": "Record retrieved from registry", "data": data})
        return web.json_response({"message": f"no record {rec_id!r} in {ns}/{reg}"}, status=404)

    async def _lookup_registry(self, request: web.Request) -> web.Response:
        ns, reg = request.match_info["namespace"], request.match_info["registry"]
        for entry in self.doc.get("registries", []):
            if entry["namespace"] == ns and entry["registry"] == reg:
                return web.json_response({"message": "Registry retrieved", "data": {
                    "namespace": ns, "registry_name": reg, "meta": entry.get("meta", {})}})
        return web.json_response({"message": f"no registry {ns}/{reg}"}, status=404)
