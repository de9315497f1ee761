"""Beckn over real HTTP on loopback: endpoints, ACK/NACK statuses, signed callbacks, retries."""
from __future__ import annotations

import asyncio
import json

import aiohttp
from aiohttp import web
from test_beckn_fakes import Buyer, Clock, FakeCharger, charger_signer, record, schema_errors

from protocols.beckn import messages as m
from protocols.beckn.bpp import Bpp, Outgoing
from protocols.http.bap import BapReceiver
from protocols.http.serve import serve
from protocols.http.server import BecknHttpServer
from protocols.signing.beckn import Verifier
from protocols.signing.keys import StaticKeyLookup


class Net:
    async def __aenter__(self):
        self.clock = Clock()
        self.charger_signer = charger_signer()
        self.charger = FakeCharger(clock=self.clock, receipt_signer=self.charger_signer)
        self.receiver = BapReceiver(verifier=Verifier(lookup=StaticKeyLookup([record(self.charger_signer)]),
                                                      clock=self.clock))
        bap_port = await self.receiver.start()
        self.buyer = Buyer(clock=self.clock, bap_uri=f"http://127.0.0.1:{bap_port}/")
        ids = iter(f"00000000-0000-4000-9000-{i:012d}" for i in range(1, 1000))
        self.bpp = Bpp(service=self.charger, signer=self.charger_signer, bpp_uri="http://127.0.0.1/",
                       verifier=Verifier(lookup=StaticKeyLookup([record(self.buyer.signer)]), clock=self.clock),
                       clock=self.clock, new_id=lambda: next(ids))
        self.server = BecknHttpServer(bpp=self.bpp, retry_delay_s=0.01)
        port = await self.server.start()
        self.base = f"http://127.0.0.1:{port}"
        self.http = aiohttp.ClientSession()
        await self.bpp.start()
        return self

    async def __aexit__(self, *exc):
        await self.http.close()
        await self.bpp.close()
        await self.server.close()
        await self.receiver.close()

    async def post(self, doc, *, headers=None, body=None):
        b, h = self.buyer.sign(doc)
        async with self.http.post(f"{self.base}/{doc['context']['action']}", data=body if body is not None else b,
                                  headers=headers if headers is not None else {**h, "Content-Type": "application/json"}) as r:
            return r.status, dict(r.headers), await r.json()


async def test_full_contract_over_http_with_signed_callbacks():
    async with Net() as n:
        b = n.buyer
        status, _, ack = await n.post(m.search(b.ctx("search", to_bpp=False), gps=(12.94, 77.62), radius_m=5000))
        assert (status, ack) == (200, m.ack())
        on_search = await n.receiver.wait_for("on_search", transaction_id=b.transaction_id)
        assert on_search["message"]["catalog"]["providers"][0]["id"] == "in.test.charger"
        for action, doc in [("select", m.select(b.ctx("select"), provider_id="in.test.charger", energy_wh=2000)),
                            ("init", m.init(b.ctx("init"), provider_id="in.test.charger", energy_wh=2000)),
                            ("confirm", m.confirm(b.ctx("confirm"), provider_id="in.test.charger", energy_wh=2000,
                                                  amount_paise=4248, payment_ref="UPI-9"))]:
            status, _, ack = await n.post(doc)
            assert status == 200, ack
            got = await n.receiver.wait_for("on_" + action, transaction_id=b.transaction_id)
            assert got["context"]["message_id"] == doc["context"]["message_id"]
            assert schema_errors(got) == []
        order_id = got["message"]["order"]["id"]
        mark = len(n.receiver.received)
        await n.post(m.update(b.ctx("update"), order_id=order_id, command=m.START_CHARGING))
        await n.receiver.wait_for("on_update", transaction_id=b.transaction_id, after=mark)
        sid = n.bpp.transactions()[b.transaction_id]["session_id"]
        n.charger.charge(sid, 2000)
        mark = len(n.receiver.received)
        await n.post(m.update(b.ctx("update"), order_id=order_id, command=m.END_CHARGING))

        final = await asyncio.wait_for(_complete(n, mark), 5)
        assert m.signed_documents(final["message"]["order"], m.TAG_RECEIPT)[0]["energy_wh"] == 2000
        assert all(sender == "in.test.charger" for _, _, sender in n.receiver.received)
        assert n.receiver.refused == 0


