"""Discovery through a Catalog Discovery Service (Beckn 2.0), for the reference node.

Why a separate way in: on a 2.0 network chargers publish their catalogs to a CDS, and a node
asks the CDS (``POST {cds_url}/discover`` with the 2.0 discover body) instead of every charger.
The asking is ``protocols.beckn2.cds_client.CdsDiscovery``: the service's counter-signed Ack
is checked, and its ``on_discover`` must be signed by it and carry this discover's
``requestDigest``. The service's key comes from the network's registry the DeDi way
(``[network] dedi_url`` and ``network_id``), so a node that asks a CDS needs one.

What the node trusts of each catalog: a catalog that carries an agency certificate is taken
only when the certificate verifies offline under the agency key the node holds (no lookup) and
its key signed the offer, with the catalog's ``bppId`` as its subscriber; a catalog without one
only when the registry lists the key that signed its offer for the catalog's ``bppId``, as a
member of the node's network. Availability and place are as the CDS reports them; prices are
the signed offer's.

    chargers = await discover_via_cds(node, "https://cds.example/beckn", lat, lon, radius_km)
"""
from __future__ import annotations

from protocols.beckn import messages
from protocols.beckn2 import vocabulary as v
from protocols.beckn2.catalog import catalog_to_v1
from protocols.beckn2.cds_client import CdsDiscovery, DiscoveryError, discover_intent
from protocols.node.client import Charger, NodeError, summarize_catalog
from protocols.signing.agency import verify_certificate
from protocols.signing.detached import signature_key_id, verify_object
from protocols.signing.errors import SignatureError


async def _offer_key(node, catalog: dict, certs: list, offers: list, now_s: float):
    """The key that signed the catalog's offers, vouched for by its certificate or the registry."""
    if certs:
        cert = verify_certificate(certs[0], node.agency_public_key, node.revocations, now_s=now_s)
        return cert.key, certs[0]
    if node.registry is None:
        raise SignatureError("certificate-missing", "no certificate, and no registry to look the key up in")
    subscriber_id, key_id = signature_key_id(offers[0])
    if subscriber_id != catalog.get("bppId"):
        raise SignatureError("key-mismatch", f"offer signed by {subscriber_id!r}")
    record = await node.registry.lookup(subscriber_id, key_id)
    if record is None or not record.covers(now_s):
        raise SignatureError("key-unknown", f"{subscriber_id}|{key_id} is not in the network's registry")
    return record, None


async def _charger(node, catalog: dict, near: tuple[float, float], now_s: float) -> Charger | None:
    """A catalog the node can vouch for (certificate or registry -> signed offer), as a ``Charger``."""
    v1 = catalog_to_v1(catalog)
    provider = (v1.get("providers") or [{}])[0]
    certs = messages.signed_documents(provider, messages.TAG_CERTIFICATE)
    offers = [o for offer in provider.get("offers") or [] for o in messages.signed_documents(offer, messages.TAG_OFFER)]
    if not offers:
        node.last_rejection = f"catalog {catalog.get('id')!r}: no signed offer"
        return None
    try:
        key, cert = await _offer_key(node, catalog, certs, offers, now_s)
        for offer in offers:
            verify_object(offer, key.signing_public_key, expected_key_id=(key.subscriber_id, key.key_id))
        if cert is not None and key.subscriber_id == catalog.get("bppId"):
            node.certs.add(cert)  # the charger's answers to this node verify by it, with no lookup
    except SignatureError as exc:
        node.last_rejection = f"catalog {catalog.get('id')!r}: {exc}"
        return None
    if key.subscriber_id != catalog.get("bppId"):
        node.last_rejection = f"catalog {catalog.get('id')!r}: certificate of {key.subscriber_id!r}"
        return None
    doc = {"message": {"catalog": v1}}
    info = summarize_catalog(doc, near=near)
    return Charger(key.subscriber_id, key.key_id, info["name"], info["lat"], info["lon"],
                   info["distance_km"], info["price"], info["currency"], info["connectors"], cert, doc, now_s)


async def discover_via_cds(node, cds_url: str, lat: float, lon: float, radius_km: float, *,
                           connector_type: str | None = None, timeout_s: float = 5.0,
                           host: str = "127.0.0.1") -> list[Charger]:
    """Verified chargers within ``radius_km`` that the CDS at ``cds_url`` knows, nearest first."""
    if node.registry is None:
        raise NodeError(f"asking the catalog discovery service {cds_url} needs the network's registry to "
                        "know its key by: set [network] dedi_url (and network_id)", code="config")
    # the service filters by the pack's connector type; the node's own names are checked below
    pack_type = v.CONNECTOR_TYPES.get((connector_type or "").upper())
    intent = discover_intent(lat=lat, lon=lon, radius_km=radius_km, connector=pack_type)
    try:
        async with CdsDiscovery(cds_url=cds_url, signer=node.signer, lookup=node.registry, clock=node.clock,
                                network_id=node.network_id, host=host) as cds:
            catalogs = await cds.discover(intent, timeout_s=timeout_s)
    except DiscoveryError as exc:
        raise NodeError(f"catalog discovery service: {exc}", code="refused") from None
    found: dict[str, Charger] = {}
    for catalog in catalogs:
        charger = await _charger(node, catalog, (lat, lon), node.clock()) if isinstance(catalog, dict) else None
        if charger is None or charger.distance_km is None or charger.distance_km > radius_km + 1e-9:
            continue
        if connector_type is not None and not any((k.connector_type or "").lower() == connector_type.lower()
                                                  for k in charger.connectors):
            continue
        found[charger.subscriber_id] = charger
        node.chargers[charger.subscriber_id] = charger
    return sorted(found.values(), key=lambda c: c.distance_km)
