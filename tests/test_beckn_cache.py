"""What the provider may reuse between searches, and when it must stop reusing it.

The signed offer/catalog is reused until the tariff, a connector, the site's signing key or
the offer's validity says otherwise; a buyer's certificate check is reused only for the exact
certificate, inside its window, under the same revocation list. Every reply is still signed
afresh.
"""
from __future__ import annotations

import base64
import json

from test_beckn_fakes import NOW_S, Buyer, Clock, FakeCharger, charger_signer, record, signer

from protocols.beckn import messages as m
from protocols.beckn.bpp import Bpp
from protocols.beckn.trust import CertificateCache
from protocols.signing._codec import format_time
from protocols.signing.beckn import Verifier, parse_signature_header
from protocols.signing.detached import sign_object, verify_object
from protocols.signing.keys import StaticKeyLookup

AGENCY = signer("agency", "a1", 9)


def certificate(buyer_signer, *, valid_until_s=NOW_S + 86400, **over):
    cert = {"subscriber_id": buyer_signer.subscriber_id, "unique_key_id": buyer_signer.key_id,
            "signing_public_key": base64.b64encode(buyer_signer.public_key_bytes).decode(), "type": "BAP",
            "status": "SUBSCRIBED", "valid_from": format_time(NOW_S - 86400),
            "valid_until": format_time(valid_until_s)}
    cert.update(over)
    return sign_object(cert, AGENCY)


def revocation_list(sequence: int, *ids: str) -> dict:
    return sign_object({"kind": "urja.revocations", "agency_id": "agency", "sequence": sequence,
                        "issued_at": format_time(NOW_S),
                        "revoked": [{"id": i, "revoked_at": format_time(NOW_S)} for i in ids]}, AGENCY)


class World:
    def __init__(self, *, buyer_in_lookup=True, revocations=None):
        self.clock = Clock()
        self.charger = FakeCharger(clock=self.clock)
        self.buyer = Buyer(clock=self.clock)
        lookup = StaticKeyLookup([record(self.buyer.signer)] if buyer_in_lookup else [])
        ids = iter(f"00000000-0000-4000-9000-{i:012d}" for i in range(1, 10_000))
        self.charger_signer = charger_signer()
        self.bpp = Bpp(service=self.charger, signer=self.charger_signer,
                       verifier=Verifier(lookup=lookup, clock=self.clock), bpp_uri="http://charger.test/beckn",
                       clock=self.clock, new_id=lambda: next(ids), certificate={"subscriber_id": "c"},
                       agency_public_key=AGENCY.public_key_bytes, revocations=revocations)

    async def search(self, *, cert=None):
        doc = m.search(self.buyer.ctx("search", to_bpp=False), gps=(12.94, 77.62), radius_m=3000)
        if cert is not None:
            doc["message"]["intent"]["tags"] = [m.signed_tag(m.TAG_CERTIFICATE, cert)]
        body, headers = self.buyer.sign(doc)
        return await self.bpp.receive("search", body, headers)

    async def catalog(self, **kw):
        reply = await self.search(**kw)
        assert reply.acked, reply.ack
        out = reply.callbacks[0]
        return out, json.loads(out.body)


def offer_of(doc: dict) -> dict:
    provider = doc["message"]["catalog"]["providers"][0]
    return m.signed_documents(provider["offers"][0], m.TAG_OFFER)[0]


def availability(doc: dict) -> str:
    ful = doc["message"]["catalog"]["providers"][0]["fulfillments"][0]
    return m.tag_values(ful["tags"], m.TAG_SPECS)["availability"]


