"""Discovery through a Catalog Discovery Service (Beckn 2.0), for the reference node.

Why a separate way in: on a 2.0 network chargers publish their catalogs to a CDS, and a node
asks the CDS (``POST {cds_url}/discover`` with the 2.0 discover body) instead of every charger.
The CDS acknowledges and sends ``on_discover`` with the matching catalogs to the node's
``bapUri``, so the node listens on a short-lived HTTP receiver for the answer.

What the node trusts: the ``on_discover`` envelope is the CDS's (its key is the registry's
business); each catalog is taken only when it carries an agency certificate that verifies
offline and a signed offer that its key signed, and its subscriber is the catalog's
``bppId``. Availability and place are as the CDS reports them; prices are the signed offer's.

    chargers = await discover_via_cds(node, "https://cds.example/beckn", lat, lon, radius_km)
"""
from __future__ import annotations

import asyncio
import base64

import aiohttp

from protocols.beckn import messages
from protocols.beckn2 import codec
from protocols.beckn2.catalog import catalog_to_v1
from protocols.beckn2.vocabulary import CERTIFICATE_HEADER
from protocols.http.bap import BapReceiver
from protocols.node.client import Charger, NodeError, summarize_catalog
from protocols.signing.agency import verify_certificate
from protocols.signing.beckn import sign_body
from protocols.signing.detached import canonical_bytes, verify_object
from protocols.signing.errors import SignatureError


def _charger(node, catalog: dict, near: tuple[float, float], now_s: float) -> Charger | None:
    """A catalog the node can vouch for (certificate -> signed offer), as a ``Charger``."""
    v1 = catalog_to_v1(catalog)
    provider = (v1.get("providers") or [{}])[0]
    certs = messages.signed_documents(provider, messages.TAG_CERTIFICATE)
    offers = [o for offer in provider.get("offers") or [] for o in messages.signed_documents(offer, messages.TAG_OFFER)]
    if not certs or not offers:
        node.last_rejection = f"catalog {catalog.get('id')!r}: no certificate or signed offer"
        return None
    try:
        cert = verify_certificate(certs[0], node.agency_public_key, node.revocations, now_s=now_s)
        for offer in offers:
            verify_object(offer, cert.key.signing_public_key, expected_key_id=(cert.key.subscriber_id, cert.key.key_id))
    except SignatureError as exc:
        node.last_rejection = f"catalog {catalog.get('id')!r}: {exc}"
        return None
    if cert.key.subscriber_id != catalog.get("bppId"):
        node.last_rejection = f"catalog {catalog.get('id')!r}: certificate of {cert.key.subscriber_id!r}"
        return None
    doc = {"message": {"catalog": v1}}
    info = summarize_catalog(doc, near=near)
    return Charger(cert.key.subscriber_id, cert.key.key_id, info["name"], info["lat"], info["lon"],
                   info["distance_km"], info["price"], info["currency"], info["connectors"], certs[0], doc, now_s)


async def discover_via_cds(node, cds_url: str, lat: float, lon: float, radius_km: float, *,
                           connector_type: str | None = None, timeout_s: float = 5.0,
                           host: str = "127.0.0.1") -> list[Charger]:
    """Verified chargers within ``radius_km`` that the CDS at ``cds_url`` knows, nearest first."""
    receiver = BapReceiver(profile="beckn-2.0", signer=node.signer, clock=node.clock)
    port = await receiver.start(host, 0)
    try:
        txn = node.new_id()
        ctx = messages.new_context(action="search", bap_id=node.subscriber_id, bap_uri=f"http://{host}:{port}/",
                                   transaction_id=txn, message_id=node.new_id(), timestamp_s=node.clock(),
                                   domain=node.domain, ttl_s=node.ttl_s)
        doc = messages.search(ctx, gps=(lat, lon), radius_m=int(radius_km * 1000), connector_type=connector_type)
        body = messages.encode(codec.request_v2(doc, network_id=node.network_id))
        now = int(node.clock())
        headers = {"Authorization": sign_body(body, node.signer, created_s=now, expires_s=now + node.ttl_s),
                   "Content-Type": "application/json"}
        if node.certificate is not None:
            headers[CERTIFICATE_HEADER] = base64.b64encode(canonical_bytes(node.certificate)).decode("ascii")
        url = cds_url.rstrip("/") + "/discover"
        try:
            async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=timeout_s)) as http:
                async with http.post(url, data=body, headers=headers) as resp:
                    ack = await resp.json(content_type=None)
        except (aiohttp.ClientError, asyncio.TimeoutError, ValueError) as exc:
            raise NodeError(f"catalog discovery service {url}: {exc}", code="refused") from None
        if not isinstance(ack, dict) or ack.get("status") != "ACK":
            err = ack.get("error") if isinstance(ack, dict) else None
            raise NodeError(f"catalog discovery service {url} refused discover: {err}", code="nack")
        try:
            await receiver.wait_for("on_search", transaction_id=txn, timeout_s=timeout_s)
        except TimeoutError:
            raise NodeError(f"no on_discover from {url} within {timeout_s} s", code="timeout") from None
        found: dict[str, Charger] = {}
        for _action, raw in receiver.raw:
            for catalog in ((raw.get("message") or {}).get("catalogs") or []):
                charger = _charger(node, catalog, (lat, lon), node.clock()) if isinstance(catalog, dict) else None
                if charger is None or charger.distance_km is None or charger.distance_km > radius_km + 1e-9:
                    continue
                if connector_type is not None and not any((k.connector_type or "").lower() == connector_type.lower()
                                                          for k in charger.connectors):
                    continue
                found[charger.subscriber_id] = charger
                node.chargers[charger.subscriber_id] = charger
    finally:
        await receiver.close()
    return sorted(found.values(), key=lambda c: c.distance_km)

