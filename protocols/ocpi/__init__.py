"""OCPI 2.2.1, CPO side, served by the charger itself.

Apps and roaming hubs that speak only OCPI treat the charger as their CPO directly: it serves
versions, credentials (both directions of the registration), locations, tariffs, sessions and
CDRs (sender), commands and tokens (receiver), from the same ``ChargerService`` objects the
network binding uses, and pushes location, session and CDR changes to every registered eMSP
through the journal's durable outbox.

Wiring (the integrator's side)::

    from protocols.ocpi import OcpiCpo, OcpiStore, OcpiSettings
    settings = OcpiSettings.from_site(site)                   # the [ocpi] table, validated
    store = OcpiStore.open(settings.store_path(site))         # registrations, next to the journal
    cpo = OcpiCpo(service=runtime, store=store, outbox=journal, base_url=settings.public_url,
                  country_code=settings.country_code, party_id=settings.party_id,
                  http_session_factory=aiohttp.ClientSession, clock=runtime.now_s, new_id=new_id)
    app = cpo.make_app()          # routes under the path of base_url (e.g. /ocpi/versions)
    await cpo.start()             # listener + the named "ocpi-push" task
    ... serve app on settings.listen with settings.ssl_context() ...
    await cpo.close()             # cancels and awaits its tasks, closes its HTTP session

``OcpiCpo(*, service, store, outbox, base_url, country_code, party_id, http_session_factory,
clock, new_id)`` takes further keyword-only knobs (``mount_path`` when a proxy strips the
prefix, ``max_body_bytes``, ``command_timeout_s``, retry timings). Other public calls:
``create_token_a(label)``, ``await register(versions_url, token_a)`` (we initiate),
``await unregister(party_pk)``, ``await authorize(uid, token_type=, evse_uid=)`` (whitelist
and real-time authorization for a local RFID card) followed by
``remember_authorization(reference, decision)`` before the runtime starts that session with
the same ``reference`` (its Session and CDR then name the eMSP's token), ``await push_once()``.

Visibility: an eMSP sees and receives the sessions and CDRs it authorized and those no eMSP
authorized (the site's own, e.g. free vend), never another eMSP's.

Tests start a served instance with ``protocols.ocpi.testing.start_cpo(service, tmp_path)``.
"""
from protocols.ocpi.cpo import AuthDecision, OcpiCpo
from protocols.ocpi.errors import OcpiError
from protocols.ocpi.settings import OcpiSettings
from protocols.ocpi.store import OcpiStore, Party

__all__ = ["AuthDecision", "OcpiCpo", "OcpiError", "OcpiSettings", "OcpiStore", "Party"]
