"""The charger's CPO side of OCPI 2.2.1: ``OcpiCpo``, the one object integrators hold.

See the package docstring for how to wire it. The class is thin: each OCPI module is a mixin
in a file of its own (``credentials``, ``locations``, ``tariffs``, ``sessions``, ``cdrs``,
``commands``, ``tokens``, ``hubclientinfo``, ``authorization``), the request pipeline is
``middleware``, the stored ``last_updated`` of Sessions and CDRs is ``freshness`` and the
pushes are ``push``. What stays here is what they share: the settings, the lifecycle, the
partner HTTP client, the task set and the URL layout.

Handlers return ``Reply`` objects or raise ``OcpiError``; one middleware adds the envelope,
the request/correlation ids and turns every refusal into an OCPI status code with a reason.
"""
from __future__ import annotations

import asyncio
import random
import secrets
import time
import uuid
from urllib.parse import urlparse

from aiohttp import web

from agent.aio import cancel_and_wait
from agent.core.errors import AgentError
from protocols.ocpi.authorization import AuthDecision, TokenAuthorization
from protocols.ocpi.cdrs import CdrsModule
from protocols.ocpi.client import OcpiClient
from protocols.ocpi.commands import COMMANDS, CommandsModule
from protocols.ocpi.credentials import CredentialsModule, credentials_object, register_with, rotate_with
from protocols.ocpi.freshness import Freshness
from protocols.ocpi.hubclientinfo import HubClientInfoModule
from protocols.ocpi.locations import LocationsModule
from protocols.ocpi.mapping import Renderer
from protocols.ocpi.middleware import Caller, Reply, RequestHandling
from protocols.ocpi.push import CDR_CATCH_UP_S, PUSH_TOPIC, RESULT_TOPIC, Pushes
from protocols.ocpi.sessions import SessionsModule
from protocols.ocpi.store import OcpiStore
from protocols.ocpi.tariffs import TariffsModule
from protocols.ocpi.tokens import TOKEN_TYPES, WHITELIST_TYPES, TokensModule
from protocols.ocpi.wire import VERSION

__all__ = ["AuthDecision", "CDR_CATCH_UP_S", "COMMANDS", "Caller", "OcpiCpo", "PUSH_TOPIC", "RESULT_TOPIC", "Reply",
           "TOKEN_TYPES", "WHITELIST_TYPES", "credentials_object", "register_with", "rotate_with"]


def _new_uuid() -> str:
    return str(uuid.uuid4())


