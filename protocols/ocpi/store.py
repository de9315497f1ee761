"""Who we are registered with: OCPI parties, their tokens and endpoints, and their eMSP tokens.

Registrations must survive restarts and be shared with ``urja ocpi ...`` run beside the
agent, so they live in a small SQLite file of their own (WAL, normal locking) next to the
journal rather than inside it: the journal is opened exclusively by the agent.

Tokens the other side uses to call us (token A before registration, then B or C) are kept only
as SHA-256 hashes; the tokens we must send are kept in clear, so the file is created 0600.
"""
from __future__ import annotations

import json
import os
import sqlite3
from dataclasses import dataclass, field
from pathlib import Path

from agent import sqlite as db
from protocols.ocpi.wire import token_hash

_SCHEMA = (
    """CREATE TABLE IF NOT EXISTS token_a (
        hash TEXT PRIMARY KEY, label TEXT NOT NULL, created_s REAL NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS parties (
        pk INTEGER PRIMARY KEY AUTOINCREMENT,
        state TEXT NOT NULL CHECK (state IN ('pending', 'registered')),
        incoming_hash TEXT NOT NULL UNIQUE,
        outgoing_token TEXT,
        versions_url TEXT NOT NULL,
        version TEXT,
        endpoints_json TEXT NOT NULL DEFAULT '[]',
        roles_json TEXT NOT NULL DEFAULT '[]',
        initiated_by_us INTEGER NOT NULL DEFAULT 0,
        created_s REAL NOT NULL,
        updated_s REAL NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS tokens (
        country_code TEXT NOT NULL, party_id TEXT NOT NULL, uid TEXT NOT NULL, type TEXT NOT NULL,
        owner_pk INTEGER NOT NULL, body_json TEXT NOT NULL, last_updated_s REAL NOT NULL,
        PRIMARY KEY (country_code, party_id, uid, type))""",
    """CREATE TABLE IF NOT EXISTS commands (
        dedup TEXT PRIMARY KEY, owner_pk INTEGER NOT NULL, command TEXT NOT NULL,
        response_json TEXT NOT NULL, received_s REAL NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS session_refs (
        reference TEXT PRIMARY KEY, owner_pk INTEGER NOT NULL, cdr_token_json TEXT NOT NULL,
        auth_method TEXT NOT NULL, authorization_reference TEXT, created_s REAL NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS reservations (
        reservation_id TEXT PRIMARY KEY, owner_pk INTEGER NOT NULL, their_id TEXT NOT NULL,
        created_s REAL NOT NULL)""",
    """CREATE TABLE IF NOT EXISTS client_info (
        hub_pk INTEGER NOT NULL, country_code TEXT NOT NULL, party_id TEXT NOT NULL, role TEXT NOT NULL,
        status TEXT NOT NULL, last_updated_s REAL NOT NULL, PRIMARY KEY (hub_pk, country_code, party_id, role))""",
    """CREATE TABLE IF NOT EXISTS stamps (
        kind TEXT NOT NULL, object_id TEXT NOT NULL, digest TEXT NOT NULL, last_updated_s REAL NOT NULL,
        PRIMARY KEY (kind, object_id))""",
    "CREATE INDEX IF NOT EXISTS stamps_by_time ON stamps (kind, last_updated_s)",
)

# ClientInfo statuses a hub uses for a party that will not (or not now) receive anything.
GONE = "SUSPENDED"
UNREACHABLE = "OFFLINE"


def without_nulls(value):
    """``value`` with every null member left out: OCPI objects mark optional fields by absence,
    and the official schemas allow no null where a field may be missing."""
    if isinstance(value, dict):
        return {k: without_nulls(v) for k, v in value.items() if v is not None}
    if isinstance(value, list):
        return [without_nulls(v) for v in value if v is not None]
    return value


@dataclass
class Party:
    """A registered (or registering) OCPI partner."""

    pk: int
    state: str
    versions_url: str
    outgoing_token: str | None = field(repr=False)  # the credential for their API: never in a log line
    version: str | None
    endpoints: list = field(default_factory=list)
    roles: list = field(default_factory=list)
    initiated_by_us: bool = False

    def endpoint(self, identifier: str, role: str) -> str | None:
        for ep in self.endpoints:
            if ep.get("identifier") == identifier and ep.get("role") == role:
                return ep.get("url")
        return None

    def has_role(self, country_code: str, party_id: str) -> bool:
        return any(r.get("country_code") == country_code and r.get("party_id") == party_id for r in self.roles)

    @property
    def is_hub(self) -> bool:
        """A registration with role HUB speaks for the parties connected behind the hub."""
        return any(r.get("role") == "HUB" for r in self.roles)

    @property
    def ids(self) -> tuple[str, str] | None:
        """The party ids of its first role (a hub's own ids when it is a hub)."""
        hub = [r for r in self.roles if r.get("role") == "HUB"] or self.roles
        return (hub[0].get("country_code"), hub[0].get("party_id")) if hub else None

    @property
    def label(self) -> str:
        names = ",".join(f"{r.get('country_code')}*{r.get('party_id')}" for r in self.roles)
        return f"party {self.pk} ({names or 'unregistered'})"


