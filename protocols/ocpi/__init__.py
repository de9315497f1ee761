"""OCPI 2.2.1, CPO side, served by the charger itself.

Apps and roaming hubs that speak only OCPI treat the charger as their CPO directly: it serves
versions, credentials (both directions of the registration), locations, tariffs, sessions and
CDRs (sender), commands and tokens (receiver), from the same ``ChargerService`` objects the
network binding uses, and pushes location changes to every registered eMSP and session and CDR
changes to the eMSP they belong to, through the journal's durable outbox.

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
prefix, ``max_body_bytes``, ``command_timeout_s``, retry timings and ``rng`` for their jitter,
``can_unlock`` when the charger can release a cable lock, so EVSEs advertise UNLOCK_CAPABLE;
False by default).
Other public calls: ``create_token_a(label)``, ``await register(versions_url, token_a)`` (we initiate),
``await unregister(party_pk)``, ``await authorize(uid, token_type=, evse_uid=)`` (whitelist
and real-time authorization for a local RFID card) followed by
``remember_authorization(reference, decision)`` before the runtime starts that session with
the same ``reference`` (its Session and CDR then name the eMSP's token), ``await push_once()``.

Visibility: an eMSP sees, receives and may stop only the sessions (and CDRs) tied to it: those
its START_SESSION started and those authorized with one of its tokens. Sessions no eMSP started
(free vend, the site's allow-list cards, network customers) and other eMSPs' sessions are never
shown, pushed or stoppable (a STOP_SESSION for one is answered as for an unknown session):
roaming partners are often competitors, and a charger's sessions are its utilisation data.
Locations, EVSE status and tariffs are shown to every registered party; a status does not say
whose session it is.

Commands: the token of START_SESSION and RESERVE_NOW has been authorized by the eMSP sending
the command, so it is not sent back to that eMSP for authorization; it must be one of the
caller's own tokens (its country_code and party_id) and not marked invalid, and the command's
``authorization_reference`` is the one the Session and CDR carry.

Hubs: a registration with role HUB speaks for the parties behind it; ``OCPI-from-*`` names the
party a request acts for, and everything above holds per party behind the hub. Pushes name
their addressee in ``OCPI-to-*`` (see ``middleware`` and ``push``); what the hub reports in
hubclientinfo is heeded. Registration: party ids held by a registration are renewed only by
that party with its current credentials (PUT); a POST with a token A naming them is refused,
and so are credentials pointing at this charger itself.

Request ids: ``X-Request-ID`` and ``X-Correlation-ID`` are echoed when they are UUIDs, as 2.2.1
gives them. A value that is not a UUID is refused (HTTP 400, 2001, the response carrying fresh
UUIDs), since a hub correlates by them and an echoed odd value breaks its logs; a missing one
is answered with a fresh UUID and logged once per caller, since older peers omit them.

Tests start a served instance with ``tests.ocpi_support.start_cpo(service, tmp_path)``.
"""
from protocols.ocpi.cpo import AuthDecision, OcpiCpo
from protocols.ocpi.errors import OcpiError
from protocols.ocpi.settings import OcpiSettings
from protocols.ocpi.store import OcpiStore, Party

__all__ = ["AuthDecision", "OcpiCpo", "OcpiError", "OcpiSettings", "OcpiStore", "Party"]
