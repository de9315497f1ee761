"""The bridge's only state: what the broker's retained messages say, rebuilt on every connection.

Three retained streams feed it:

* ``{root}/presence/<cell>/<charger>``: each charger's signed presence (ONLINE, or OFFLINE from
  its last will), which names the bridges the charger lets front it (``bridges``);
* ``{root}/catalog/<cell>/<charger>``: each charger's signed catalog, kept as the exact payload;
* ``{root}/bridges/<bridge>``: each bridge's presence (ONLINE, or OFFLINE from its last will);
* ``{root}/publish/<cell>/<charger>`` and ``{root}/withdraw/<cell>/<charger>`` (Beckn 2.0, where
  a charger retains them): its ``catalog/publish`` requests, signed by the charger, for its
  current catalog and for withdrawing it, which a bridge forwards to catalog discovery services.

A bridge that restarts, or a second one started beside it, subscribes and receives the same
retained messages, so it holds the same directory: nothing else needs sharing.

Who relays a callback: every bridge that fronts a charger hears its callbacks, and exactly one
should deliver each. ``owner`` picks it by rendezvous hashing of the transaction id over the
bridges that are both named by the charger and ONLINE: every bridge computes the same answer
from the same retained messages, a transaction's callbacks keep one relay (and their order),
and when a bridge goes the others take over its share as soon as its last will arrives.
"""
from __future__ import annotations

import hashlib
import json
import logging
from dataclasses import dataclass, field
from typing import Callable

from protocols.bridge.fronting import MAX_FRONTING_BRIDGES
from protocols.errors import ProtocolError
from protocols.mqtt import framing
from protocols.mqtt.topics import Topics, check_subscriber_id

log = logging.getLogger("urja.bridge")
BRIDGE_KIND = "urja.bridge"


@dataclass
class ChargerEntry:
    charger_id: str
    online: bool = False
    bridges: tuple[str, ...] = ()
    gps: str | None = None
    catalog: bytes | None = None  # the exact retained payload (framed, signed by the charger)
    catalog_topic: str | None = None
    publish_request: bytes | None = None  # framed catalog/publish signed by the charger
    withdraw_request: bytes | None = None  # the same for its catalog withdrawn (isActive false)
    seen: set = field(default_factory=set)  # which streams have spoken: presence, catalog


Change = Callable[[ChargerEntry, str], None]  # (entry, what: "catalog" | "online" | "offline")


def bridge_presence(*, bridge_id: str, online: bool, url: str, now_s: float) -> bytes:
    doc = {"kind": BRIDGE_KIND, "bridgeId": bridge_id, "status": "ONLINE" if online else "OFFLINE", "url": url,
           "timestamp": int(now_s)}
    return json.dumps(doc, separators=(",", ":")).encode()


def rendezvous(candidates: list[str] | tuple[str, ...], key: str) -> str | None:
    """The candidate with the highest hash of (candidate, key): stable, and only a departing
    candidate's keys move."""
    best, best_score = None, b""
    for cand in candidates:
        score = hashlib.blake2b(f"{cand}\n{key}".encode(), digest_size=8).digest()
        if best is None or score > best_score:
            best, best_score = cand, score
    return best