@dataclass
class SessionRef:
    owner_pk: int
    cdr_token: dict
    auth_method: str
    authorization_reference: str | None


class PartyIdsTaken(ValueError):
    """Party ids another registration holds; ``ids`` names them (``CC*PID``)."""

    def __init__(self, ids: list):
        super().__init__(", ".join(ids))
        self.ids = ids


class OcpiStore(db.SqliteFile):
    """Thin synchronous store; every call is one short transaction (milliseconds)."""

    def __init__(self, conn: sqlite3.Connection, path: str):
        db.SqliteFile.__init__(self, conn, path)
        self._refs: dict = {}  # session references; only a re-registration changes their owner

    @classmethod
    def open(cls, path) -> "OcpiStore":
        path = str(path)
        if path != db.MEMORY:
            Path(path).parent.mkdir(parents=True, exist_ok=True)
            fd = os.open(path, os.O_CREAT | os.O_RDWR, 0o600)
            os.close(fd)
            os.chmod(path, 0o600)
        conn = db.connect(path, timeout_s=5.0)

        def setup(conn):
            db.use_wal(conn)
            db.write(conn, lambda c: db.execute_all(c, _SCHEMA))

        db.set_up(conn, setup)
        if path != db.MEMORY:
            for suffix in ("-wal", "-shm"):
                if os.path.exists(path + suffix):
                    os.chmod(path + suffix, 0o600)
        return cls(conn, path)

    def _tx(self, work):
        return db.write(self._conn, work)

    # ------------------------------------------------------------- token A
    def add_token_a(self, token: str, *, label: str, now_s: float) -> None:
        self._tx(lambda c: c.execute("INSERT INTO token_a (hash, label, created_s) VALUES (?, ?, ?)",
                                     (token_hash(token), label, now_s)))

    def has_token_a(self, hashed: str) -> bool:
        return self._conn.execute("SELECT 1 FROM token_a WHERE hash = ?", (hashed,)).fetchone() is not None

    def token_a_count(self) -> int:
        return self._conn.execute("SELECT COUNT(*) FROM token_a").fetchone()[0]

    # ------------------------------------------------------------- parties
    @staticmethod
    def _party(row) -> Party:
        return Party(pk=row[0], state=row[1], versions_url=row[2], outgoing_token=row[3], version=row[4],
                     endpoints=json.loads(row[5]), roles=json.loads(row[6]), initiated_by_us=bool(row[7]))

    _COLS = "pk, state, versions_url, outgoing_token, version, endpoints_json, roles_json, initiated_by_us"

    def party_by_hash(self, hashed: str) -> Party | None:
        row = self._conn.execute(f"SELECT {self._COLS} FROM parties WHERE incoming_hash = ?", (hashed,)).fetchone()
        return self._party(row) if row else None

    def party(self, pk: int) -> Party | None:
        row = self._conn.execute(f"SELECT {self._COLS} FROM parties WHERE pk = ?", (pk,)).fetchone()
        return self._party(row) if row else None

    def parties(self, *, registered_only: bool = True) -> list[Party]:
        where = "WHERE state = 'registered'" if registered_only else ""
        return [self._party(r) for r in self._conn.execute(f"SELECT {self._COLS} FROM parties {where} ORDER BY pk")]

    def register_party(self, *, incoming_token: str, outgoing_token: str, versions_url: str, version: str,
                       endpoints: list, roles: list, now_s: float, used_token_a_hash: str | None = None) -> Party:
        """Store a completed registration; the token A it used stops working in the same
        transaction. Party ids another registration holds are refused (``PartyIdsTaken``): a
        token A proves nothing about who the caller is, so a party that registered before
        renews with its current credentials (PUT), never by claiming its ids afresh."""
        def work(c):
            taken = self._taken(c, roles)
            if taken:
                raise PartyIdsTaken(taken)
            if used_token_a_hash is not None:
                if not c.execute("DELETE FROM token_a WHERE hash = ?", (used_token_a_hash,)).rowcount:
                    return None
            cur = c.execute(
                """INSERT INTO parties (state, incoming_hash, outgoing_token, versions_url, version, endpoints_json,
                   roles_json, initiated_by_us, created_s, updated_s) VALUES ('registered', ?, ?, ?, ?, ?, ?, 0, ?, ?)""",
                (token_hash(incoming_token), outgoing_token, versions_url, version, json.dumps(endpoints),
                 json.dumps(roles), now_s, now_s))
            return cur.lastrowid

        pk = self._tx(work)
        return None if pk is None else self.party(pk)

    def check_roles_free(self, roles: list, *, keep_pk: int | None = None) -> None:
        """Raise ``PartyIdsTaken`` when another registration holds any of the ids in ``roles``."""
        taken = self._taken(self._conn, roles, keep_pk=keep_pk)
        if taken:
            raise PartyIdsTaken(taken)

    @staticmethod
    def _taken(c, roles, keep_pk=None) -> list:
        wanted = {(r.get("country_code"), r.get("party_id")) for r in roles}
        taken = []
        for row in c.execute("SELECT pk, roles_json FROM parties WHERE state = 'registered'").fetchall():
            if row[0] != keep_pk:
                held = {(r.get("country_code"), r.get("party_id")) for r in json.loads(row[1])}
                taken.extend(f"{cc}*{pid}" for cc, pid in sorted(held & wanted))
        return taken

    def _hand_over(self, c, old_pk: int, new_pk: int) -> None:
        """A partner that registers anew keeps what was its own: its tokens, the sessions and
        CDRs tied to it, its reservations (otherwise they would belong to no party and never
        be shown or pushed to it again)."""
        for table in ("tokens", "session_refs", "reservations"):
            c.execute(f"UPDATE {table} SET owner_pk = ? WHERE owner_pk = ?", (new_pk, old_pk))
        self._refs.clear()  # cached references name the old registration

    @staticmethod
    def _replaced(c, roles, keep_pk=None) -> list:
        """Drop older registrations of the same party ids (a partner that registers anew)."""
        wanted = {(r.get("country_code"), r.get("party_id")) for r in roles}
        gone = []
        for row in c.execute("SELECT pk, roles_json FROM parties WHERE state = 'registered'").fetchall():
            if row[0] == keep_pk:
                continue
            if {(r.get("country_code"), r.get("party_id")) for r in json.loads(row[1])} & wanted:
                c.execute("DELETE FROM parties WHERE pk = ?", (row[0],))
                gone.append(row[0])
        return gone

    def add_pending(self, *, incoming_token: str, versions_url: str, version: str, endpoints: list,
                    now_s: float) -> Party:
        """We are registering with them: they may call our versions with this token meanwhile."""
        def work(c):
            return c.execute(
                """INSERT INTO parties (state, incoming_hash, versions_url, version, endpoints_json, initiated_by_us,
                   created_s, updated_s) VALUES ('pending', ?, ?, ?, ?, 1, ?, ?)""",
                (token_hash(incoming_token), versions_url, version, json.dumps(endpoints), now_s, now_s)).lastrowid

        return self.party(self._tx(work))

    def complete_pending(self, pk: int, *, outgoing_token: str, roles: list, versions_url: str, now_s: float) -> Party:
        def work(c):
            for old_pk in self._replaced(c, roles, keep_pk=pk):
                self._hand_over(c, old_pk, pk)
            c.execute("""UPDATE parties SET state = 'registered', outgoing_token = ?, roles_json = ?, versions_url = ?,
                         updated_s = ? WHERE pk = ?""", (outgoing_token, json.dumps(roles), versions_url, now_s, pk))

        self._tx(work)
        return self.party(pk)

    def finish_rotation(self, pk: int, *, pending_pk: int, outgoing_token: str, versions_url: str,
                        endpoints: list, roles: list, now_s: float) -> Party:
        """The partner took our new credentials: the token it was given through ``pending_pk``
        becomes the only one accepted for ``pk``, in one transaction (the old one stops)."""
        def work(c):
            row = c.execute("SELECT incoming_hash FROM parties WHERE pk = ? AND state = 'pending'",
                            (pending_pk,)).fetchone()
            if row is None:
                raise ValueError(f"no pending credentials {pending_pk}")
            c.execute("DELETE FROM parties WHERE pk = ?", (pending_pk,))
            c.execute("""UPDATE parties SET incoming_hash = ?, outgoing_token = ?, versions_url = ?, endpoints_json = ?,
                         roles_json = ?, updated_s = ? WHERE pk = ?""",
                      (row[0], outgoing_token, versions_url, json.dumps(endpoints), json.dumps(roles), now_s, pk))

        self._tx(work)
        return self.party(pk)

    def update_party(self, pk: int, *, incoming_token: str | None = None, outgoing_token: str | None = None,
                     versions_url: str | None = None, version: str | None = None, endpoints: list | None = None,
                     roles: list | None = None, now_s: float) -> Party:
        sets, args = ["updated_s = ?"], [now_s]
        for column, value in (("incoming_hash", token_hash(incoming_token) if incoming_token else None),
                              ("outgoing_token", outgoing_token), ("versions_url", versions_url),
                              ("version", version),
                              ("endpoints_json", json.dumps(endpoints) if endpoints is not None else None),
                              ("roles_json", json.dumps(roles) if roles is not None else None)):
            if value is not None:
                sets.append(f"{column} = ?")
                args.append(value)
        args.append(pk)
        self._tx(lambda c: c.execute(f"UPDATE parties SET {', '.join(sets)} WHERE pk = ?", args))
        return self.party(pk)

    def delete_party(self, pk: int) -> bool:
        def work(c):
            c.execute("DELETE FROM tokens WHERE owner_pk = ?", (pk,))
            return c.execute("DELETE FROM parties WHERE pk = ?", (pk,)).rowcount

        return bool(self._tx(work))

    # ------------------------------------------------------------- eMSP tokens
    def put_token(self, token: dict, *, owner_pk: int, last_updated_s: float) -> bool:
        """Insert or replace; True when the token is new."""
        key = (token["country_code"], token["party_id"], token["uid"], token["type"])

        def work(c):
            existed = c.execute("SELECT 1 FROM tokens WHERE country_code = ? AND party_id = ? AND uid = ? AND type = ?",
                                key).fetchone() is not None
            c.execute("INSERT OR REPLACE INTO tokens VALUES (?, ?, ?, ?, ?, ?, ?)",
                      (*key, owner_pk, json.dumps(without_nulls(token)), last_updated_s))
            return not existed

        return self._tx(work)

    def token(self, country_code: str, party_id: str, uid: str, token_type: str) -> dict | None:
        row = self._conn.execute(
            "SELECT body_json FROM tokens WHERE country_code = ? AND party_id = ? AND uid = ? AND type = ?",
            (country_code, party_id, uid, token_type)).fetchone()
        return without_nulls(json.loads(row[0])) if row else None

    def token_owner(self, country_code: str, party_id: str, uid: str, token_type: str) -> int | None:
        row = self._conn.execute(
            "SELECT owner_pk FROM tokens WHERE country_code = ? AND party_id = ? AND uid = ? AND type = ?",
            (country_code, party_id, uid, token_type)).fetchone()
        return row[0] if row else None

    def find_token(self, uid: str, token_type: str | None = None) -> tuple[dict, int] | None:
        """A token by uid across parties (local RFID cards do not say whose they are)."""
        sql = "SELECT body_json, owner_pk FROM tokens WHERE uid = ?"
        args = [uid]
        if token_type:
            sql += " AND type = ?"
            args.append(token_type)
        row = self._conn.execute(sql + " ORDER BY last_updated_s DESC LIMIT 1", args).fetchone()
        return (without_nulls(json.loads(row[0])), row[1]) if row else None

    # ------------------------------------------------------------- commands and sessions
    def command_response(self, dedup: str, *, since_s: float | None = None) -> dict | None:
        """The first answer to a command received at or after ``since_s`` (older ones are no replay)."""
        row = self._conn.execute("SELECT response_json FROM commands WHERE dedup = ? AND received_s >= ?",
                                 (dedup, float("-inf") if since_s is None else since_s)).fetchone()
        return json.loads(row[0]) if row else None

    def record_command(self, dedup: str, *, owner_pk: int, command: str, response: dict, now_s: float,
                       forget_before_s: float | None = None, keep: int | None = None) -> None:
        """Remember a command's answer; forget those received before ``forget_before_s`` and all
        but the newest ``keep``, so the replay memory is bounded in time and in size."""
        def work(c):
            c.execute("INSERT OR REPLACE INTO commands VALUES (?, ?, ?, ?, ?)",
                      (dedup, owner_pk, command, json.dumps(response), now_s))
            if forget_before_s is not None:
                c.execute("DELETE FROM commands WHERE received_s < ?", (forget_before_s,))
            if keep is not None:
                c.execute("DELETE FROM commands WHERE dedup NOT IN "
                          "(SELECT dedup FROM commands ORDER BY received_s DESC, rowid DESC LIMIT ?)", (keep,))
        self._tx(work)

    def command_count(self) -> int:
        return self._conn.execute("SELECT COUNT(*) FROM commands").fetchone()[0]

    def add_session_ref(self, reference: str, *, owner_pk: int, cdr_token: dict, auth_method: str,
                        authorization_reference: str | None, now_s: float) -> None:
        self._refs.pop(reference, None)
        self._tx(lambda c: c.execute("INSERT OR REPLACE INTO session_refs VALUES (?, ?, ?, ?, ?, ?)",
                                     (reference, owner_pk, json.dumps(cdr_token), auth_method,
                                      authorization_reference, now_s)))

    def session_ref(self, reference: str | None) -> SessionRef | None:
        if not reference:
            return None
        if reference in self._refs:
            return self._refs[reference]
        row = self._conn.execute(
            "SELECT owner_pk, cdr_token_json, auth_method, authorization_reference FROM session_refs WHERE reference = ?",
            (reference,)).fetchone()
        if row is None:
            return None
        ref = self._refs[reference] = SessionRef(row[0], json.loads(row[1]), row[2], row[3])
        return ref

    def add_reservation(self, reservation_id: str, *, owner_pk: int, their_id: str, now_s: float) -> None:
        self._tx(lambda c: c.execute("INSERT OR REPLACE INTO reservations VALUES (?, ?, ?, ?)",
                                     (reservation_id, owner_pk, their_id, now_s)))

    # ------------------------------------------------------------- hubclientinfo
    def put_client_info(self, hub_pk: int, info: dict, *, last_updated_s: float) -> bool:
        """Store what a hub says of a party connected to it; True when it is new."""
        key = (hub_pk, info["country_code"], info["party_id"], info["role"])

        def work(c):
            existed = c.execute("SELECT 1 FROM client_info WHERE hub_pk = ? AND country_code = ? AND party_id = ? "
                                "AND role = ?", key).fetchone() is not None
            c.execute("INSERT OR REPLACE INTO client_info VALUES (?, ?, ?, ?, ?, ?)",
                      (*key, info["status"], last_updated_s))
            return not existed

        return self._tx(work)

    def client_infos(self, hub_pk: int, country_code: str, party_id: str) -> list[dict]:
        rows = self._conn.execute(
            "SELECT role, status, last_updated_s FROM client_info WHERE hub_pk = ? AND country_code = ? "
            "AND party_id = ? ORDER BY role", (hub_pk, country_code, party_id)).fetchall()
        return [{"country_code": country_code, "party_id": party_id, "role": r[0], "status": r[1],
                 "last_updated_s": r[2]} for r in rows]

    def client_status(self, hub_pk: int, country_code: str, party_id: str) -> str | None:
        """The hub's last word on a party behind it (None when it said nothing): the newest
        status over the party's roles."""
        found = self.client_infos(hub_pk, country_code, party_id)
        return max(found, key=lambda i: i["last_updated_s"])["status"] if found else None

    # ------------------------------------------------------------- published last_updated
    def stamp(self, kind: str, object_id: str, digest: str, candidate_s: float) -> float:
        """The ``last_updated`` of a published object: unchanged while its content (``digest``)
        is, and otherwise ``candidate_s`` but always after the one published before, so a
        poller filtering on it never misses a change and never sees time go back."""
        def work(c):
            row = c.execute("SELECT digest, last_updated_s FROM stamps WHERE kind = ? AND object_id = ?",
                            (kind, object_id)).fetchone()
            if row is not None and row[0] == digest:
                return row[1]
            value = round(candidate_s, 3)
            if row is not None and value <= row[1]:
                value = round(row[1] + 0.001, 3)
            c.execute("INSERT OR REPLACE INTO stamps VALUES (?, ?, ?, ?)", (kind, object_id, digest, value))
            return value

        return self._tx(work)

    def stamped_ids(self, kind: str, *, since_s: float | None, until_s: float | None) -> list[str]:
        rows = self._conn.execute(
            "SELECT object_id FROM stamps WHERE kind = ? AND (? IS NULL OR last_updated_s >= ?) "
            "AND (? IS NULL OR last_updated_s < ?) ORDER BY last_updated_s",
            (kind, since_s, since_s, until_s, until_s)).fetchall()
        return [r[0] for r in rows]
