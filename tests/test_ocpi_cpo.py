"""OCPI 2.2.1 CPO side over real HTTP: handshake both ways, credentials, locations, tariffs, routing.

The harness (the CPO beside a small eMSP, schema checks) is ``tests/ocpi_harness.py``; sessions,
commands, tokens and pushes are in ``test_ocpi_cpo_sessions.py``.
"""
from __future__ import annotations

# The harness's fixtures (h, schemas) are imported by name, which pyflakes reads as redefinition.
# ruff: noqa: F811
import pytest

from tests.ocpi_harness import (  # noqa: F401 - h and schemas are fixtures, pytestmark applies here
    h,
    pytestmark,
    schemas,
)


# ---------------------------------------------------------------------------- versions and credentials
async def test_versions_and_details_list_only_served_modules(h):
    request_id = "5a0c6c1e-8f4b-4c43-9d0e-2f9a6a1b7c01"
    status, body, headers = await h.call("GET", "/versions", token=h.token_a, headers={"X-Request-ID": request_id})
    assert status == 200 and headers["X-Request-ID"] == request_id
    for v in body["data"]:
        h.schemas.check(v, "versions", "Version")
    assert body["data"] == [{"version": "2.2.1", "url": f"{h.base}/2.2.1"}]
    status, body, _ = await h.call("GET", "/2.2.1", token=h.token_a)
    h.schemas.check(body["data"], "versions", "VersionDetails")
    served = {(e["identifier"], e["role"]) for e in body["data"]["endpoints"]}
    assert ("locations", "SENDER") in served and ("commands", "RECEIVER") in served
    assert ("hubclientinfo", "RECEIVER") in served
    assert not any(i == "chargingprofiles" for i, _ in served)


async def test_registration_as_receiver_swaps_tokens_and_retires_token_a(h):
    await h.register()
    assert h.token_c and h.token_c != h.token_a
    status, body, _ = await h.call("GET", "/2.2.1/locations", token=h.token_a)
    assert status == 401
    status, body, _ = await h.call("GET", "/versions", token=h.token_a)
    assert status == 401, "token A must stop working after registration"
    status, body, _ = await h.call("GET", "/2.2.1/credentials")
    assert status == 200 and body["data"]["token"] == h.token_c
    assert body["data"]["roles"][0]["party_id"] == "URJ"
    # POST again while registered: 405, and nothing changes.
    status, body, _ = await h.call("POST", "/2.2.1/credentials", body=h.emsp.credentials())
    assert status == 405
    status, _, _ = await h.call("GET", "/2.2.1/locations")
    assert status == 200


async def test_plain_token_accepted_unknown_and_missing_rejected(h):
    await h.register()
    status, _, _ = await h.call("GET", "/2.2.1/locations", plain=True)
    assert status == 200
    status, body, _ = await h.call("GET", "/2.2.1/locations", token="nope")
    assert status == 401
    async with h.http.get(h.base + "/2.2.1/locations") as resp:
        assert resp.status == 401


async def test_put_rotates_and_delete_unregisters(h):
    await h.register()
    old = h.token_c
    status, body, _ = await h.call("PUT", "/2.2.1/credentials", body=h.emsp.credentials())
    assert status == 200 and body["data"]["token"] != old
    status, _, _ = await h.call("GET", "/2.2.1/locations", token=old)
    assert status == 401
    h.token_c = body["data"]["token"]
    status, body, _ = await h.call("DELETE", "/2.2.1/credentials")
    assert status == 200 and body["status_code"] == 1000
    status, _, _ = await h.call("GET", "/2.2.1/locations")
    assert status == 401


async def test_put_and_delete_with_token_a_are_405(h):
    status, _, _ = await h.call("PUT", "/2.2.1/credentials", token=h.token_a, body=h.emsp.credentials())
    assert status == 405
    status, _, _ = await h.call("DELETE", "/2.2.1/credentials", token=h.token_a)
    assert status == 405


@pytest.mark.parametrize("problem, code", [("version", 3002), ("endpoints", 3003), ("unreachable", 3001)])
async def test_registration_fails_with_the_code_that_names_the_problem(h, problem, code):
    creds = h.emsp.credentials()
    if problem == "version":
        h.emsp.version = "2.1.1"
    elif problem == "endpoints":
        h.emsp.with_credentials = False
    else:
        creds["url"] = "http://127.0.0.1:9/emsp/versions"
    status, body, _ = await h.call("POST", "/2.2.1/credentials", token=h.token_a, body=creds)
    assert status == 400 and body["status_code"] == code, body
    # Nothing registered; token A still works for another attempt.
    status, _, _ = await h.call("GET", "/versions", token=h.token_a)
    assert status == 200