class Directory:
    def __init__(self, *, bridge_id: str, topics: Topics, on_change: Change | None = None):
        self.bridge_id = bridge_id
        self.topics = topics
        self.on_change = on_change
        self.chargers: dict[str, ChargerEntry] = {}
        self.bridges: dict[str, bool] = {}
        self.ignored = 0

    def filters(self) -> list[str]:
        root = self.topics.root
        return [f"{root}/presence/#", f"{root}/catalog/#", f"{root}/bridges/+", f"{root}/publish/#",
                f"{root}/withdraw/#"]

    # ------------------------------------------------------------------ questions

    def fronts(self, charger_id: str) -> bool:
        entry = self.chargers.get(charger_id)
        return entry is not None and self.bridge_id in entry.bridges

    def online(self, charger_id: str) -> bool:
        entry = self.chargers.get(charger_id)
        return entry is not None and entry.online

    def live_bridges(self) -> set[str]:
        live = {b for b, up in self.bridges.items() if up}
        live.add(self.bridge_id)  # this bridge is live while it runs, whatever the broker said before
        return live

    def owner(self, charger_id: str, transaction_id: str) -> str | None:
        entry = self.chargers.get(charger_id)
        if entry is None:
            return None
        live = self.live_bridges()
        return rendezvous([b for b in entry.bridges if b in live], transaction_id)

    def fronted(self) -> list[ChargerEntry]:
        return [e for e in self.chargers.values() if self.bridge_id in e.bridges]

    # ------------------------------------------------------------------ feeding

    def handle(self, topic: str, payload: bytes) -> bool:
        """Take one retained (or live) message; False when it is not a directory topic."""
        kind = self.topics.kind(topic)
        if kind == "presence":
            self._presence(topic, payload)
        elif kind == "catalog":
            self._catalog(topic, payload)
        elif topic.startswith(self.topics.root + "/bridges/"):
            self._bridge(topic, payload)
        elif topic.startswith((self.topics.root + "/publish/", self.topics.root + "/withdraw/")):
            self._request(topic, payload)
        else:
            return False
        return True

    def _entry(self, topic: str) -> ChargerEntry | None:
        try:
            charger_id = check_subscriber_id(topic.rsplit("/", 1)[-1])
        except ProtocolError:
            return None
        return self.chargers.setdefault(charger_id, ChargerEntry(charger_id))

    def _presence(self, topic: str, payload: bytes) -> None:
        entry = self._entry(topic)
        if entry is None:
            self.ignored += 1
            return
        if not payload:  # a cleared retained presence: the charger left the network
            self._forget(entry)
            return
        try:
            doc = json.loads(framing.unframe(payload).body)
            online = doc["status"] == "ONLINE"
            if doc.get("subscriber_id") != entry.charger_id:
                raise ValueError("presence names another charger")
            bridges = doc.get("bridges") or []
            if not isinstance(bridges, list) or len(bridges) > MAX_FRONTING_BRIDGES:
                raise ValueError("bridges must be a short list")
            bridges = tuple(check_subscriber_id(b) for b in bridges)
        except (ProtocolError, ValueError, KeyError, TypeError):
            self.ignored += 1
            return
        was_online, was_fronted = entry.online, self.bridge_id in entry.bridges
        entry.online, entry.bridges, entry.gps = online, bridges, doc.get("gps")
        entry.catalog_topic = doc.get("catalog_topic") or entry.catalog_topic
        entry.seen.add("presence")
        fronted = self.bridge_id in bridges
        if fronted and online and not (was_online and was_fronted):
            self._tell(entry, "online")
        elif was_fronted and was_online and not (fronted and online):
            self._tell(entry, "offline")

    def _framed_entry(self, topic: str, payload: bytes) -> ChargerEntry | None:
        """The charger a retained frame belongs to, or None (counted) when the topic names none
        or the payload is not a frame a charger could have sent; an empty payload clears."""
        entry = self._entry(topic)
        if entry is not None and payload:
            try:
                framing.unframe(payload)
            except ProtocolError:
                entry = None
        if entry is None:
            self.ignored += 1
        return entry

    def _catalog(self, topic: str, payload: bytes) -> None:
        entry = self._framed_entry(topic, payload)
        if entry is None:
            return
        entry.catalog = bytes(payload) or None
        entry.catalog_topic = topic
        entry.seen.add("catalog")
        if entry.online and self.bridge_id in entry.bridges:
            self._tell(entry, "catalog" if entry.catalog else "offline")

    def _request(self, topic: str, payload: bytes) -> None:
        entry = self._framed_entry(topic, payload)
        if entry is None:
            return
        withdraw = topic.startswith(self.topics.root + "/withdraw/")
        if withdraw:
            entry.withdraw_request = bytes(payload) or None
            return
        entry.publish_request = bytes(payload) or None
        if entry.online and self.bridge_id in entry.bridges and entry.publish_request:
            self._tell(entry, "catalog")

    def _bridge(self, topic: str, payload: bytes) -> None:
        bridge_id = topic.rsplit("/", 1)[-1]
        try:
            doc = json.loads(payload) if payload else {"status": "OFFLINE"}
            self.bridges[check_subscriber_id(bridge_id)] = doc.get("status") == "ONLINE"
        except (ProtocolError, ValueError, AttributeError):
            self.ignored += 1

    def _forget(self, entry: ChargerEntry) -> None:
        fronted_online = entry.online and self.bridge_id in entry.bridges
        del self.chargers[entry.charger_id]
        if fronted_online:
            entry.online = False
            self._tell(entry, "offline")

    def _tell(self, entry: ChargerEntry, what: str) -> None:
        if self.on_change is not None:
            self.on_change(entry, what)
