"""Pushes to eMSPs: charger changes become durable outbox entries, delivered by the push task.

Locations and EVSE status go to every registered party that takes them; a Session or CDR goes
only to the eMSP the session belongs to (``SessionsModule._visible_to``), checked again at
delivery. Live objects are rendered afresh when sent, so a late or retried push never
overwrites newer state with older.

Through a hub (OCPI 2.2.1 message routing): a Session, CDR or command result names the eMSP
it belongs to in ``OCPI-to-*`` (the issuer of the session's token, or the party that sent the
command); Location pushes are broadcasts, addressed to the hub itself. What the hub reported
of that eMSP (hubclientinfo) is heeded at delivery: SUSPENDED drops the push, OFFLINE keeps
it queued for later.
"""
from __future__ import annotations

import json
import logging

from protocols.ocpi.errors import PartnerError
from protocols.ocpi.sessions import owner_ids
from protocols.ocpi.store import GONE, UNREACHABLE, Party
from protocols.outbox import OutboxPump, Outcome

log = logging.getLogger("urja.ocpi")
CDR_CATCH_UP_S = 2 * 86400  # at start, CDRs of sessions ended this recently are queued if missing
PUSH_TOPIC = "ocpi/push"
RESULT_TOPIC = "ocpi/command-result"
PUSH_PREFIX = "ocpi/"  # this binding's topics in the journal's outbox
PUSH_BATCH = 200


