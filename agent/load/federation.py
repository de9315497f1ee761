"""Several boards on one site share one limit: the manager's side and the followers' side.

One board (with the grid meter) is the site's load manager; the others follow over the site's
LAN (``protocols/loadshare``, MQTT on the local broker). Pure and clock-injected, like
``manager``; the transport only carries dicts.

A follower reports its connectors (what they may draw, whether a session wants power, what they
draw) and applies the shares the manager sends back. Without a fresh share for ``timeout_ms``
(the manager is gone, the LAN is down) it falls back to ``safe_share_a`` on each connector, the
owner's figure for what a board may draw without being told. The manager treats a follower it
has not heard from for ``timeout_ms`` as gone: its connectors want nothing from the budget, and
what it draws on its safe share is seen by the grid meter as the house's and left room for.
"""
from __future__ import annotations

from agent.load.manager import ConnectorSpec, LoadManager

KINDS = ("pilot", "socket")


class FollowerShares:
    """A follower's shares: the manager's last ones while fresh, else the safe share."""

    def __init__(self, *, safe_share_a: float, timeout_ms: int):
        self.safe_share_a = safe_share_a
        self.timeout_ms = timeout_ms
        self._shares: dict[str, float] = {}
        self._at_ms: int | None = None

    def received(self, shares: dict[str, float], now_ms: int) -> None:
        self._shares = dict(shares)
        self._at_ms = now_ms

    def fresh(self, now_ms: int) -> bool:
        return self._at_ms is not None and now_ms - self._at_ms <= self.timeout_ms

    def current(self, connector_ids, now_ms: int) -> dict[str, float]:
        if self.fresh(now_ms):
            return {cid: float(self._shares.get(cid, 0.0)) for cid in connector_ids}
        return {cid: self.safe_share_a for cid in connector_ids}


def connector_state(*, connector_id: str, kind: str, max_current_a: float, phases, wants: bool,
                    current_a: float) -> dict:
    """One connector as a follower reports it (the message's JSON)."""
    return {"id": connector_id, "kind": kind, "max_current_a": max_current_a, "phases": list(phases),
            "wants": bool(wants), "current_a": float(current_a)}


class RemoteBoards:
    """The manager's view of its followers, folded into its ``LoadManager``."""

    def __init__(self, manager: LoadManager, *, timeout_ms: int, max_boards: int = 8):
        self.manager = manager
        self.timeout_ms = timeout_ms
        self.max_boards = max_boards
        self._boards: dict[str, dict] = {}  # board id -> {"at_ms", "ids": [connector ids]}

    def state(self, board_id: str, connectors: list[dict], now_ms: int) -> None:
        """A follower's report; refuses (``ValueError``) what does not fit the site."""
        if board_id not in self._boards and len(self._boards) >= self.max_boards - 1:
            raise ValueError(f"a site shares its limit among at most {self.max_boards} boards")
        ids = []
        for conn in connectors:
            cid = f"{board_id}/{conn['id']}"
            if conn.get("kind") not in KINDS:
                raise ValueError(f"connector {cid}: kind {conn.get('kind')!r} (allowed: {', '.join(KINDS)})")
            if not self.manager.has(cid):
                self.manager.add_connector(ConnectorSpec(connector_id=cid, kind=conn["kind"],
                                                         max_current_a=float(conn["max_current_a"]),
                                                         phases=tuple(int(p) for p in conn["phases"])))
            self.manager.connector_reading(cid, (float(conn["current_a"]),), now_ms)
            if bool(conn["wants"]) != self.manager.wants(cid):
                self.manager.demand(cid, bool(conn["wants"]), now_ms)
            ids.append(cid)
        self._boards[board_id] = {"at_ms": now_ms, "ids": ids}

    def expire(self, now_ms: int) -> list[str]:
        """Followers not heard from: their connectors leave the budget. Returns who went."""
        gone = []
        for board_id, board in list(self._boards.items()):
            if now_ms - board["at_ms"] > self.timeout_ms:
                for cid in board["ids"]:
                    self.manager.connector_reading(cid, (0.0,), now_ms)
                    if self.manager.wants(cid):
                        self.manager.demand(cid, False, now_ms)
                del self._boards[board_id]
                gone.append(board_id)
        return gone

    def boards(self) -> list[str]:
        return list(self._boards)

    def shares(self, board_id: str) -> dict[str, float]:
        """What the manager's last decision gives a follower's connectors, by their own ids."""
        last = self.manager.last
        board = self._boards.get(board_id)
        if last is None or board is None:
            return {}
        prefix = board_id + "/"
        return {cid[len(prefix):]: last.limits_a.get(cid, 0.0) for cid in board["ids"]}
