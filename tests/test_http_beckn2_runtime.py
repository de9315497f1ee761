"""``urja run`` serving Beckn 2.0 over HTTP: the real runtime on the simulated board, a site whose
``[http] profile`` is 2.0, a buyer certified by the site's agency, real HTTP both ways."""
from __future__ import annotations

import aiohttp
from beckn2_support import ack_errors, nacl_verify_ack, v2_errors

from agent.bootstrap import open_runtime
from agent.clock import Clock
from protocols.beckn import messages as m
from protocols.beckn2 import codec
from protocols.http.bap import BapReceiver
from protocols.mqtt.identity import make_identity
from protocols.signing.agency import load_agency
from protocols.signing.beckn import Verifier, sign_body
from protocols.signing.keys import PublicKeyRecord, StaticKeyLookup
from tests.support import sim_config


async def test_a_charger_run_with_an_http_2_0_profile_quotes_a_certified_buyer(tmp_path):
    cfg = sim_config(tmp_path, auth="network", extra_toml='\n[http]\nlisten = "127.0.0.1:0"\nprofile = "beckn-2.0"\n')
    agency = load_agency(tmp_path / cfg.site_id / "agency")
    async with open_runtime(cfg, clock=Clock(speed=20)) as rt:
        http = rt.bindings["http"]
        assert http.bpp.profile.name == "beckn-2.0" and "beckn-2.0" in http.describe()
        buyer = make_identity(agency, "app.test", lat=12.93, lon=77.62, now_s=rt.now_s(), kind="BAP")
        charger_key = rt.bindings["http"].bpp._current_signer()
        record = PublicKeyRecord(charger_key.subscriber_id, charger_key.key_id, charger_key.public_key_bytes, 0,
                                 4_000_000_000)
        receiver = BapReceiver(verifier=Verifier(lookup=StaticKeyLookup([record]), clock=rt.now_s),
                               profile="beckn-2.0", signer=buyer.signer, clock=rt.now_s)
        port = await receiver.start()
        try:
            ctx = m.new_context(action="select", bap_id="app.test", bap_uri=f"http://127.0.0.1:{port}/",
                                transaction_id="6f1c2a8e-2b7e-4a57-9b43-1d0b2f1f6a01",
                                message_id="6f1c2a8e-2b7e-4a57-9b43-1d0b2f1f6a02", timestamp_s=rt.now_s(),
                                bpp_id=cfg.site_id, bpp_uri=http.bpp.bpp_uri)
            v1 = m.select(ctx, provider_id=cfg.site_id, energy_wh=1000)
            v1["message"]["order"]["tags"] = [m.signed_tag(m.TAG_CERTIFICATE, buyer.certificate)]
            doc = codec.request_v2(v1, network_id=http.bpp.profile.network_id)
            body = m.encode(doc)
            now = int(rt.now_s())
            headers = {"Authorization": sign_body(body, buyer.signer, created_s=now, expires_s=now + 60)}
            async with aiohttp.ClientSession() as client:
                async with client.post(f"http://127.0.0.1:{http.port}/select", data=body, headers=headers) as r:
                    ack = await r.json()
            assert r.status == 200 and ack["status"] == "ACK" and ack_errors(ack, 200) == [], ack
            nacl_verify_ack(ack, body, doc["context"]["messageId"], charger_key.public_key_bytes)
            await receiver.wait_for("on_select", transaction_id=doc["context"]["transactionId"], timeout_s=10)
            raw = receiver.raw[-1][1]
            assert v2_errors(raw) == [] and raw["context"]["bppId"] == cfg.site_id
            quote = m.signed_documents(codec.callback_v1(raw)["message"]["order"], m.TAG_QUOTE)[0]
            assert quote["energy_wh"] == 1000 and quote["bap_id"] == "app.test" and receiver.refused == 0
        finally:
            await receiver.close()
