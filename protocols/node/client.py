"""A network node (buyer side, BAP) over the MQTT binding.

What it guarantees to its caller: every charger it reports, and every answer it returns, was
signed by a key that the network's agency certified (checked offline: agency -> certificate
-> message signature), and the signer is the charger the answer claims to come from. An answer
that fails any check is dropped and counted (``stats``), never shown.

The node learns a charger's key from the certificate the charger carries in its catalog
(``on_search`` answers and the retained catalog topic), so it needs no registry round trip.
Directed messages go to ``{root}/inbox/{bpp_id}``; answers come to the node's own inbox.
Requests carry a ``ttl``; answers are matched by transaction and message id, and anything
else for a known transaction (unsolicited ``on_status``/``on_update``, receipts) goes to the
listeners of that transaction.

``profile`` is the wire protocol: ``"beckn-1.1"`` or ``"beckn-2.0"``. The node builds and reads
1.1 documents either way; on 2.0 ``protocols.beckn2.codec`` turns each request into 2.0 before
it is signed and each answer back after its signature over the received bytes verified.
"""
from __future__ import annotations

import asyncio
import base64
import uuid
from dataclasses import dataclass, field
from typing import Any, Callable

from agent.aio import cancel_and_wait
from protocols.beckn import messages
from protocols.beckn2 import codec
from protocols.beckn2.vocabulary import DEFAULT_NETWORK_ID, PROFILE_V1, PROFILE_V2, PROFILES
from protocols.errors import ProtocolError
from protocols.mqtt import framing, geohash
from protocols.mqtt.topics import Topics, check_subscriber_id, search_cells
from protocols.mqtt.transport import MqttTransport
from protocols.signing.agency import CertificateLookup
from protocols.signing.beckn import Verifier, parse_signature_header
from protocols.signing.detached import canonical_bytes, load_json
from protocols.signing.errors import SignatureError
from protocols.signing.keys import Ed25519Signer
from protocols.signing.receipt import ReceiptCheck, verify_receipt

MAX_CERT_TEXTS = 4096


class NodeError(ProtocolError):
    """A request that got no usable answer: ``code`` is ``timeout``, ``nack`` or ``refused``."""

    code = "node-error"


@dataclass
class Connector:
    connector_id: str
    connector_type: str | None
    power_kw: str | None
    status: str | None

    @property
    def available(self) -> bool:
        return (self.status or "").lower() in ("available", "true", "free")


@dataclass
class Charger:
    """One charger's verified answer to a search (or its retained catalog)."""

    subscriber_id: str
    key_id: str
    name: str | None
    lat: float | None
    lon: float | None
    distance_km: float | None
    price: str | None
    currency: str | None
    connectors: list[Connector]
    certificate: dict | None = field(repr=False)  # None: its key was found in the network's registry
    catalog: dict = field(repr=False)
    received_s: float = 0.0

    def as_dict(self) -> dict:
        return {"subscriber_id": self.subscriber_id, "key_id": self.key_id, "name": self.name,
                "gps": None if self.lat is None else f"{self.lat:.6f},{self.lon:.6f}",
                "distance_km": None if self.distance_km is None else round(self.distance_km, 3),
                "price": self.price, "currency": self.currency, "verified": True,
                "connectors": [c.__dict__ | {"available": c.available} for c in self.connectors]}


@dataclass
class Answer:
    """A verified callback: the whole document, its context and message (or error)."""

    action: str
    doc: dict
    context: dict
    message: dict
    error: dict | None
    sender: str


def _first(values: list, default=None):
    return values[0] if values else default


def summarize_catalog(doc: dict, *, near: tuple[float, float] | None) -> dict:
    """Name, place, price and connectors from an ``on_search`` catalog (tolerant of absent parts)."""
    catalog = (doc.get("message") or {}).get("catalog") or {}
    provider = _first(catalog.get("providers") or [], {}) or {}
    name = ((provider.get("descriptor") or {}).get("name")) or ((catalog.get("descriptor") or {}).get("name"))
    lat = lon = None
    loc = _first(provider.get("locations") or [], {}) or {}
    if isinstance(loc.get("gps"), str):
        try:
            lat, lon = (float(x) for x in loc["gps"].split(","))
        except ValueError:
            lat = lon = None
    item = _first(provider.get("items") or [], {}) or {}
    price = item.get("price") or {}
    connectors = []
    for f in provider.get("fulfillments") or []:
        if not isinstance(f, dict):
            continue
        specs = messages.tag_values(f.get("tags"), messages.TAG_SPECS) or {}
        state = ((f.get("state") or {}).get("descriptor") or {}).get("code")
        status = specs.get("availability") or specs.get("status") or state
        connectors.append(Connector(str(f.get("id")), specs.get("connector-type"),
                                    specs.get("power-rating-kw") or specs.get("power-kw"), status))
    distance = None
    if near is not None and lat is not None:
        distance = geohash.distance_km(near[0], near[1], lat, lon)
    return {"name": name, "lat": lat, "lon": lon, "price": price.get("value"), "currency": price.get("currency"),
            "connectors": connectors, "distance_km": distance}


