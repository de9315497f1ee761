"""End to end: a buyer makes a contract over real HTTP with the real runtime on the simulated board."""
from __future__ import annotations

import pytest
from test_beckn_fakes import Buyer, record

from agent.bootstrap import open_runtime
from agent.clock import Clock
from protocols.beckn import messages as m
from protocols.beckn.bpp import Bpp
from protocols.http.bap import BapReceiver
from protocols.http.server import BecknHttpServer
from protocols.signing.agency import read_agency_public_key
from protocols.signing.beckn import Verifier
from protocols.signing.keys import StaticKeyLookup
from protocols.signing.receipt import verify_receipt
from tests.support import sim_config, wait_until

pytestmark = pytest.mark.asyncio


async def test_prepaid_contract_charges_to_the_paid_energy_and_returns_a_verifiable_receipt(tmp_path):
    cfg = sim_config(tmp_path, auth="network")
    async with open_runtime(cfg, clock=Clock(speed=20)) as rt:
        clock = rt.now_s
        keyring = rt.identity.keyring
        charger_lookup = StaticKeyLookup(keyring.public_records())
        receiver = BapReceiver(verifier=Verifier(lookup=charger_lookup, clock=clock))
        bap_port = await receiver.start()
        buyer = Buyer(clock=clock, bpp_id=cfg.site_id, bap_uri=f"http://127.0.0.1:{bap_port}")
        bpp = Bpp(service=rt, signer=keyring, verifier=Verifier(lookup=StaticKeyLookup([record(buyer.signer)]),
                                                                  clock=clock),
                  bpp_uri="http://127.0.0.1/", certificate=rt.identity.certificate)
        server = BecknHttpServer(bpp=bpp, retry_delay_s=0.05)
        port = await server.start()
        await bpp.start()
        try:
            import aiohttp
            async with aiohttp.ClientSession() as http:
                async def post(doc):
                    body, headers = buyer.sign(doc)
                    async with http.post(f"http://127.0.0.1:{port}/{doc['context']['action']}", data=body,
                                         headers=headers) as r:
                        assert r.status == 200, await r.text()
                    return await receiver.wait_for("on_" + doc["context"]["action"],
                                                   transaction_id=buyer.transaction_id,
                                                   after=len(receiver.received))

                sid = cfg.site_id
                await post(m.select(buyer.ctx("select"), provider_id=sid, energy_wh=150))
                on_init = await post(m.init(buyer.ctx("init"), provider_id=sid, energy_wh=150))
                amount = m.parse_money(on_init["message"]["order"]["payments"][0]["params"]["amount"], "amount")
                assert amount == (150 * 1800 * 118 + 50_000) // 100_000
                on_confirm = await post(m.confirm(buyer.ctx("confirm"), provider_id=sid, energy_wh=150,
                                                  amount_paise=amount, payment_ref="UPI-77"))
                order_id = on_confirm["message"]["order"]["id"]
                assert rt.connectors()[0].status == "RESERVED"
                car = rt.board.sim.car
                car.plug_in()
                car.request_power()
                await post(m.update(buyer.ctx("update"), order_id=order_id, command=m.START_CHARGING))
                await wait_until(lambda: rt.board.relay.closed, what="relay closed")
                await wait_until(lambda: rt.core.stop_reason == "limit_energy", timeout_s=30, what="energy limit")
                car.unplug()

                def final():
                    for act, doc, _ in receiver.received:
                        if act == "on_status" and doc["message"]["order"].get("status") == "COMPLETE":
                            return doc
                    return None

                await wait_until(lambda: final() is not None, timeout_s=15, what="receipt over HTTP")
        finally:
            await bpp.close()
            await server.close()
            await receiver.close()
    receipt = m.signed_documents(final()["message"]["order"], m.TAG_RECEIPT)[0]
    check = verify_receipt(receipt, agency_public_key=read_agency_public_key(cfg.agency_key))
    assert abs(check.energy_wh - 150) <= 5
    assert receipt["order_id"] == order_id and receipt["paid_paise"] == amount
    assert check.refund_due_paise == amount - check.total_paise
    assert receipt["acceptance_digest"].startswith("BLAKE-512=")
    assert receiver.refused == 0
