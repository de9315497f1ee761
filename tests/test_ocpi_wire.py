"""Transport details: time format, Authorization variants, paging parameters, settings, OpenAPI."""
from __future__ import annotations

import base64
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from drivers.configfile import ConfigError
from protocols.ocpi.errors import OcpiError
from protocols.ocpi.settings import OcpiSettings
from protocols.ocpi.wire import format_time, page_params, parse_time, token_candidates

SPECS = Path(__file__).resolve().parents[1].parent / "shared" / "specs" / "ocpi-2.2.1"


@given(st.integers(min_value=0, max_value=4_000_000_000_000))
def test_time_round_trips_to_the_millisecond(epoch_ms):
    text = format_time(epoch_ms / 1000)
    assert len(text) <= 25 and text.endswith("Z")
    assert round(parse_time(text, "t") * 1000) == epoch_ms


def test_time_zones_and_garbage():
    assert parse_time("2026-01-01T05:30:00+05:30", "t") == parse_time("2026-01-01T00:00:00Z", "t")
    assert parse_time("2026-01-01T00:00:00", "t") == parse_time("2026-01-01T00:00:00Z", "t")
    for bad in ("2026-13-01T00:00:00Z", "yesterday", 12, "2026-01-01 00:00:00"):
        with pytest.raises(OcpiError) as info:
            parse_time(bad, "date_from")
        assert info.value.status_code == 2001 and "date_from" in info.value.message


def test_authorization_header_variants():
    encoded = base64.b64encode(b"abc-123").decode()
    assert token_candidates(f"Token {encoded}")[0] == "abc-123"
    assert "abc-123" in token_candidates("Token abc-123")
    assert token_candidates("Bearer abc") == [] and token_candidates(None) == [] and token_candidates("Token ") == []


def test_page_params_bounds():
    assert page_params({}) == (0, 50, None, None)
    assert page_params({"limit": "1000", "offset": "5"})[:2] == (5, 100)
    with pytest.raises(OcpiError):
        page_params({"offset": "1.5"})


def test_settings_validation_names_the_key(tmp_path):
    s = OcpiSettings.from_table({"listen": "0.0.0.0:8443", "public_url": "https://c.example/ocpi/",
                                 "country_code": "IN", "party_id": "URJ"}, tmp_path / "urja.toml")
    assert s.public_url == "https://c.example/ocpi" and s.listen_port == 8443 and s.ssl_context() is None
    for table, key in (({"party_id": "urja"}, "party_id"), ({"listen": "8443"}, "listen"),
                       ({"tls_cert": "c.pem"}, "tls_key"), ({"public_url": "ftp://x"}, "public_url"),
                       ({"colour": "red"}, "colour")):
        with pytest.raises(ConfigError) as info:
            OcpiSettings.from_table(table, tmp_path / "urja.toml")
        assert key in str(info.value)


@pytest.mark.skipif(not SPECS.is_dir(), reason=f"OCPI 2.2.1 specs not found at {SPECS}")
def test_openapi_describes_exactly_the_served_routes():
    import json

    from aiohttp import web

    from protocols.ocpi.cpo import OcpiCpo
    from protocols.ocpi.openapi import build_openapi

    doc = build_openapi(SPECS, "http://127.0.0.1/ocpi")
    assert "$ref" not in json.dumps(doc)
    cpo = OcpiCpo.__new__(OcpiCpo)
    cpo.mount_path = "/ocpi"
    app = web.Application()
    cpo.add_routes(app.router)
    served = set()
    for resource in app.router.resources():
        info = resource.get_info()
        path = info.get("path") or info.get("formatter")
        for route in resource:
            served.add((route.method.lower(), path.removeprefix("/ocpi")))
    import re
    described = {(m, re.sub(r"\{[^}]+\}", "{}", p)) for p, ops in doc["paths"].items() for m in ops if m != "parameters"}
    served_norm = {(m, re.sub(r"\{[^}]+\}", "{}", p).replace("/commands/{}", "/commands/X")) for m, p in served
                   if m != "head"}
    described_norm = {(m, re.sub(r"/commands/[A-Z_]+$", "/commands/X", p)) for m, p in described}
    assert described_norm <= served_norm
    assert served_norm - described_norm == {("get", "/versions/2.2.1")}


@pytest.mark.skipif(not SPECS.is_dir(), reason=f"OCPI 2.2.1 specs not found at {SPECS}")
async def test_served_over_tls_from_the_configured_cert_and_key(tmp_path):
    import datetime
    import ssl

    import aiohttp
    from aiohttp import web
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    from protocols.ocpi.cpo import OcpiCpo
    from protocols.ocpi.store import OcpiStore
    from tests.ocpi_harness import Clock, FakeCharger

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = datetime.datetime.now(datetime.timezone.utc)
    import ipaddress
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(1).not_valid_before(now - datetime.timedelta(days=1))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                           critical=False)
            .sign(key, hashes.SHA256()))
    (tmp_path / "cert.pem").write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    (tmp_path / "key.pem").write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                                         serialization.PrivateFormat.PKCS8,
                                                         serialization.NoEncryption()))
    settings = OcpiSettings.from_table({"listen": "127.0.0.1:0", "tls_cert": "cert.pem", "tls_key": "key.pem"},
                                       tmp_path / "urja.toml")
    assert settings.public_url.startswith("https://")
    store = OcpiStore.open(tmp_path / "ocpi.sqlite")
    cpo = OcpiCpo(service=FakeCharger(Clock()), store=store, outbox=None, base_url="https://127.0.0.1/ocpi",
                  country_code="IN", party_id="URJ", http_session_factory=aiohttp.ClientSession)
    token = cpo.create_token_a("tls")
    runner = web.AppRunner(cpo.make_app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, settings.listen_host, settings.listen_port, ssl_context=settings.ssl_context())
    await site.start()
    port = site._server.sockets[0].getsockname()[1]
    client_ctx = ssl.create_default_context(cafile=str(tmp_path / "cert.pem"))
    try:
        async with aiohttp.ClientSession() as http:
            async with http.get(f"https://127.0.0.1:{port}/ocpi/versions", ssl=client_ctx,
                                headers={"Authorization": "Token " + base64.b64encode(token.encode()).decode()}) as r:
                assert r.status == 200 and (await r.json())["data"][0]["version"] == "2.2.1"
    finally:
        await runner.cleanup()
        await cpo.close()
        store.close()



@pytest.mark.parametrize("body", [b"[" * 5000, b"<html>502 Bad Gateway</html>"])
async def test_partner_answer_that_is_not_json_is_a_partner_error(body):
    """Such answers once escaped ``OcpiClient.call`` as RecursionError (stopping every push round)
    or as KeyError (the push was then dropped as a malformed outbox entry, never retried)."""
    import aiohttp
    from aiohttp import web

    from protocols.http.serve import serve
    from protocols.ocpi.client import OcpiClient
    from protocols.ocpi.errors import UNABLE_TO_USE_CLIENT_API, PartnerError

    async def answer(request):
        return web.Response(body=body, status=502, content_type="text/html")

    app = web.Application()
    app.router.add_put("/x", answer)
    runner, port = await serve(app, "127.0.0.1", 0)
    try:
        async with aiohttp.ClientSession() as session:
            with pytest.raises(PartnerError) as info:
                await OcpiClient(session).call("PUT", f"http://127.0.0.1:{port}/x", token="t", body={})
        assert info.value.status_code == UNABLE_TO_USE_CLIENT_API and "not JSON" in info.value.message
    finally:
        await runner.cleanup()
