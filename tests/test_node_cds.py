"""The reference node discovering through a catalog discovery service: it sends the 2.0
discover to ``{cds_url}/discover`` and takes from the ``on_discover`` only the catalogs whose
agency certificate and signed offer verify. The CDS here is a stand-in written for this test
(it answers from the charger's own ``catalog_v2``), not the reference CDS."""
from __future__ import annotations

import asyncio
import base64
import json

import aiohttp
from aiohttp import web
from beckn2_support import v2_errors
from test_beckn_fakes import Clock, FakeCharger

from protocols.beckn import messages as m
from protocols.beckn.bpp import Bpp
from protocols.beckn2.catalog import catalog_v2
from protocols.beckn2.profile import Beckn2Profile
from protocols.http.serve import serve
from protocols.mqtt.identity import make_identity
from protocols.mqtt.transport import MqttSettings, MqttTransport
from protocols.node.cds import discover_via_cds
from protocols.node.client import NetworkNode
from protocols.signing.agency import init_agency, verify_certificate
from protocols.signing.beckn import Verifier, sign_body
from protocols.signing.keys import StaticKeyLookup


class StandInCds:
    """Answers every discover with the catalogs it holds, to the sender's bapUri."""

    def __init__(self, catalogs: list[dict], signer, clock):
        self.catalogs = catalogs
        self.clock = clock
        self.signer = signer
        self.asked: list[dict] = []
        self.headers: list[dict] = []

    async def discover(self, request: web.Request) -> web.Response:
        doc = json.loads(await request.read())
        self.asked.append(doc)
        self.headers.append(dict(request.headers))
        ctx = {**doc["context"], "action": "on_discover", "bppId": "cds.test", "bppUri": "http://cds.test/"}
        body = m.encode({"context": ctx, "message": {"catalogs": self.catalogs}})
        now = int(self.clock())

        async def answer():
            async with aiohttp.ClientSession() as http:
                await http.post(doc["context"]["bapUri"].rstrip("/") + "/on_discover", data=body, headers={
                    "Authorization": sign_body(body, self.signer, created_s=now, expires_s=now + 60)})
        asyncio.get_running_loop().create_task(answer())
        return web.json_response({"status": "ACK", "signature": "Signature none"})


async def test_the_node_finds_chargers_through_a_cds_and_keeps_only_verified_catalogs(tmp_path):
    clock = Clock()
    agency = init_agency(tmp_path / "agency")
    charger_id = make_identity(agency, "in.test.charger", lat=12.9352, lon=77.6245, now_s=clock())
    node_id = make_identity(agency, "app.test", lat=12.93, lon=77.62, now_s=clock(), kind="BAP")
    charger = FakeCharger(clock=clock)
    bpp = Bpp(service=charger, signer=charger_id.signer, verifier=Verifier(lookup=StaticKeyLookup(), clock=clock),
              bpp_uri="http://charger.test/", clock=clock, certificate=charger_id.certificate,
              profile=Beckn2Profile(bpp_id="in.test.charger", bpp_uri="http://charger.test/"))
    good = catalog_v2(bpp)
    forged = json.loads(json.dumps(good))
    forged["id"], forged["bppId"] = "other:catalog", "in.test.other"  # someone else's certificate and offer
    cds = StandInCds([good, forged], node_id.signer, clock)
    app = web.Application()
    app.router.add_post("/beckn/discover", cds.discover)
    runner, port = await serve(app, "127.0.0.1", 0)
    node = NetworkNode(transport=MqttTransport(MqttSettings(brokers=("mqtt://127.0.0.1:1",), client_id="n")),
                       subscriber_id="app.test", signer=node_id.signer, agency_public_key=agency.public_key,
                       clock=clock, certificate=node_id.certificate, profile="beckn-2.0")
    try:
        found = await discover_via_cds(node, f"http://127.0.0.1:{port}/beckn", 12.94, 77.62, 3.0, timeout_s=5)
    finally:
        await runner.cleanup()
    assert [c.subscriber_id for c in found] == ["in.test.charger"]
    assert found[0].price == "21.24" and found[0].connectors[0].connector_type == "IEC_62196_T2"
    assert "other:catalog" in node.last_rejection
    asked = cds.asked[0]
    assert v2_errors(asked) == [] and asked["message"]["intent"]["spatial"][0]["distanceMeters"] == 3000
    cert = json.loads(base64.b64decode(cds.headers[0]["Urja-Agency-Certificate"]))
    assert verify_certificate(cert, agency.public_key, now_s=clock(), types=("BAP",)).key.subscriber_id == "app.test"
