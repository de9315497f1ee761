"""The topic scheme: where a search, a directed message, a catalog and a presence live.

Everything hangs under one root (``urja/v1`` unless the network configures another):

    {root}/search/{c1}/{c2}/.../{cN}          a broadcast search for geohash cell c1c2...cN
    {root}/inbox/{subscriber_id}              messages addressed to one participant
    {root}/catalog/{c1}/.../{c5}/{subscriber_id}   a charger's retained, signed catalog
    {root}/presence/{c1}/.../{c5}/{subscriber_id}  a charger's retained presence (last will: offline)

A cell is spelt one character per topic level so that ``catalog/t/d/r/#`` gathers every
retained catalog inside cell ``tdr`` with a single subscription, at any precision. A charger
subscribes to the exact search topic of its own cell at each search precision, never to a
wildcard, so a search published for a neighbouring cell does not reach it.
"""
from __future__ import annotations

import re

from protocols.errors import ProtocolError
from protocols.mqtt import geohash

DEFAULT_ROOT = "urja/v1"
SEARCH_PRECISIONS = (2, 3, 4, 5)
PLACE_PRECISION = 5
MAX_SEARCH_CELLS = 16
_SUBSCRIBER_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._:@-]{0,127}$")
_ROOT_RE = re.compile(r"^[A-Za-z0-9._:-]+(/[A-Za-z0-9._:-]+)*$")


class TopicError(ProtocolError):
    code = "topic-invalid"


def check_subscriber_id(subscriber_id: object) -> str:
    """Subscriber ids become one topic level: no separators, no wildcards, bounded length."""
    if not isinstance(subscriber_id, str) or not _SUBSCRIBER_RE.match(subscriber_id):
        raise TopicError(
            f"subscriber id {subscriber_id!r} cannot be a topic level "
            "(allowed: 1-128 of A-Z a-z 0-9 . _ : @ -, starting with a letter or digit)",
            field="subscriber_id",
        )
    return subscriber_id


def check_root(root: object) -> str:
    if not isinstance(root, str) or not _ROOT_RE.match(root) or len(root) > 64:
        raise TopicError(f"topic root {root!r} must be slash-separated levels of A-Z a-z 0-9 . _ : -", field="topic_root")
    return root


def cell_path(cell: str) -> str:
    geohash.bounds(cell)  # validates
    return "/".join(cell)


def search_reaches(lat: float, lon: float, radius_km: float) -> bool:
    """Whether a search of this circle can be published: its cover at the coarsest search
    precision has at most ``MAX_SEARCH_CELLS`` cells. The one rule for both sides: a node
    publishes exactly the searches it allows (``search_cells``) and a charger answers exactly
    those, computed at one precision only, so a charger can apply it to every search (a finer
    precision never needs fewer cells). It depends on the place: about 1,000 km anywhere
    between 60 degrees south and north, 1,399 km at Bengaluru, less towards the poles (cells
    narrow there)."""
    try:
        return geohash.bounded_cover(lat, lon, radius_km, min(SEARCH_PRECISIONS), MAX_SEARCH_CELLS) is not None
    except geohash.GeohashError:
        return False


def search_reach_km(lat: float, lon: float) -> int:
    """The widest radius, in whole km, that ``search_reaches`` allows around this place: what
    a refusal names, so the searcher learns how far it may ask. The cover only grows with the
    radius, so halving the interval finds it in a dozen coarse covers."""
    low_km, high_km = 0, geohash.MAX_RADIUS_KM
    if search_reaches(lat, lon, high_km):
        return high_km
    while high_km - low_km > 1:
        mid_km = (low_km + high_km) // 2
        if search_reaches(lat, lon, mid_km):
            low_km = mid_km
        else:
            high_km = mid_km
    return low_km


def search_cells(lat: float, lon: float, radius_km: float) -> list[str]:
    """The cells a search of this circle goes to: those of the finest search precision whose
    cover has at most ``MAX_SEARCH_CELLS`` cells. Refused by ``search_reaches`` alone."""
    try:
        geohash.check_circle(lat, lon, radius_km)
    except geohash.GeohashError as exc:
        raise TopicError(str(exc), field="radius_km") from None
    if not search_reaches(lat, lon, radius_km):
        raise TopicError(f"a {radius_km:g} km radius around {lat:g},{lon:g} needs more than {MAX_SEARCH_CELLS} "
                         f"geohash cells at precision {min(SEARCH_PRECISIONS)}; a search reaches at most "
                         f"{search_reach_km(lat, lon)} km there", field="radius_km")
    _, cells = geohash.choose_cover(lat, lon, radius_km, SEARCH_PRECISIONS, MAX_SEARCH_CELLS)
    return cells


class Topics:
    """Builds and parses the topics of one network root."""

    def __init__(self, root: str = DEFAULT_ROOT):
        self.root = check_root(root)

    def search(self, cell: str) -> str:
        return f"{self.root}/search/{cell_path(cell)}"

    def inbox(self, subscriber_id: str) -> str:
        return f"{self.root}/inbox/{check_subscriber_id(subscriber_id)}"

    def catalog(self, lat: float, lon: float, subscriber_id: str) -> str:
        cell = geohash.encode(lat, lon, PLACE_PRECISION)
        return f"{self.root}/catalog/{cell_path(cell)}/{check_subscriber_id(subscriber_id)}"

    def presence(self, lat: float, lon: float, subscriber_id: str) -> str:
        cell = geohash.encode(lat, lon, PLACE_PRECISION)
        return f"{self.root}/presence/{cell_path(cell)}/{check_subscriber_id(subscriber_id)}"

    def catalog_request(self, lat: float, lon: float, subscriber_id: str, *, withdraw: bool = False) -> str:
        """Where a charger keeps its signed Beckn 2.0 ``catalog/publish`` (or the withdrawal of
        its catalog) for the bridges that front it (``protocols.bridge.directory``)."""
        return self.catalog(lat, lon, subscriber_id).replace("/catalog/", "/withdraw/" if withdraw else "/publish/", 1)

    def catalogs_in(self, cell: str) -> str:
        """Filter gathering every retained catalog inside ``cell`` (any precision up to 5)."""
        return f"{self.root}/catalog/{cell_path(cell)}/#"

    def presences_in(self, cell: str) -> str:
        return f"{self.root}/presence/{cell_path(cell)}/#"

    def charger_search_filters(self, lat: float, lon: float) -> list[str]:
        """The exact search topics a charger at (lat, lon) listens on, one per search precision."""
        return [self.search(geohash.encode(lat, lon, p)) for p in SEARCH_PRECISIONS]

    def search_cover(self, lat: float, lon: float, radius_km: float) -> list[str]:
        """Topics a search of this circle is published to (the finest precision within the cell budget)."""
        return [self.search(c) for c in search_cells(lat, lon, radius_km)]

    def kind(self, topic: str) -> str | None:
        """``search``, ``inbox``, ``catalog`` or ``presence`` for a topic under this root, else None."""
        prefix = self.root + "/"
        if not topic.startswith(prefix):
            return None
        head = topic[len(prefix):].split("/", 1)[0]
        return head if head in ("search", "inbox", "catalog", "presence") else None
