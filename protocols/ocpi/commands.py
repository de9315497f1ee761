"""The commands module (RECEIVER): START_SESSION, STOP_SESSION, RESERVE_NOW,
CANCEL_RESERVATION, UNLOCK_CONNECTOR.

A command is checked and answered at once (CommandResponse); the work runs in a named task
and its CommandResult goes through the durable outbox to the eMSP's ``response_url``, so a
result is not lost when the eMSP is briefly unreachable. A replayed command (same party,
command, body and response_url, within an hour and among the newest thousand) gets its first
answer again and is not executed twice.
"""
from __future__ import annotations

import asyncio
import json
import logging
from urllib.parse import urlparse

from agent.service import ServiceError
from protocols.ocpi import errors as E
from protocols.ocpi.errors import OcpiError
from protocols.ocpi.middleware import Reply
from protocols.ocpi.push import RESULT_TOPIC
from protocols.ocpi.tokens import TOKEN_TYPES, WHITELIST_TYPES
from protocols.ocpi.wire import parse_time, require, require_enum, token_hash

log = logging.getLogger("urja.ocpi")

# A replay is recognised for this long after the first command and among this many of the
# newest: an eMSP retries a command within seconds to minutes (its CommandResponse timeout),
# and the same body to a fixed response_url an hour later is a new command, not a replay.
COMMAND_REPLAY_S = 3600.0
COMMAND_REPLAY_MAX = 1000

COMMANDS = ("CANCEL_RESERVATION", "RESERVE_NOW", "START_SESSION", "STOP_SESSION", "UNLOCK_CONNECTOR")

# ServiceError codes onto CommandResultType.
_RESULTS = {
    ServiceError.OCCUPIED: "EVSE_OCCUPIED",
    ServiceError.INOPERATIVE: "EVSE_INOPERATIVE",
    ServiceError.UNKNOWN_CONNECTOR: "REJECTED",
    ServiceError.UNKNOWN_SESSION: "REJECTED",
    ServiceError.UNKNOWN_RESERVATION: "UNKNOWN_RESERVATION",
    ServiceError.REJECTED: "REJECTED",
    ServiceError.NOT_SUPPORTED: "NOT_SUPPORTED",
}


def _text(message: str) -> list:
    return [{"language": "en", "text": message[:512]}]