async def test_offer_is_reused_but_every_reply_is_signed_afresh():
    w = World()
    out1, doc1 = await w.catalog()
    w.clock.t_s += 7
    out2, doc2 = await w.catalog()
    assert offer_of(doc1) == offer_of(doc2)
    verify_object(offer_of(doc2), w.charger_signer.public_key_bytes)
    assert w.bpp.counters["offers_signed"] == 1
    # the envelope: new signature window, new timestamp, same transaction's ids
    sig1, sig2 = (parse_signature_header(o.headers["Authorization"]) for o in (out1, out2))
    assert (sig1.created_s, sig2.created_s) == (int(NOW_S), int(NOW_S) + 7)
    assert sig1.signature != sig2.signature
    assert doc1["context"]["timestamp"] != doc2["context"]["timestamp"]
    assert doc2["context"]["message_id"] != doc1["context"]["message_id"]
    # the reused catalog is spliced into the body: the bytes are exactly the compact encoding
    assert m.encode(doc2) == out2.body
    verifier = Verifier(lookup=StaticKeyLookup([record(w.charger_signer)]), clock=w.clock)
    await verifier.verify_message(out2.body, out2.headers["Authorization"])


async def test_tariff_change_resigns_the_offer():
    w = World()
    _, doc1 = await w.catalog()
    w.charger._tariff["elements"][0]["price_components"][0]["price"] = 20  # edited in place, no notice
    _, doc2 = await w.catalog()
    assert offer_of(doc1)["energy_price_paise_per_kwh"] == 2124
    assert offer_of(doc2)["energy_price_paise_per_kwh"] == 2360
    assert offer_of(doc2)["tariff_digest"] != offer_of(doc1)["tariff_digest"]
    assert doc2["message"]["catalog"]["providers"][0]["items"][0]["price"]["value"] == "23.60"
    assert w.bpp.counters["offers_signed"] == 2


async def test_connector_status_change_rebuilds_the_catalog():
    w = World()
    _, doc = await w.catalog()
    assert availability(doc) == "Available"
    w.charger._set_status("1", "CHARGING")  # the service tells its listeners (kind "connector")
    _, doc = await w.catalog()
    assert availability(doc) == "Occupied"
    assert w.bpp.pending()[-1].action == "on_search"  # and the fresh catalog is announced
    w.charger._conns["1"].status = "OUTOFORDER"  # a change nobody announced is still seen
    _, doc = await w.catalog()
    assert availability(doc) == "Unavailable"
    assert w.bpp.counters["offers_signed"] == 3


async def test_offer_is_resigned_before_its_validity_runs_out():
    w = World()
    _, doc = await w.catalog()
    first = offer_of(doc)
    assert first["valid_until"] == m.format_timestamp(NOW_S + 300)
    w.clock.t_s = NOW_S + 149  # more than half the window left: reused
    _, doc = await w.catalog()
    assert offer_of(doc) == first
    w.clock.t_s = NOW_S + 150
    _, doc = await w.catalog()
    fresh = offer_of(doc)
    assert fresh["valid_from"] == m.format_timestamp(NOW_S + 150)
    assert fresh["valid_until"] == m.format_timestamp(NOW_S + 450)
    w.clock.t_s = NOW_S + 100  # a clock set back never gets an offer valid only in its future
    _, doc = await w.catalog()
    assert offer_of(doc)["valid_from"] == m.format_timestamp(NOW_S + 100)
    assert w.bpp.counters["offers_signed"] == 3


async def test_retained_catalog_always_carries_a_whole_offer_window():
    w = World()
    await w.catalog()
    w.clock.t_s = NOW_S + 140
    announced = json.loads(w.bpp.catalog().body)
    assert offer_of(announced)["valid_until"] == m.format_timestamp(NOW_S + 440)
    _, doc = await w.catalog()  # and searches go on with that newer offer
    assert offer_of(doc) == offer_of(announced)


async def test_new_signing_key_or_certificate_rebuilds_the_catalog():
    w = World()
    await w.catalog()
    w.bpp.certificate = {"subscriber_id": "c", "renewed": True}
    _, doc = await w.catalog()
    provider = doc["message"]["catalog"]["providers"][0]
    assert m.signed_documents(provider, m.TAG_CERTIFICATE) == [{"subscriber_id": "c", "renewed": True}]
    rotated = signer("in.test.charger", "c2", 4)
    w.bpp._signer = rotated
    _, doc = await w.catalog()
    assert offer_of(doc)["signature"]["key_id"] == "in.test.charger|c2"
    verify_object(offer_of(doc), rotated.public_key_bytes)