class OcpiCpo(RequestHandling, CredentialsModule, LocationsModule, TariffsModule, SessionsModule, CdrsModule,
              CommandsModule, TokensModule, HubClientInfoModule, TokenAuthorization, Freshness, Pushes):
    """The CPO side of OCPI 2.2.1 for one charger (see the package docstring)."""

    def __init__(self, *, service, store: OcpiStore, outbox, base_url: str, country_code: str, party_id: str,
                 http_session_factory, clock=None, new_id=None, new_token=None, mount_path: str | None = None,
                 business_name: str | None = None, max_body_bytes: int = 64 * 1024, command_timeout_s: int = 60,
                 authorize_timeout_s: float = 5.0, push_retry_base_s: float = 2.0, push_retry_max_s: float = 600.0,
                 push_poll_s: float = 1.0, session_push_interval_s: float = 60.0, can_unlock: bool = False,
                 rng: random.Random | None = None):
        if len(country_code) != 2 or len(party_id) != 3:
            raise ValueError(f"country_code must have 2 and party_id 3 characters, got {country_code!r}/{party_id!r}")
        self.service = service
        self.store = store
        self.outbox = outbox
        self.base_url = base_url.rstrip("/")
        self.country_code = country_code
        self.party_id = party_id
        self._session_factory = http_session_factory
        self._clock = clock or time.time
        self._new_id = new_id or _new_uuid
        self._new_token = new_token or (lambda: secrets.token_urlsafe(32))
        self.mount_path = (mount_path if mount_path is not None else urlparse(self.base_url).path).rstrip("/")
        self.business_name = business_name
        self.max_body_bytes = max_body_bytes
        self.command_timeout_s = command_timeout_s
        self.authorize_timeout_s = authorize_timeout_s
        self.push_retry_base_s = push_retry_base_s
        self.push_retry_max_s = push_retry_max_s
        self.push_poll_s = push_poll_s
        self.session_push_interval_s = session_push_interval_s
        self.render = Renderer(service=service, country_code=country_code, party_id=party_id, can_unlock=can_unlock)
        self._http = None
        self._tasks: set = set()
        self._pusher = self._make_pusher(rng=rng)
        self._listening = False
        self._evse_pushed: dict = {}
        self._session_pushed: dict = {}
        self._known_parties: set = set()
        self._warned_ids: set = set()
        self._live_refreshed_s = self._clock()
        self.config_updated_s = self._clock()

    # ================================================================== lifecycle
    async def start(self) -> None:
        """Subscribe to charger changes and start delivering queued pushes."""
        if self._pusher.running:
            return
        self.service.add_listener(self._on_event)
        self._listening = True
        self.service.add_token_authority(self)  # cards at the charger: the eMSPs' tokens count too
        for view in self.service.connectors():
            self._evse_pushed[str(view.evse_uid)] = view.status
        self._known_parties = {p.pk for p in self.store.parties()}
        self._catch_up_cdrs()
        self._pusher.start()

    async def close(self) -> None:
        if self._listening:
            self.service.remove_listener(self._on_event)
            self.service.remove_token_authority(self)
            self._listening = False
        tasks = list(self._tasks)
        self._tasks.clear()
        await self._pusher.close()
        await cancel_and_wait(tasks)
        if self._http is not None:
            await self._http.close()
            self._http = None

    def _client(self) -> OcpiClient:
        if self._http is None:
            self._http = self._session_factory()
        return OcpiClient(self._http, new_id=self._new_id, from_party=(self.country_code, self.party_id))

    def _spawn(self, coro, name: str):
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _session(self, session_id: str):
        """The facade's session or None; an unknown id may also surface as the journal's own
        error, which must not become a 500 for a partner's typo."""
        try:
            return self.service.session(session_id)
        except AgentError as exc:
            if "unknown" in getattr(exc, "code", ""):
                return None
            raise

    # ================================================================== app and routes
    def make_app(self) -> web.Application:
        app = web.Application(middlewares=[self._middleware], client_max_size=self.max_body_bytes)
        self.add_routes(app.router)
        return app

    def add_routes(self, router) -> None:
        p = self.mount_path
        v = f"{p}/{VERSION}"
        router.add_get(f"{p}/versions", self._get_versions)
        router.add_get(v, self._get_version_details)
        router.add_get(f"{p}/versions/{VERSION}", self._get_version_details)  # the spec's example layout
        router.add_get(f"{v}/credentials", self._get_credentials)
        router.add_post(f"{v}/credentials", self._post_credentials)
        router.add_put(f"{v}/credentials", self._put_credentials)
        router.add_delete(f"{v}/credentials", self._delete_credentials)
        router.add_get(f"{v}/locations", self._get_locations)
        router.add_get(f"{v}/locations/{{location_id}}", self._get_location)
        router.add_get(f"{v}/locations/{{location_id}}/{{evse_uid}}", self._get_location)
        router.add_get(f"{v}/locations/{{location_id}}/{{evse_uid}}/{{connector_id}}", self._get_location)
        router.add_get(f"{v}/tariffs", self._get_tariffs)
        router.add_get(f"{v}/sessions", self._get_sessions)
        router.add_put(f"{v}/sessions/{{session_id}}/charging_preferences", self._put_charging_preferences)
        router.add_get(f"{v}/cdrs", self._get_cdrs)
        router.add_post(f"{v}/commands/{{command}}", self._post_command)
        router.add_get(f"{v}/tokens/{{country_code}}/{{party_id}}/{{uid}}", self._get_token)
        router.add_put(f"{v}/tokens/{{country_code}}/{{party_id}}/{{uid}}", self._put_token)
        router.add_patch(f"{v}/tokens/{{country_code}}/{{party_id}}/{{uid}}", self._patch_token)
        router.add_get(f"{v}/hubclientinfo/{{country_code}}/{{party_id}}", self._get_client_info)
        router.add_put(f"{v}/hubclientinfo/{{country_code}}/{{party_id}}", self._put_client_info)