class CommandsModule:
    """POST of a command: the checks, the immediate answer, the task and its queued result."""

    async def _post_command(self, request):
        caller = self._auth(request)
        party = caller.party
        command = request.match_info["command"]
        if command not in COMMANDS:
            raise OcpiError(E.INVALID_PARAMETERS, f"unknown command {command!r}; allowed: {', '.join(COMMANDS)}")
        body = await self._body(request)
        response_url = require(body, "response_url", str, where=command, max_len=255)
        parsed = urlparse(response_url)
        if parsed.scheme not in ("http", "https") or not parsed.netloc:
            raise OcpiError(E.INVALID_PARAMETERS, f"{command}.response_url must be an http(s) URL")
        # A replay is the same command, same body, to the same response_url: it gets the first
        # answer again and is not executed twice. Another body to a used response_url is a
        # new command (2.2.1 lets an eMSP reuse one URL), checked and run like any other.
        canonical = json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
        dedup = token_hash(f"{party.pk}|{command}|{response_url}|{canonical}")
        now_s = self._clock()
        previous = self.store.command_response(dedup, since_s=now_s - COMMAND_REPLAY_S)
        if previous is not None:
            return Reply(previous)
        check = getattr(self, "_check_" + command.lower())
        result, message, action = check(caller, body)
        response = {"result": result, "timeout": self.command_timeout_s}
        if message:
            response["message"] = _text(message)
        self.store.record_command(dedup, owner_pk=party.pk, command=command, response=response, now_s=now_s,
                                  forget_before_s=now_s - COMMAND_REPLAY_S, keep=COMMAND_REPLAY_MAX)
        if action is not None:
            # The result's outbox key is this command's, not the body's: the same body an hour
            # later is another command with a result of its own.
            key = f"{dedup}:{int(now_s * 1000)}"
            self._spawn(self._run_command(caller, key, response_url, command, action), f"ocpi-command-{command}")
        return Reply(response)

    async def _run_command(self, caller, dedup, response_url, command, action):
        try:
            result, message = await asyncio.wait_for(action(), self.command_timeout_s)
        except asyncio.TimeoutError:
            result, message = "TIMEOUT", f"the charger did not complete {command} within {self.command_timeout_s} s"
        except ServiceError as exc:
            result, message = _RESULTS.get(exc.code, "FAILED"), str(exc)
        except OcpiError as exc:
            result, message = "FAILED", exc.message
        except Exception as exc:  # noqa: BLE001 - reported to the eMSP as FAILED, logged here
            log.exception("OCPI %s failed", command)
            result, message = "FAILED", f"{type(exc).__name__}: {exc}"
        body = {"result": result}
        if message:
            body["message"] = _text(message)
        payload = {"party": caller.party.pk, "url": response_url, "body": body}
        if caller.acting is not None:
            payload["to"] = list(caller.acting)  # the party behind a hub that sent the command
        self.outbox.enqueue(RESULT_TOPIC, json.dumps(payload), key=f"ocpi-result:{dedup}")
        self._pusher.kick()

    def _location_problem(self, body, where) -> str | None:
        """Why the command's location is not this charger's, or None. A well-formed command for
        a location we do not have is answered with a CommandResponse REJECTED (2.2.1 keeps the
        HTTP errors for requests that cannot be read), so the eMSP shows its driver a refusal."""
        location_id = require(body, "location_id", str, where=where, max_len=36)
        if location_id != self.render.location_id:
            return f"unknown location {location_id!r}"
        return None

    def _evse_connector(self, body, where, *, connector_required=False):
        """(connector_id, problem): the facade's connector for an optional evse_uid/connector_id."""
        evse_uid = require(body, "evse_uid", str, where=where, optional=not connector_required, max_len=36)
        connector_id = require(body, "connector_id", str, where=where, optional=not connector_required, max_len=36)
        if evse_uid is None:
            return None, None
        view = self.render.connector_view(evse_uid, connector_id)
        if view is None:
            return None, f"unknown EVSE/connector {evse_uid!r}/{connector_id!r}"
        return view.connector_id, None

    @staticmethod
    def _parse_token(body, where) -> dict:
        token = require(body, "token", dict, where=where)
        w = f"{where}.token"
        for name in ("country_code", "party_id", "uid", "contract_id"):
            require(token, name, str, where=w, max_len=36)
        require_enum(token, "type", TOKEN_TYPES, where=w)
        require_enum(token, "whitelist", WHITELIST_TYPES, where=w, optional=True)
        require(token, "valid", bool, where=w, optional=True)
        return token

    def _token_problem(self, caller, token: dict) -> str | None:
        """Why the token of a START_SESSION or RESERVE_NOW cannot be used, or None.

        The eMSP sending the command has authorized the token itself (OCPI 2.2.1, commands), so
        it is not asked again, whatever its whitelist says: asking would refuse a NEVER token
        of an eMSP without a real-time endpoint and lose the eMSP's authorization_reference.
        What is checked is that the token is the caller's own (through a hub: of the party the
        request speaks for), so no eMSP can charge a session to another's customer, and that the
        eMSP has not itself marked it invalid."""
        if not self._may_act_for(caller, token["country_code"], token["party_id"]):
            return (f"token {token['country_code']}*{token['party_id']} {token['uid']!r} is not issued by the "
                    f"party sending the command")
        if token.get("valid") is False:
            return f"token {token['uid']!r} is marked not valid"
        return None

    def _check_start_session(self, caller, body):
        where = "START_SESSION"
        party = caller.party
        token = self._parse_token(body, where)
        location_problem = self._location_problem(body, where)
        connector_id, problem = self._evse_connector(body, where)
        auth_ref = require(body, "authorization_reference", str, where=where, optional=True, max_len=36)
        problem = location_problem or problem or self._token_problem(caller, token)
        if problem:
            return "REJECTED", problem, None

        async def action():
            reference = self._new_id()
            cdr_token = {k: token[k] for k in ("country_code", "party_id", "uid", "type", "contract_id")}
            self.store.add_session_ref(reference, owner_pk=party.pk, cdr_token=cdr_token, auth_method="COMMAND",
                                       authorization_reference=auth_ref, now_s=self._clock())
            session = await self.service.start_session(source="ocpi", reference=reference, token=token["uid"],
                                                       connector_id=connector_id)
            return "ACCEPTED", f"session {session.session_id} started"

        return "ACCEPTED", None, action

    def _check_stop_session(self, caller, body):
        session_id = require(body, "session_id", str, where="STOP_SESSION", max_len=36)
        session = self._session(session_id)
        if session is None or not self._visible_to(session, caller.party, caller.acting)[0]:
            return "UNKNOWN_SESSION", f"unknown session {session_id!r}", None
        if session.status in ("COMPLETED", "INVALID") or session.stop_s is not None:
            return "REJECTED", f"session {session_id!r} has already finished", None

        async def action():
            await self.service.stop_session(session_id, reason="remote")
            return "ACCEPTED", f"session {session_id} stopped"

        return "ACCEPTED", None, action

    def _check_reserve_now(self, caller, body):
        where = "RESERVE_NOW"
        party = caller.party
        token = self._parse_token(body, where)
        expires_s = parse_time(require(body, "expiry_date", str, where=where), f"{where}.expiry_date")
        their_id = require(body, "reservation_id", str, where=where, max_len=36)
        require(body, "authorization_reference", str, where=where, optional=True, max_len=36)
        location_problem = self._location_problem(body, where)
        connector_id, problem = self._evse_connector(body, where)
        problem = location_problem or problem or self._token_problem(caller, token)
        if problem:
            return "REJECTED", problem, None
        if expires_s <= self.service.now_s():
            return "REJECTED", "expiry_date lies in the past", None
        reservation_id = self._reservation_id(caller, their_id)

        async def action():
            # The eMSP authorized the token when it asked for the reservation (as for START_SESSION).
            self.store.add_reservation(reservation_id, owner_pk=party.pk, their_id=their_id, now_s=self._clock())
            await self.service.reserve(reservation_id=reservation_id, connector_id=connector_id, expires_s=expires_s,
                                       token=token["uid"])
            return "ACCEPTED", f"reserved until {body['expiry_date']}"

        return "ACCEPTED", None, action

    @staticmethod
    def _reservation_id(caller, their_id: str) -> str:
        """Ours for an eMSP's reservation id: eMSPs behind one hub choose theirs independently."""
        if caller.party.is_hub and caller.acting is not None:
            return f"ocpi-{caller.party.pk}-{''.join(caller.acting)}-{their_id}"
        return f"ocpi-{caller.party.pk}-{their_id}"

    def _check_cancel_reservation(self, caller, body):
        their_id = require(body, "reservation_id", str, where="CANCEL_RESERVATION", max_len=36)
        reservation_id = self._reservation_id(caller, their_id)

        async def action():
            await self.service.cancel_reservation(reservation_id)
            return "ACCEPTED", f"reservation {their_id} cancelled"

        return "ACCEPTED", None, action

    def _check_unlock_connector(self, caller, body):
        where = "UNLOCK_CONNECTOR"
        location_problem = self._location_problem(body, where)
        connector_id, problem = self._evse_connector(body, where, connector_required=True)
        problem = location_problem or problem
        if problem:
            return "REJECTED", problem, None

        async def action():
            await self.service.unlock(connector_id)
            return "ACCEPTED", f"connector {body['connector_id']} unlocked"

        return "ACCEPTED", None, action