async def test_offer_is_reused_with_a_keyring_that_hands_out_new_signer_objects():
    class Keyring:  # like protocols.signing.keys.Keyring: a fresh signer object per call
        def __init__(self, key_id):
            self.key_id = key_id

        def signer(self, now_s):
            return signer("in.test.charger", self.key_id, 3 if self.key_id == "c1" else 4)

    w = World()
    keyring = Keyring("c1")
    w.bpp._signer = keyring
    await w.catalog()
    await w.catalog()
    assert w.bpp.counters["offers_signed"] == 1
    keyring.key_id = "c2"  # rotation
    _, doc = await w.catalog()
    assert offer_of(doc)["signature"]["key_id"] == "in.test.charger|c2"
    assert w.bpp.counters["offers_signed"] == 2


async def test_certificate_is_verified_once_then_recognised():
    w = World(buyer_in_lookup=False)
    cert = certificate(w.buyer.signer)
    for _ in range(3):
        await w.catalog(cert=cert)
    assert (w.bpp.certificate_cache.misses, w.bpp.certificate_cache.hits) == (1, 2)
    # the same fields with another spelling are checked in full, once
    respelled = json.loads(json.dumps(cert, indent=1))
    doc = m.search(w.buyer.ctx("search", to_bpp=False), gps=(12.94, 77.62), radius_m=3000)
    doc["message"]["intent"]["tags"] = [m.tag_group(m.TAG_CERTIFICATE, {m.SIGNED_VALUE: json.dumps(respelled)},
                                                    display=False)]
    body, headers = w.buyer.sign(doc)
    assert (await w.bpp.receive("search", body, headers)).acked
    assert w.bpp.certificate_cache.misses == 2


async def test_tampered_certificate_is_not_taken_from_the_cache():
    w = World(buyer_in_lookup=False)
    cert = certificate(w.buyer.signer)
    await w.catalog(cert=cert)
    forged = dict(cert, valid_until=format_time(NOW_S + 10 * 365 * 86400))  # same agency signature
    reply = await w.search(cert=forged)
    assert not reply.acked and reply.http_status == 401
    assert "certificate" in reply.ack["error"]["message"]


async def test_cached_certificate_expires_with_its_window():
    w = World(buyer_in_lookup=False)
    cert = certificate(w.buyer.signer, valid_until_s=NOW_S + 60)
    await w.catalog(cert=cert)
    await w.catalog(cert=cert)
    assert w.bpp.certificate_cache.hits == 1
    w.clock.t_s = NOW_S + 60
    reply = await w.search(cert=cert)
    assert not reply.acked and reply.http_status == 401
    assert "expired" in reply.ack["error"]["message"]


async def test_revoked_certificate_is_refused_once_the_new_list_is_in_force():
    w = World(buyer_in_lookup=False, revocations=revocation_list(1, "someone.else"))
    cert = certificate(w.buyer.signer)
    await w.catalog(cert=cert)
    await w.catalog(cert=cert)
    assert w.bpp.certificate_cache.hits == 1
    # known by its certificate: a message without it is believed too
    assert (await w.search()).acked
    w.bpp.revocations = revocation_list(2, "someone.else", w.buyer.signer.subscriber_id)
    reply = await w.search(cert=cert)
    assert not reply.acked and reply.http_status == 401
    assert "revocation" in reply.ack["error"]["message"]
    # and the key it vouched for is forgotten, so leaving the certificate out does not help
    reply = await w.search()
    assert not reply.acked and reply.http_status == 401
    assert w.bpp.counters["revocations_changed"] == 1


async def test_revocation_list_resigned_in_place_takes_effect():
    revocations = revocation_list(1)
    w = World(buyer_in_lookup=False, revocations=revocations)
    cert = certificate(w.buyer.signer)
    await w.catalog(cert=cert)
    newer = revocation_list(2, w.buyer.signer.key_id)
    revocations.clear()
    revocations.update(newer)  # the same object, now a different signed list
    reply = await w.search(cert=cert)
    assert not reply.acked and "revocation" in reply.ack["error"]["message"]