async def test_bad_credentials_body_is_2001(h):
    status, body, _ = await h.call("POST", "/2.2.1/credentials", token=h.token_a, raw=b"{not json")
    assert status == 400 and body["status_code"] == 2001
    status, body, _ = await h.call("POST", "/2.2.1/credentials", token=h.token_a, body={"token": "x", "roles": []})
    assert status == 400 and body["status_code"] == 2001 and "url" in body["status_message"]


async def test_registration_as_initiator(h, tmp_path):
    party = await h.cpo.register(f"{h.emsp.url}/versions", h.emsp.token_a)
    assert party.state == "registered" and party.outgoing_token == h.emsp.token_b
    # The eMSP now calls us with the token we offered (B) and is known by its roles.
    status, body, _ = await h.call("GET", "/2.2.1/locations", token=h.emsp.cpo_token)
    assert status == 200 and body["data"][0]["id"] == "in.test.site-1"
    # and receives the location push.
    await h.emsp.wait_for(lambda r: r[0] == "PUT" and r[1].startswith("locations/IN/URJ/"), "a location PUT")


async def test_registrations_survive_a_restart(h, tmp_path):
    await h.register()
    from protocols.ocpi.store import OcpiStore
    from protocols.ocpi.wire import token_hash

    store = OcpiStore.open(tmp_path / "ocpi.sqlite")
    try:
        party = store.party_by_hash(token_hash(h.token_c))
        assert party is not None and party.outgoing_token == h.emsp.token_b
        assert party.endpoint("sessions", "RECEIVER").endswith("/2.2.1/sessions")
    finally:
        store.close()
    assert (tmp_path / "ocpi.sqlite").stat().st_mode & 0o777 == 0o600


# ---------------------------------------------------------------------------- locations and tariffs
async def test_location_tree_validates_and_last_updated_bubbles_up(h):
    await h.register()
    status, body, headers = await h.call("GET", "/2.2.1/locations")
    assert headers["X-Total-Count"] == "1" and headers["X-Limit"] == "50"
    loc = body["data"][0]
    h.schemas.check(loc, "locations", "Location")
    connector = loc["evses"][0]["connectors"][0]
    assert connector["standard"] == "DOMESTIC_M" and connector["power_type"] == "AC_1_PHASE"
    h.clock.now += 500
    h.charger.set_status("OUTOFORDER")
    status, body, _ = await h.call("GET", f"/2.2.1/locations/{loc['id']}")
    h.schemas.check(body["data"], "locations", "Location")
    assert body["data"]["evses"][0]["status"] == "OUTOFORDER"
    assert body["data"]["last_updated"] == body["data"]["evses"][0]["last_updated"] == \
        body["data"]["evses"][0]["connectors"][0]["last_updated"] > loc["last_updated"]
    status, body, _ = await h.call("GET", f"/2.2.1/locations/{loc['id']}/EVSE-1")
    h.schemas.check(body["data"], "locations", "EVSE")
    status, body, _ = await h.call("GET", f"/2.2.1/locations/{loc['id']}/EVSE-1/1")
    h.schemas.check(body["data"], "locations", "Connector")
    for path in ("/2.2.1/locations/nowhere", f"/2.2.1/locations/{loc['id']}/EVSE-9",
                 f"/2.2.1/locations/{loc['id']}/EVSE-1/7"):
        status, body, _ = await h.call("GET", path)
        assert status == 404 and body["status_code"] == 2003


async def test_tariffs_carry_our_party(h, schemas):
    await h.register()
    _, body, _ = await h.call("GET", "/2.2.1/tariffs")
    schemas.check(body["data"][0], "tariffs", "Tariff")
    assert body["data"][0]["country_code"] == "IN" and body["data"][0]["party_id"] == "URJ"


async def test_routing_headers_and_bad_query(h):
    await h.register()
    status, body, _ = await h.call("GET", "/2.2.1/locations", headers={
        "OCPI-from-country-code": "IN", "OCPI-from-party-id": "EMS", "OCPI-to-country-code": "IN",
        "OCPI-to-party-id": "URJ"})
    assert status == 200
    status, body, _ = await h.call("GET", "/2.2.1/locations", headers={
        "OCPI-from-country-code": "NL", "OCPI-from-party-id": "XYZ"})
    assert status == 400 and body["status_code"] == 2001 and "OCPI-from" in body["status_message"]
    status, body, _ = await h.call("GET", "/2.2.1/locations", headers={
        "OCPI-to-country-code": "IN", "OCPI-to-party-id": "ABC"})
    assert status == 400 and body["status_code"] == 2001
    status, body, _ = await h.call("GET", "/2.2.1/sessions", params={"limit": "-1"})
    assert status == 400 and body["status_code"] == 2001 and "limit" in body["status_message"]
    status, body, _ = await h.call("GET", "/2.2.1/sessions", params={"date_from": "yesterday"})
    assert status == 400 and "date_from" in body["status_message"]
    status, body, _ = await h.call("GET", "/2.2.1/nothing")
    assert status == 404