async def _complete(n, mark):
    while True:
        for act, doc, _ in n.receiver.received[mark:]:
            if act == "on_status" and doc["message"]["order"].get("status") == "COMPLETE":
                return doc
        n.receiver._changed.clear()
        await n.receiver._changed.wait()


async def test_signature_failure_is_401_with_www_authenticate():
    async with Net() as n:
        doc = m.select(n.buyer.ctx("select"), provider_id="in.test.charger", energy_wh=2000)
        status, headers, ack = await n.post(doc, headers={"Content-Type": "application/json"})
        assert status == 401 and ack["message"]["ack"]["status"] == "NACK"
        assert headers["WWW-Authenticate"] == 'Signature realm="in.test.charger",headers="(created) (expires) digest"'
        assert n.receiver.received == [] and n.bpp.transactions() == {}


async def test_bad_request_and_oversized_and_unknown_path():
    async with Net() as n:
        doc = m.select(n.buyer.ctx("select"), provider_id="in.test.charger", energy_wh=2000)
        doc["message"]["order"]["items"] = "energy"
        status, _, ack = await n.post(doc)
        assert status == 400 and ack["error"]["paths"] == "message.order.items"
        status, _, ack = await n.post(doc, body=b"{" + b" " * 80_000 + b"}")
        assert status == 413 and ack["error"]["code"] == "30000"
        async with n.http.post(f"{n.base}/dance", data=b"{}") as r:
            assert r.status in (404, 405)


async def test_callback_delivery_retries_then_gives_up():
    attempts = []

    async def flaky(request):
        attempts.append(request.headers.get("Authorization"))
        if len(attempts) < 3:
            return web.Response(status=503)
        return web.json_response(m.ack())

    app = web.Application()
    app.router.add_post("/on_status", flaky)
    async def broken(request):
        attempts.append(1)
        return web.Response(status=500)

    app.router.add_post("/on_track", broken)
    runner, port = await serve(app, "127.0.0.1", 0)
    try:
        async with Net() as n:
            out = Outgoing("on_status", b"{}", {"Authorization": "Signature x"}, "bap", f"http://127.0.0.1:{port}")
            assert await n.server.deliver(out) is True and len(attempts) == 3
            attempts.clear()
            out = Outgoing("on_track", b"{}", {}, "bap", f"http://127.0.0.1:{port}/")
            assert await n.server.deliver(out) is False and len(attempts) == 3  # bounded
            assert n.server.counters == {"delivered": 1, "failed": 1}
    finally:
        await runner.cleanup()


async def test_receiver_refuses_unsigned_callbacks():
    async with Net() as n:
        port = int(n.buyer.bap_uri.rsplit(":", 1)[1].strip("/"))
        async with n.http.post(f"http://127.0.0.1:{port}/on_status", data=json.dumps({"context": {}})) as r:
            assert r.status == 401 and "WWW-Authenticate" in r.headers
        assert n.receiver.refused == 1 and n.receiver.received == []


async def test_site_config_http_table_serves_beckn_from_the_runtime(tmp_path):
    """``[http]`` in urja.toml: the runtime starts the endpoints; a search gets a signed ACK or NACK."""
    import aiohttp

    from agent.bootstrap import open_runtime
    from agent.clock import Clock
    from tests.support import sim_config

    cfg = sim_config(tmp_path, auth="network", extra_toml='\n[http]\nlisten = "127.0.0.1:0"\n')
    async with open_runtime(cfg, clock=Clock(speed=5)) as rt:
        assert rt.bindings['http'] is not None and rt.bindings['http'].port > 0
        async with aiohttp.ClientSession() as http:
            async with http.post(f"http://127.0.0.1:{rt.bindings['http'].port}/search", data=b"{}") as r:
                # Unsigned: refused with the reason, as BECKN-006 prescribes.
                assert r.status == 401
                assert "WWW-Authenticate" in r.headers
    assert rt.bindings['http'].server._runner is None


