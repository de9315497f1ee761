"""The catalog: the site as provider, its connectors with live availability, the tariff as a
signed offer (the whole OCPI tariff, so a buyer can price offline) and the charger's agency
certificate; answered to ``search`` and retained as an unsolicited ``on_search``.

What is reused between messages, and why that weakens nothing: the catalog with its signed
offer, until the tariff, a connector, the site, the certificate or the signing key changes or
half the offer's window has run (every reply around it is signed afresh with its own
created/expires).
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from protocols.beckn import messages as m
from protocols.beckn.render import Outgoing
from protocols.beckn.tags import tag_group

HOURS_TAG = "opening-hours"  # {"MONDAY": "08:00-20:00,...", ...} in the site's local time, or {"24/7": "true"}

OFFER_KIND = "urja.offer"


@dataclass
class CatalogCache:
    key: tuple
    signed_s: float
    refresh_s: float
    message: dict
    message_json: bytes
    certificate: Any  # held, so the id in the key cannot be reused by another object


class CatalogMixin:
    """The ``Bpp``'s catalog cache (``_catalog_cache``) and the signed offer in it."""

    def _offer(self, tariff: dict, now_s: float, signer=None) -> dict:
        doc = {
            "kind": OFFER_KIND, "bpp_id": self.bpp_id, "location_id": self.site.site_id,
            "item_id": m.ITEM_ID, "tariff": tariff, "tariff_id": str(tariff.get("id", "")),
            "tariff_digest": self._tariff_digest(tariff), "currency": tariff.get("currency", "INR"),
            "valid_from": m.format_timestamp(now_s),
            "valid_until": m.format_timestamp(now_s + self.policy.quote_ttl_s),
            "payment": self.policy.payment,
        }
        price = self._energy_price_paise(tariff)
        if price is not None:
            doc["energy_price_paise_per_kwh"] = price
        signed = self._sign_doc(doc, signer)
        self._count("offers_signed")
        return {"id": f"tariff:{doc['tariff_id'] or 'default'}",
                "descriptor": {"code": "tariff", "name": f"Tariff {doc['tariff_id']}"},
                "item_ids": [m.ITEM_ID], "location_ids": [self.site.site_id],
                "time": {"range": {"start": doc["valid_from"], "end": doc["valid_until"]}},
                "tags": [m.signed_tag(m.TAG_OFFER, signed)]}

    def invalidate_catalog(self) -> None:
        """Drop the cached signed catalog (the next search or announcement builds a fresh one)."""
        self._catalog_cache = None

    def _catalog_key(self, tariff: dict, conns: list, signer) -> tuple:
        """Everything the catalog is made of, cheaply: the tariff's exact JSON, what each
        connector shows, the site, the policy, the certificate and the signing key."""
        place = self.site.place
        return (
            json.dumps(tariff, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False),
            tuple((c.connector_id, c.status, c.standard, c.power_type, c.max_power_w, c.max_voltage_v,
                   c.max_current_a, c.phases) for c in conns),
            (self.site.site_id, self.site.name, getattr(self.site, "operator", ""), self.site.upi_vpa,
             place.lat, place.lon, place.address, place.city, place.state, place.country, place.postal_code),
            self.policy, self.bpp_id, id(self.certificate),
            # by the key itself: a keyring hands out a new signer object for every call
            signer.subscriber_id, signer.key_id, getattr(signer, "public_key_bytes", None) or signer,
        )

    def _catalog(self, now_s: float, *, fresh: bool = False, tariff: dict | None = None,
                 conns: list | None = None) -> "CatalogCache":
        """The catalog, signed offer included, reused while nothing it shows has changed.

        Why: building it means canonical JSON of the whole tariff and an Ed25519 signature,
        most of what a search costs; a charger answers many searches between changes. The
        offer is re-signed before half of its ``quote_ttl_s`` has run, so a buyer always gets
        at least half the window; the message around it is signed afresh for every reply.
        ``fresh`` signs a new offer regardless (a retained catalog is read long after it is
        published, so it starts with the whole window). ``tariff`` and ``conns`` (every
        connector) are the snapshots a caller already holds, so a search reads them once.
        """
        if tariff is None:
            tariff = self.service.tariff()
        if conns is None:
            conns = list(self._connectors().values())
        signer = self._current_signer()
        key = self._catalog_key(tariff, conns, signer)
        held = self._catalog_cache
        if not fresh and held is not None and held.key == key and held.signed_s <= now_s < held.refresh_s \
                and held.certificate is self.certificate:
            return held
        message = self._build_catalog_message(now_s, tariff, conns, signer)
        held = self._catalog_cache = CatalogCache(
            key=key, signed_s=now_s, refresh_s=now_s + self.policy.quote_ttl_s / 2, message=message,
            message_json=m.encode(message), certificate=self.certificate)
        return held

    def _build_catalog_message(self, now_s: float, tariff: dict, conns: list, signer) -> dict:
        currency = tariff.get("currency", "INR")
        place = self.site.place
        location = {"id": self.site.site_id, "gps": self._gps(),
                    "descriptor": {"name": self.site.name}}
        if place.address:
            location["address"] = place.address
        if place.city:
            location["city"] = {"name": place.city}
        if place.state:
            location["state"] = {"name": place.state}
        if place.country:
            location["country"] = {"code": place.country}
        if place.postal_code:
            location["area_code"] = place.postal_code
        item = {"id": m.ITEM_ID, "descriptor": {"code": "energy", "name": "EV charging energy"},
                "fulfillment_ids": [c.connector_id for c in conns], "location_ids": [self.site.site_id]}
        price = self._energy_price_paise(tariff)
        if price is not None:
            item["price"] = {"currency": f"{currency}/kWh", "value": m.money_text(price)}
        provider = {
            "id": self.bpp_id, "descriptor": self._provider_descriptor(), "locations": [location],
            "fulfillments": [self._fulfillment(c) for c in conns], "items": [item],
            "offers": [self._offer(tariff, now_s, signer)],
            "payments": [{"collected_by": "BPP", "type": "PRE-ORDER" if self.policy.payment == "prepaid"
                          else "POST-FULFILLMENT", "params": {"currency": currency}}],
        }
        if self.site.upi_vpa:
            provider["payments"][0]["params"]["virtual_payment_address"] = self.site.upi_vpa
        if self.certificate is not None:
            provider["tags"] = [self._own_certificate_tag()]
        hours = getattr(self.site, "opening_hours", None)
        if hours is not None:  # the hours the charger sells in (``agent.opening_hours``)
            provider["time"] = {"label": hours.text}
            provider.setdefault("tags", []).append(
                tag_group(HOURS_TAG, {"24/7": "true"} if hours.always else
                          {day: ",".join(spans) for day, spans in hours.by_day().items()}, name="Opening hours"))
        return {"catalog": {"descriptor": {"name": self.site.name}, "providers": [provider]}}

    def catalog(self) -> Outgoing:
        """The signed catalog as an unsolicited ``on_search`` (retained by pub/sub bindings)."""
        now_s = self.clock()
        ctx = {"domain": self.domain, "action": "on_search",
               "location": self._location(),
               "version": m.CORE_VERSION, "bpp_id": self.bpp_id, "bpp_uri": self.bpp_uri,
               "transaction_id": self.new_id(), "message_id": self.new_id(),
               "timestamp": m.format_timestamp(now_s), "ttl": m.duration_text(self.policy.quote_ttl_s)}
        held = self._catalog(now_s, fresh=True)
        return self._outgoing(m.callback(ctx, held.message), None, None, message_json=held.message_json)