class NetworkNode:
    """Buyer-side client; one instance per app or gateway connection."""

    def __init__(self, *, transport: MqttTransport, subscriber_id: str, signer: Ed25519Signer,
                 agency_public_key: bytes, clock: Callable[[], float], revocations: Any = None,
                 certificate: dict | None = None, topics: Topics | None = None,
                 domain: str = messages.DEFAULT_DOMAIN, ttl_s: int = messages.DEFAULT_TTL_S,
                 new_id: Callable[[], str] | None = None, uri: str | None = None,
                 profile: str = PROFILE_V1, network_id: str = DEFAULT_NETWORK_ID):
        if profile not in PROFILES:
            raise ValueError(f"profile {profile!r} (allowed: {', '.join(PROFILES)})")
        self.profile = profile
        self.network_id = network_id
        self.transport = transport
        self.subscriber_id = check_subscriber_id(subscriber_id)
        self.signer = signer
        self.agency_public_key = agency_public_key
        self.revocations = revocations
        self.certificate = certificate
        self.clock = clock
        self.topics = topics or Topics()
        self.domain = domain
        self.ttl_s = ttl_s
        self.new_id = new_id or (lambda: str(uuid.uuid4()))
        self.inbox_topic = self.topics.inbox(self.subscriber_id)
        self.uri = uri or f"mqtt://network/{self.inbox_topic}"
        self.certs = CertificateLookup(agency_public_key=agency_public_key, clock=clock)
        if revocations is not None:
            self.certs.set_revocations(revocations)
        self.verifier = Verifier(lookup=self.certs, clock=clock)
        self.chargers: dict[str, Charger] = {}
        self.cds_url: str | None = None  # a catalog discovery service to ask (``discover_via_cds``)
        self.registry = None  # the network's DeDi registry (``use_registry``), for keys no certificate vouches for
        self.stats = {"received": 0, "rejected": 0, "unmatched": 0, "duplicates": 0}
        self.last_rejection: str | None = None
        self._waiting: dict[tuple[str, str], asyncio.Future] = {}
        self._searches: dict[str, tuple[list, asyncio.Event, tuple[float, float], float, str | None]] = {}
        self._listeners: dict[str, list[Callable[[Answer], None]]] = {}
        self._catalog_waiters: dict[str, asyncio.Future] = {}
        self._work: set[asyncio.Task] = set()
        self._seen: set[tuple[str, str, str]] = set()
        self._browse = None
        self._probe = asyncio.Event()
        self._certs_held: dict[tuple, dict] = {}  # (subscriber, key id, signature) -> the verified certificate
        self._cert_texts: dict[str, dict] = {}
        transport.on_message = self._on_message

    async def start(self, *, connect_timeout_s: float = 10.0) -> None:
        self.transport.subscribe(self.inbox_topic, 1)
        if not self.transport._tasks:
            await self.transport.start()
        await self.transport.wait_connected(connect_timeout_s)

    def use_registry(self, registry) -> None:
        """Look keys up in the network's registry (a ``KeyLookup``, e.g. ``DediRegistryClient``)
        when no agency certificate vouches for them; certificates are still tried first, so a
        certified charger costs no lookup."""
        from protocols.signing.keys import FirstFoundLookup

        self.registry = registry
        self.verifier = Verifier(lookup=FirstFoundLookup(self.certs, registry), clock=self.clock)

    async def close(self) -> None:
        await cancel_and_wait(list(self._work))
        self._work.clear()
        await self.transport.close()
        if self.registry is not None and hasattr(self.registry, "close"):
            await self.registry.close()

    async def __aenter__(self):
        await self.start()
        return self

    async def __aexit__(self, *exc):
        await self.close()

    # ------------------------------------------------------------------ sending

    def context(self, action: str, *, transaction_id: str, bpp_id: str | None = None,
                message_id: str | None = None) -> dict:
        return messages.new_context(
            action=action, bap_id=self.subscriber_id, bap_uri=self.uri, transaction_id=transaction_id,
            message_id=message_id or self.new_id(), timestamp_s=self.clock(), bpp_id=bpp_id,
            bpp_uri=None if bpp_id is None else f"mqtt://network/{self.topics.inbox(bpp_id)}",
            domain=self.domain, ttl_s=self.ttl_s)

    def _frame(self, doc: dict) -> bytes:
        """Sign and frame a request built as 1.1; on 2.0 it is sent as 2.0, and a discover
        carries the node's certificate in a header (its 2.0 body has no place for it)."""
        now = self.clock()
        certificate = None
        if self.profile == PROFILE_V2:
            if doc["context"]["action"] == "search" and self.certificate is not None:
                certificate = base64.b64encode(canonical_bytes(self.certificate)).decode("ascii")
            doc = codec.request_v2(doc, network_id=self.network_id)
        return framing.sign_and_frame(messages.encode(doc), self.signer, now_s=now, window_s=self.ttl_s,
                                      certificate=certificate)

    async def discover(self, lat: float, lon: float, radius_km: float, *, connector_type: str | None = None,
                       timeout_s: float = 2.0, expect: int | None = None,
                       on_found: Callable[[Charger], None] | None = None) -> list[Charger]:
        """Chargers within ``radius_km`` that answered with a verified catalog, nearest first.

        Returns after ``timeout_s``, or as soon as ``expect`` chargers answered.
        """
        txn = self.new_id()
        ctx = self.context("search", transaction_id=txn)
        doc = messages.search(ctx, gps=(lat, lon), radius_m=int(radius_km * 1000), connector_type=connector_type)
        if self.certificate is not None:
            doc["message"]["intent"].setdefault("tags", []).append(
                messages.signed_tag(messages.TAG_CERTIFICATE, self.certificate))
        payload = self._frame(doc)
        found: list[Charger] = []
        done = asyncio.Event()
        self._searches[txn] = (found, done, (lat, lon), radius_km, on_found, expect)
        try:
            for topic in self.topics.search_cover(lat, lon, radius_km):
                self.transport.publish_nowait(topic, payload, qos=1, expiry_s=self.ttl_s)
            try:
                await asyncio.wait_for(done.wait(), timeout_s)
            except asyncio.TimeoutError:
                pass
        finally:
            del self._searches[txn]
        return sorted(found, key=lambda c: (c.distance_km is None, c.distance_km or 0.0))

    async def discover_retained(self, lat: float, lon: float, radius_km: float, *, connector_type: str | None = None,
                                timeout_s: float = 3.0) -> list[Charger]:
        """Chargers within ``radius_km`` from their retained, signed catalogs: no request is sent,
        so this works for a node without a certificate; availability is as last published."""
        cells = search_cells(lat, lon, radius_km)
        filters = [self.topics.catalogs_in(c) for c in cells]
        found: list[Charger] = []
        self._browse = (found, (lat, lon), radius_km)
        probe = f"{self.topics.root}/probe/{self.subscriber_id}"
        self._probe = asyncio.Event()
        try:
            for f in filters:
                self.transport.subscribe(f, 1)
            self.transport.subscribe(probe, 1)
            # retained messages of a subscription are sent before anything published after it
            await self.transport.publish(probe, b"probe", qos=1, timeout_s=timeout_s)
            try:
                await asyncio.wait_for(self._probe.wait(), timeout_s)
            except asyncio.TimeoutError:
                pass
            if self._work:
                try:
                    await asyncio.wait_for(asyncio.gather(*list(self._work), return_exceptions=True), timeout_s)
                except asyncio.TimeoutError:
                    pass  # what was verified in time is the answer; the rest arrives too late
        finally:
            self._browse = None
            for f in filters + [probe]:
                self.transport.unsubscribe(f)
        if connector_type is not None:
            found = [c for c in found if any((k.connector_type or "").lower() == connector_type.lower()
                                             for k in c.connectors)]
        return sorted(found, key=lambda c: (c.distance_km is None, c.distance_km or 0.0))

    async def request(self, doc: dict, *, timeout_s: float = 15.0) -> Answer:
        """Send a request (built with ``protocols.beckn.messages``) and wait for its callback."""
        ctx = doc["context"]
        bpp_id = ctx.get("bpp_id")
        if not bpp_id:
            raise NodeError(f"{ctx.get('action')} needs context.bpp_id", code="refused")
        key = (ctx["transaction_id"], ctx["message_id"])
        future = asyncio.get_running_loop().create_future()
        self._waiting[key] = future
        try:
            await self.transport.publish(self.topics.inbox(bpp_id), self._frame(doc), qos=1,
                                         expiry_s=self.ttl_s, timeout_s=timeout_s)
            answer = await asyncio.wait_for(future, timeout_s)
        except asyncio.TimeoutError:
            raise NodeError(f"no on_{ctx['action']} from {bpp_id} within {timeout_s} s", code="timeout") from None
        finally:
            self._waiting.pop(key, None)
        if answer.error is not None:
            raise NodeError(f"{bpp_id} refused {ctx['action']}: {answer.error.get('code')} "
                            f"{answer.error.get('message')}", code="nack", error=answer.error, answer=answer)
        return answer

    def listen(self, transaction_id: str, listener: Callable[[Answer], None]) -> Callable[[], None]:
        """Be told of every verified message of a transaction; returns a function that stops it."""
        self._listeners.setdefault(transaction_id, []).append(listener)

        def stop():
            lst = self._listeners.get(transaction_id, [])
            if listener in lst:
                lst.remove(listener)
            if not lst:
                self._listeners.pop(transaction_id, None)
        return stop

    async def fetch_catalog(self, subscriber_id: str, *, timeout_s: float = 5.0) -> Charger:
        """A charger's retained catalog, wherever it is (verified like a search answer)."""
        check_subscriber_id(subscriber_id)
        if subscriber_id in self.chargers:
            return self.chargers[subscriber_id]
        pending = self._catalog_waiters.get(subscriber_id)
        if pending is not None:
            try:
                return await asyncio.wait_for(asyncio.shield(pending), timeout_s)
            except asyncio.TimeoutError:
                raise NodeError(f"no verified catalog from {subscriber_id} within {timeout_s} s",
                                code="timeout") from None
        topic = f"{self.topics.root}/catalog/+/+/+/+/+/{subscriber_id}"
        future = asyncio.get_running_loop().create_future()
        self._catalog_waiters[subscriber_id] = future
        self.transport.subscribe(topic, 1)
        try:
            return await asyncio.wait_for(future, timeout_s)
        except asyncio.TimeoutError:
            raise NodeError(f"no verified catalog from {subscriber_id} within {timeout_s} s "
                            f"(last rejection: {self.last_rejection})", code="timeout") from None
        finally:
            self._catalog_waiters.pop(subscriber_id, None)
            self.transport.unsubscribe(topic)

    def verify_receipt(self, receipt: dict) -> ReceiptCheck:
        return verify_receipt(receipt, agency_public_key=self.agency_public_key, revocations=self.revocations)

    # ------------------------------------------------------------------ receiving

    def _on_message(self, topic: str, payload: bytes, retained: bool) -> None:
        if topic.startswith(f"{self.topics.root}/probe/"):
            self._probe.set()
            return
        self.stats["received"] += 1
        task = asyncio.create_task(self._receive(topic, payload), name=f"node-receive:{self.subscriber_id}")
        self._work.add(task)
        task.add_done_callback(self._work.discard)

    def _reject(self, why: str) -> None:
        self.stats["rejected"] += 1
        self.last_rejection = why

    async def _receive(self, topic: str, payload: bytes) -> None:
        try:
            frame = framing.unframe(payload)
            doc = messages.decode(frame.body)
            if self.profile == PROFILE_V2:
                doc = codec.callback_v1(doc)  # read as the 1.1 answer the rest of the node knows
            ctx = doc.get("context") if isinstance(doc, dict) else None
            if not isinstance(ctx, dict) or not isinstance(ctx.get("action"), str):
                raise NodeError("no context.action", code="refused")
            action = ctx["action"]
            # a charger proves who it is with its agency certificate, carried in its catalog
            certs = self._certificates_in(doc)
            try:
                verified = await self.verifier.verify_message(frame.body, frame.authorization,
                                                              frame.gateway_authorization)
            except SignatureError as exc:
                if exc.reason != "key-unknown" or action == "on_search":
                    # a catalog carries its own certificate: if that did not vouch for the key
                    # (revoked, expired, forged), fetching the catalog again cannot either
                    if exc.reason == "key-unknown" and self.last_rejection:
                        raise SignatureError(exc.reason, f"{exc}; {self.last_rejection}") from None
                    raise
                # a charger we have not met yet (e.g. a receipt after a restart): its retained
                # catalog carries the certificate that vouches for the key
                signer_id = parse_signature_header(frame.authorization).subscriber_id
                await self.fetch_catalog(signer_id, timeout_s=5.0)
                verified = await self.verifier.verify_message(frame.body, frame.authorization,
                                                              frame.gateway_authorization)
        except ProtocolError as exc:
            self._reject(f"{topic}: {exc}")
            return
        sender = verified.sender.subscriber_id
        if ctx.get("bpp_id") != sender:
            self._reject(f"{topic}: signed by {sender!r} but claims bpp_id {ctx.get('bpp_id')!r}")
            return
        seen_key = (ctx.get("transaction_id"), ctx.get("message_id"), verified.digest)
        if seen_key in self._seen:
            self.stats["duplicates"] += 1
            return
        self._seen.add(seen_key)
        answer = Answer(action, doc, ctx, doc.get("message") or {}, doc.get("error"), sender)
        if action == "on_search":
            self._on_catalog(answer, verified.sender.key_id, certs)
        future = self._waiting.get((ctx.get("transaction_id"), ctx.get("message_id")))
        if future is not None and not future.done() and action != "on_search":
            future.set_result(answer)
        for listener in list(self._listeners.get(ctx.get("transaction_id"), ())):
            listener(answer)
        if future is None and action != "on_search" and ctx.get("transaction_id") not in self._listeners:
            self.stats["unmatched"] += 1

    def _certificates_in(self, doc: dict) -> list[dict]:
        """The certificates a message carries, each added to the lookup once it verifies.

        A charger sends the same certificate text with every answer: that text is verified
        (agency signature, window, revocation list) the first time and recognised after, with
        no parsing. The lookup still refuses a key whose certificate window has ended or that a
        newer revocation list names, whatever was cached here.
        """
        certs = []
        for text in messages.signed_document_texts(doc, messages.TAG_CERTIFICATE):
            cert = self._cert_texts.get(text)
            if cert is not None:
                certs.append(cert)
                continue
            try:
                cert = load_json(text)
            except SignatureError:
                continue
            if not isinstance(cert, dict):
                continue
            marker = (cert.get("subscriber_id"), cert.get("unique_key_id"), str(cert.get("signature")))
            # Skip the check only for the very certificate verified before: a signature copied
            # onto altered fields must be checked (and refused), not recognised by its marker.
            if self._certs_held.get(marker) != cert:
                try:
                    self.certs.add(cert)
                except SignatureError as exc:
                    self.last_rejection = f"certificate: {exc}"
                    continue
                if len(self._certs_held) >= MAX_CERT_TEXTS:
                    self._certs_held.pop(next(iter(self._certs_held)))
                self._certs_held[marker] = cert
            certs.append(cert)
            if len(self._cert_texts) >= MAX_CERT_TEXTS:
                self._cert_texts.pop(next(iter(self._cert_texts)))
            self._cert_texts[text] = cert
        return certs

    def _on_catalog(self, answer: Answer, key_id: str, certs: list) -> None:
        txn = answer.context.get("transaction_id")
        search = self._searches.get(txn)
        near = search[2] if search else None
        cert = next((c for c in certs if c.get("subscriber_id") == answer.sender), {})
        info = summarize_catalog(answer.doc, near=near)
        charger = Charger(answer.sender, key_id, info["name"], info["lat"], info["lon"], info["distance_km"],
                          info["price"], info["currency"], info["connectors"], cert, answer.doc, self.clock())
        self.chargers[answer.sender] = charger
        waiter = self._catalog_waiters.get(answer.sender)
        if waiter is not None and not waiter.done():
            waiter.set_result(charger)
        if search is None:
            if self._browse is not None:
                found, near, radius_km = self._browse
                info = summarize_catalog(answer.doc, near=near)
                charger.distance_km = info["distance_km"]
                if charger.distance_km is not None and charger.distance_km <= radius_km and \
                        all(c.subscriber_id != charger.subscriber_id for c in found):
                    found.append(charger)
            return
        found, done, _, radius_km, on_found, expect = search
        if charger.distance_km is not None and charger.distance_km > radius_km + 1e-9:
            return  # a charger in a covered cell but outside the circle: not what was asked
        if any(c.subscriber_id == charger.subscriber_id for c in found):
            return
        found.append(charger)
        if on_found is not None:
            on_found(charger)
        if expect is not None and len(found) >= expect:
            done.set()


def _km_text(radius_km: float) -> str:
    text = f"{radius_km:.3f}".rstrip("0").rstrip(".")
    return text or "0"