def test_certificate_cache_refusals_are_not_remembered():
    cache = CertificateCache(max_entries=2)
    buyer = signer("bap.test", "b1", 7)
    forged = certificate(buyer, status="UNSUBSCRIBED")
    for _ in range(2):
        try:
            cache.verify(forged, AGENCY.public_key_bytes, now_s=NOW_S)
        except Exception as exc:
            assert "status" in str(exc)
        else:
            raise AssertionError("an unsubscribed certificate was accepted")
    assert len(cache) == 0 and cache.misses == 2
    for i in range(3):
        cache.verify(certificate(signer(f"bap{i}.test", "b1", 20 + i)), AGENCY.public_key_bytes, now_s=NOW_S)
    assert len(cache) == 2  # bounded


async def test_node_recognises_a_charger_certificate_yet_refuses_it_when_revoked_or_expired():
    from test_beckn_fakes import FLAT_TARIFF

    from protocols.mqtt.identity import make_identity, memory_agency
    from protocols.mqtt.transport import MqttSettings, MqttTransport
    from protocols.node.client import NetworkNode
    from protocols.signing.agency import CertificateLookup
    from protocols.signing.beckn import frame_message
    from tests.fleet import FleetCharger, fleet_site

    clock = Clock()
    agency = memory_agency()
    ident = make_identity(agency, "c1", lat=12.97, lon=77.59, now_s=NOW_S, valid_days=1)
    service = FleetCharger(fleet_site("c1", 12.97, 77.59), tariff=FLAT_TARIFF, clock=clock)
    bpp = Bpp(service=service, signer=ident.signer, verifier=Verifier(lookup=StaticKeyLookup(), clock=clock),
              bpp_uri="mqtt://network/urja/v1/inbox/c1", clock=clock, bpp_id="c1", certificate=ident.certificate,
              agency_public_key=agency.public_key)
    node = NetworkNode(transport=MqttTransport(MqttSettings(brokers=("mqtt://127.0.0.1:1",), client_id="n")),
                       subscriber_id="node", signer=signer("node", "n1", 5), agency_public_key=agency.public_key,
                       clock=clock)
    checked = []
    real_add = CertificateLookup.add
    node.certs.add = lambda cert: checked.append(cert) or real_add(node.certs, cert)

    async def answer():
        out = bpp.catalog()
        before = node.stats["rejected"]
        await node._receive("urja/v1/inbox/node", frame_message(out.body, out.headers["Authorization"]))
        return node.stats["rejected"] == before

    assert await answer() and await answer()
    assert len(checked) == 1  # the second answer's certificate text was recognised
    assert node.chargers["c1"].certificate == ident.certificate
    clock.t_s = NOW_S + 86400  # past the certificate's window: the cached text does not help
    assert not await answer() and "valid" in node.last_rejection
    clock.t_s = NOW_S
    node.certs.set_revocations(sign_object({"kind": "urja.revocations", "agency_id": "agency", "sequence": 1,
                                            "issued_at": format_time(NOW_S),
                                            "revoked": [{"id": "c1", "revoked_at": format_time(NOW_S)}]},
                                           agency.signer))
    assert not await answer()


async def test_node_checks_a_certificate_whose_fields_were_altered_under_a_known_signature():
    from protocols.mqtt.identity import make_identity, memory_agency
    from protocols.mqtt.transport import MqttSettings, MqttTransport
    from protocols.node.client import NetworkNode

    clock = Clock()
    agency = memory_agency()
    ident = make_identity(agency, "c1", lat=12.97, lon=77.59, now_s=NOW_S, valid_days=1)
    node = NetworkNode(transport=MqttTransport(MqttSettings(brokers=("mqtt://127.0.0.1:1",), client_id="n")),
                       subscriber_id="node", signer=signer("node", "n1", 5), agency_public_key=agency.public_key,
                       clock=clock)

    def carried(cert):
        return {"tags": [m.signed_tag(m.TAG_CERTIFICATE, cert)]}

    assert node._certificates_in(carried(ident.certificate)) == [ident.certificate]
    moved = dict(ident.certificate, gps="28.613900,77.209000")  # the same signature, another place
    assert node._certificates_in(carried(moved)) == []
    assert "certificate" in node.last_rejection
    assert node._certificates_in(carried(ident.certificate)) == [ident.certificate]