class Pushes:
    """The charger listener, the queuing of pushes and their delivery for ``OcpiCpo``."""

    def _make_pusher(self, *, rng) -> OutboxPump:
        """The named "ocpi-push" task: it takes due pushes and results from the outbox."""
        return OutboxPump(name="ocpi-push", outbox=self.outbox, topic_prefix=PUSH_PREFIX, deliver=self._deliver,
                          clock=self._clock, rng=rng, batch=PUSH_BATCH, poll_s=self.push_poll_s,
                          retry_initial_s=self.push_retry_base_s, retry_max_s=self.push_retry_max_s,
                          before_round=self._before_push_round, logger=log)

    def _catch_up_cdrs(self) -> None:
        """Queue the CDRs of sessions that ended while nobody listened: the ones the charger's
        boot closed after a crash, before this binding started. Queuing is keyed per party
        and CDR, so a CDR already queued (or sent, while the outbox remembers it) is not again."""
        since_s = self._clock() - CDR_CATCH_UP_S
        try:
            finished = [s for s in self.service.sessions(since_s=since_s) if s.stop_s is not None]
        except Exception:  # noqa: BLE001 - starting OCPI must not fail on this
            log.exception("OCPI: could not list recent sessions for their CDRs")
            return
        for session in finished:
            try:
                receipt = self.service.receipt(session.session_id)
                if receipt is not None:
                    self._on_receipt(session.session_id, receipt)
            except Exception:  # noqa: BLE001 - one bad session must not stop the others
                log.exception("OCPI: could not queue the CDR of session %s", session.session_id)

    def _parties_with(self, module: str) -> list[Party]:
        return [p for p in self.store.parties() if p.endpoint(module, "RECEIVER")]

    def _enqueue(self, party: Party, kind: str, object_id: str, snapshot, *, key: str | None = None) -> None:
        payload = json.dumps({"party": party.pk, "kind": kind, "id": object_id, "snapshot": snapshot})
        self.outbox.enqueue(PUSH_TOPIC, payload, key=key)

    def _greet_new_parties(self) -> None:
        """A party registered by ``urja ocpi register`` beside the running agent gets its
        location here, since that command cannot write to the agent's journal."""
        for party in self.store.parties():
            if party.pk not in self._known_parties:
                self._initial_push(party)

    def _initial_push(self, party: Party) -> None:
        self._known_parties.add(party.pk)
        if party.endpoint("locations", "RECEIVER"):
            self._enqueue(party, "location", self.render.location_id, None)
            self._pusher.kick()

    def _on_event(self, kind: str, obj) -> None:
        """Charger changes become durable pushes; never raises into the charger."""
        try:
            # A party registered beside the running agent must get its Location PUT queued
            # before any PATCH of it, or it is told about an EVSE it has never seen.
            self._greet_new_parties()
            if kind == "connector":
                self._on_connector(obj)
            elif kind == "session":
                self._on_session(obj)
            elif kind == "receipt":
                self._on_receipt(*obj)
        except Exception:  # noqa: BLE001 - a push problem must not disturb charging
            log.exception("OCPI: queuing a push for %s failed", kind)

    def _on_connector(self, view) -> None:
        evse_uid = str(view.evse_uid)
        if self._evse_pushed.get(evse_uid) == view.status:
            return
        self._evse_pushed[evse_uid] = view.status
        snapshot = self.render.evse([view])
        for party in self._parties_with("locations"):
            self._enqueue(party, "evse", evse_uid, {"status": snapshot["status"],
                                                    "last_updated": snapshot["last_updated"]})
        self._pusher.kick()

    def _owner_taking(self, ref, module: str) -> Party | None:
        """The registered eMSP a session belongs to, if it takes pushes of ``module``."""
        if ref is None:
            return None
        party = self.store.party(ref.owner_pk)
        if party is None or party.state != "registered" or not party.endpoint(module, "RECEIVER"):
            return None
        return party

    def _on_session(self, session, *, force: bool = False) -> None:
        """A session is pushed to the eMSP it belongs to and to nobody else (see ``_visible_to``)."""
        ref = self.store.session_ref(session.reference)
        if ref is None:
            return  # the site's own session: no eMSP is told of it
        now = self._clock()
        last = self._session_pushed.get(session.session_id)
        if not force and last is not None and last[0] == session.status and \
                now - last[1] < self.session_push_interval_s:
            return
        self._session_pushed[session.session_id] = (session.status, now)
        if session.stop_s is not None:
            self._session_pushed.pop(session.session_id, None)
        party = self._owner_taking(ref, "sessions")
        if party is not None:
            self._enqueue(party, "session", session.session_id, self.session_object(session, ref))
            self._pusher.kick()

    def _on_receipt(self, session_id, receipt) -> None:
        session = self._session(session_id)
        if session is None:
            return
        ref = self.store.session_ref(session.reference)
        party = self._owner_taking(ref, "cdrs")
        if party is not None:
            cdr = self.cdr_object(session, receipt, ref)
            self._enqueue(party, "cdr", cdr["id"], cdr, key=f"ocpi-cdr:{party.pk}:{cdr['id']}")
            self._pusher.kick()

    def _addressed_rightly(self, party: Party, entry: dict) -> bool:
        """Whether a queued Session or CDR push still goes to the eMSP the session belongs to.

        Checked again at delivery because the outbox outlives the process: entries queued by a
        version that pushed the site's own sessions to every eMSP must not leak after an update."""
        kind = entry["kind"]
        if kind not in ("session", "cdr"):
            return True
        session_id = entry["id"] if kind == "session" else (entry.get("snapshot") or {}).get("session_id")
        session = self._session(session_id) if isinstance(session_id, str) else None
        return session is not None and self._visible_to(session, party)[0]

    def _request_for(self, party: Party, entry: dict):
        """(method, url, body) of a queued push; live objects are rendered afresh so that a late
        or retried push never overwrites newer state with older."""
        kind, object_id, snapshot = entry["kind"], entry["id"], entry.get("snapshot")
        ours = f"{self.country_code}/{self.party_id}"
        if kind == "location":
            base = party.endpoint("locations", "RECEIVER")
            return "PUT", f"{base.rstrip('/')}/{ours}/{self.render.location_id}", \
                self.render.location(config_updated_s=self.config_updated_s)
        if kind == "evse":
            base = party.endpoint("locations", "RECEIVER")
            view = self.render.connector_view(object_id)
            body = snapshot
            if view is not None:
                evse = self.render.evse([view])
                body = {"status": evse["status"], "last_updated": evse["last_updated"]}
            return "PATCH", f"{base.rstrip('/')}/{ours}/{self.render.location_id}/{object_id}", body
        if kind == "session":
            base = party.endpoint("sessions", "RECEIVER")
            session = self._session(object_id)
            body = self.session_object(session, self.store.session_ref(session.reference)) if session else snapshot
            return "PUT", f"{base.rstrip('/')}/{ours}/{object_id}", body
        if kind == "cdr":
            return "POST", party.endpoint("cdrs", "RECEIVER"), snapshot
        raise ValueError(f"unknown push kind {kind!r}")

    async def push_once(self, limit: int = PUSH_BATCH) -> int:
        """Deliver what is due now; returns how many were delivered (acked)."""
        self._greet_new_parties()
        return await self._pusher.run_once(limit=limit)

    async def _deliver(self, entry) -> Outcome:
        """Send one queued push or command result (the pusher acknowledges or reschedules)."""
        if entry.topic not in (PUSH_TOPIC, RESULT_TOPIC):
            return Outcome.skip()
        try:
            payload = json.loads(entry.payload)
            party = self.store.party(payload["party"])
            if party is None or party.state != "registered" or not party.outgoing_token:
                return Outcome.drop(f"party {payload['party']} has left; nobody to deliver to")
            if entry.topic == RESULT_TOPIC:
                method, url, body = "POST", payload["url"], payload["body"]
            elif not self._addressed_rightly(party, payload):
                return Outcome.drop(f"queued {payload['kind']} push {payload['id']} is not {party.label}'s")
            else:
                method, url, body = self._request_for(party, payload)
            if not url:
                return Outcome.drop(f"{party.label} offers no endpoint for it")
            to = self._addressee(party, entry.topic, payload)
            if party.is_hub and to != party.ids:
                said = self.store.client_status(party.pk, *to)
                if said == GONE:
                    return Outcome.drop(f"{party.label} reports {to[0]}*{to[1]} SUSPENDED; nobody to deliver to")
                if said == UNREACHABLE:
                    return Outcome.retry(f"{party.label} reports {to[0]}*{to[1]} OFFLINE")
            status, reply = await self._client().call(method, url, token=party.outgoing_token, body=body, to_party=to)
            ok = 200 <= status < 300 and reply.get("status_code") in (1000, None)
            problem = f"HTTP {status}, status_code {reply.get('status_code')!r}: {reply.get('status_message', '')}"
        except PartnerError as exc:
            ok, problem = False, exc.message
        except (ValueError, KeyError, TypeError) as exc:
            return Outcome.drop(f"malformed: {exc}")
        return Outcome.delivered() if ok else Outcome.retry(f"OCPI push failed: {problem}")

    def _addressee(self, party: Party, topic: str, payload: dict) -> tuple[str, str] | None:
        """The ``OCPI-to`` of a push: the eMSP a Session or CDR belongs to, the party that sent
        a command, and for a broadcast (Locations) the receiving registration itself."""
        if topic == RESULT_TOPIC:
            return tuple(payload["to"]) if payload.get("to") else party.ids
        if payload["kind"] in ("session", "cdr"):
            session_id = payload["id"] if payload["kind"] == "session" else (payload.get("snapshot") or {}).get(
                "session_id")
            session = self._session(session_id) if isinstance(session_id, str) else None
            ref = self.store.session_ref(session.reference) if session is not None else None
            if ref is not None:
                return owner_ids(ref)
        return party.ids

    def _refresh_live_sessions(self) -> None:
        """Running sessions change every meter reading, but the facade only announces state
        changes; their kWh and cost are pushed every ``session_push_interval_s``."""
        now = self._clock()
        if now - self._live_refreshed_s < self.session_push_interval_s:
            return
        self._live_refreshed_s = now
        for view in self.service.connectors():
            session = self._session(view.session_id) if view.session_id else None
            if session is not None and session.stop_s is None:
                self._on_session(session, force=True)

    async def _before_push_round(self) -> None:
        self._refresh_live_sessions()
        self._greet_new_parties()