async def test_unsolicited_messages_wait_in_the_journal_until_the_buyer_answers(tmp_path):
    """The receipt must reach a buyer whose server was down, even across a charger restart."""
    from agent.journal import Journal
    from tests.support import wait_until

    seen = []

    async def buyer_inbox(request):
        seen.append(request.headers.get("Authorization"))
        return web.Response(status=503) if len(seen) == 1 else web.json_response(m.ack())

    app = web.Application()
    app.router.add_post("/on_status", buyer_inbox)
    runner, port = await serve(app, "127.0.0.1", 0)
    body = json.dumps(m.ack()).encode()
    journal = None
    try:
        async with Net() as n:
            clock = n.clock  # the provider signs by it, the journal schedules by it
            journal = Journal.open(tmp_path / "journal.db", clock=clock)
            n.server.journal = journal  # as HttpBinding.for_runtime wires it
            n.server.clock = clock
            n.bpp.send = n.server._queue
            await n.bpp.send(Outgoing("on_status", body, {}, "bap", f"http://127.0.0.1:{port}"))
            assert journal.pending_count() == 1
        # the charger restarts before the buyer is back; its new server finds the message
        server = BecknHttpServer(bpp=n.bpp, retry_delay_s=0.01, journal=journal, clock=clock, outbox_poll_s=0.01)
        await server.start()
        try:
            await wait_until(lambda: len(seen) == 1, what="the first attempt")
            clock.t_s += 1  # past the retry delay
            await wait_until(lambda: journal.pending_count() == 0, what="delivery after the retry")
            assert len(seen) == 2 and seen[0] != seen[1]  # signed afresh for the second attempt
            assert server.counters["delivered"] == 1
        finally:
            await server.close()
    finally:
        if journal is not None:
            journal.close()
        await runner.cleanup()


async def test_a_buyer_known_only_to_the_networks_registry_is_answered(tmp_path):
    """``registry_url`` in ``[http]``: a buyer that carries no agency certificate is looked up in
    the registry (``/lookup``), and its signed search gets an ACK and a signed on_search."""
    import base64

    from agent.bootstrap import open_runtime
    from agent.clock import Clock
    from tests.support import sim_config, wait_until

    buyer = Buyer(clock=lambda: 0)  # its key is in the registry only
    lookups = []

    async def lookup(request):
        asked = await request.json()
        lookups.append(asked)
        record = {"subscriber_id": buyer.signer.subscriber_id, "key_id": buyer.signer.key_id, "type": "BAP",
                  "domain": "dent:ev-charging:0.1.0", "status": "SUBSCRIBED",
                  "signing_public_key": base64.b64encode(buyer.signer.public_key_bytes).decode(),
                  "encr_public_key": "MCowBQYDK2VuAyEA" + "A" * 43 + "=",
                  "valid_from": "2020-01-01T00:00:00Z", "valid_until": "2099-01-01T00:00:00Z"}
        return web.json_response([record] if asked.get("subscriber_id") == record["subscriber_id"] else [])

    callbacks = []

    async def inbox(request):
        callbacks.append(await request.read())
        return web.json_response(m.ack())

    app = web.Application()
    app.router.add_post("/lookup", lookup)
    app.router.add_post("/on_search", inbox)
    runner, port = await serve(app, "127.0.0.1", 0)
    try:
        cfg = sim_config(tmp_path, auth="network", extra_toml=f'\n[http]\nlisten = "127.0.0.1:0"\n'
                                                              f'registry_url = "http://127.0.0.1:{port}"\n')
        async with open_runtime(cfg, clock=Clock(speed=5)) as rt:
            buyer.clock = rt.now_s
            buyer.bap_uri = f"http://127.0.0.1:{port}/"
            doc = m.search(buyer.ctx("search", to_bpp=False), gps=(cfg.place.lat, cfg.place.lon), radius_m=2000)
            body, headers = buyer.sign(doc)
            async with aiohttp.ClientSession() as http:
                async with http.post(f"http://127.0.0.1:{rt.bindings['http'].port}/search", data=body,
                                     headers={**headers, "Content-Type": "application/json"}) as r:
                    assert r.status == 200, await r.text()
                    assert (await r.json())["message"]["ack"]["status"] == "ACK"
            await wait_until(lambda: callbacks, what="the signed on_search")
            assert lookups and lookups[0]["subscriber_id"] == buyer.signer.subscriber_id
    finally:
        await runner.cleanup()
