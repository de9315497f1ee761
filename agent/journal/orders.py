"""Network orders a protocol binding has confirmed, kept so a buyer who paid still finds them.

One row per binding and transaction, replaced on every save; the snapshot is the binding's own
JSON object, and bindings never see each other's rows.
"""
from __future__ import annotations

import json

from agent.journal.errors import InvalidValue
from agent.journal.records import OrderRecord
from agent.journal.values import as_text, require_number, require_text


class JournalOrders:
    """Order calls of ``Journal`` (a mixin: it uses the journal's connection and write transaction)."""

    def save_order(self, binding: str, tx_id: str, snapshot_json: str, now_s: float) -> None:
        """Store (or replace) a binding's order; durable on return.

        ``snapshot_json`` must be the text of a JSON object: a row the binding could not read
        back is refused here rather than found at the next start.
        """
        require_text("binding", binding)
        require_text("tx_id", tx_id)
        if not isinstance(snapshot_json, str):
            raise InvalidValue(f"order snapshot must be JSON text, got {type(snapshot_json).__name__}",
                               field="snapshot_json", tx_id=tx_id)
        try:
            parsed = json.loads(snapshot_json)
        except ValueError as exc:
            raise InvalidValue(f"order {tx_id!r}: snapshot is not JSON: {exc}", field="snapshot_json",
                               tx_id=tx_id) from exc
        if not isinstance(parsed, dict):
            raise InvalidValue(f"order {tx_id!r}: snapshot must be a JSON object, got {type(parsed).__name__}",
                               field="snapshot_json", tx_id=tx_id)
        require_number("now_s", now_s)
        self._write(lambda conn: conn.execute(
            """INSERT INTO orders (binding, tx_id, snapshot, updated_s) VALUES (?, ?, ?, ?)
               ON CONFLICT (binding, tx_id) DO UPDATE SET snapshot = excluded.snapshot,
                                                          updated_s = excluded.updated_s""",
            (binding, tx_id, snapshot_json, now_s)))

    def orders(self, binding: str) -> list[OrderRecord]:
        """A binding's stored orders, first saved first; rows are returned unread (the binding
        decides what a snapshot it cannot use means)."""
        require_text("binding", binding)
        rows = self._db().execute(
            "SELECT binding, tx_id, snapshot, updated_s FROM orders WHERE binding = ? ORDER BY rowid",
            (binding,)).fetchall()
        return [OrderRecord(binding=r[0], tx_id=r[1], snapshot=as_text(r[2]), updated_s=r[3]) for r in rows]

    def delete_order(self, binding: str, tx_id: str) -> bool:
        """Forget a binding's order; True if there was one."""
        require_text("binding", binding)
        require_text("tx_id", tx_id)
        return self._write(lambda conn: conn.execute(
            "DELETE FROM orders WHERE binding = ? AND tx_id = ?", (binding, tx_id)).rowcount) > 0
