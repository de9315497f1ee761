"""The durable outbox: what must reach the network is queued before it counts as sent.

At-least-once: a sender takes ``due(now)``, delivers, then ``ack``-s or ``retry``-s, and a crash
between delivery and ack redelivers; a ``key`` deduplicates repeated enqueues of one message.
"""
from __future__ import annotations

from agent.journal.errors import InvalidValue, JournalError, UnknownMessage
from agent.journal.records import OutboxEntry
from agent.journal.values import payload_bytes, require_number, require_text


class JournalOutbox:
    """Outbox calls of ``Journal`` (a mixin: it uses the journal's connection, write
    transaction and clock)."""

    @staticmethod
    def _enqueue_in(conn, topic, blob, key, deliver_after_s, now_s):
        if key is not None:
            row = conn.execute("SELECT id FROM outbox WHERE dedup_key = ?", (key,)).fetchone()
            if row is not None:
                return row[0], False
        cursor = conn.execute(
            "INSERT INTO outbox (topic, payload, dedup_key, created_s, next_attempt_s) VALUES (?, ?, ?, ?, ?)",
            (topic, blob, key, now_s, deliver_after_s))
        return cursor.lastrowid, True

    def enqueue(self, topic: str, payload, *, key: str | None = None, deliver_after: float | None = None) -> int:
        """Queue a message durably; returns its id. A repeated ``key`` returns the first id."""
        require_text("topic", topic)
        blob = payload_bytes("payload", payload)
        require_text("key", key, optional=True)
        if deliver_after is not None:
            require_number("deliver_after", deliver_after)
        now_s = self._clock()
        if key is not None:
            row = self._db().execute("SELECT id FROM outbox WHERE dedup_key = ?", (key,)).fetchone()
            if row is not None:
                return row[0]
        message_id, _ = self._write(
            lambda conn: self._enqueue_in(conn, topic, blob, key, now_s if deliver_after is None else deliver_after,
                                          now_s))
        return message_id

    def due(self, now: float, limit: int = 50, *, topic_prefix: str | None = None) -> list[OutboxEntry]:
        """Messages due by ``now``; ``topic_prefix`` keeps each binding to its own messages
        (the MQTT link and the OCPI pusher share one outbox and must never send each other's)."""
        require_number("now", now)
        if not isinstance(limit, int) or isinstance(limit, bool) or limit < 1:
            raise InvalidValue(f"limit must be a positive integer, got {limit!r}", field="limit", value=limit)
        prefix = topic_prefix or ""
        rows = self._db().execute(
            """SELECT id, topic, payload, dedup_key, attempts, next_attempt_s, created_s FROM outbox
               WHERE acked_s IS NULL AND next_attempt_s <= ? AND substr(topic, 1, ?) = ?
               ORDER BY next_attempt_s, id LIMIT ?""",
            (now, len(prefix), prefix, limit)).fetchall()
        return [OutboxEntry(id=r[0], topic=r[1], payload=bytes(r[2]), key=r[3], attempts=r[4],
                            next_attempt_s=r[5], created_s=r[6]) for r in rows]

    def pending_count(self) -> int:
        return self._db().execute("SELECT COUNT(*) FROM outbox WHERE acked_s IS NULL").fetchone()[0]

    def ack(self, message_id: int) -> bool:
        """Mark delivered; True the first time, False if already acked (redelivery is normal)."""
        now_s = self._clock()

        def work(conn):
            row = conn.execute("SELECT acked_s FROM outbox WHERE id = ?", (message_id,)).fetchone()
            if row is None:
                raise UnknownMessage(f"unknown outbox message id {message_id!r}", message_id=message_id)
            if row[0] is not None:
                return False
            conn.execute("UPDATE outbox SET acked_s = ? WHERE id = ?", (now_s, message_id))
            return True

        return self._write(work)

    def retry(self, message_id: int, next_attempt_s: float) -> int:
        """Record a failed attempt and when to try again; returns the attempt count."""
        require_number("next_attempt_s", next_attempt_s)

        def work(conn):
            row = conn.execute("SELECT acked_s, attempts FROM outbox WHERE id = ?", (message_id,)).fetchone()
            if row is None:
                raise UnknownMessage(f"unknown outbox message id {message_id!r}", message_id=message_id)
            if row[0] is not None:
                raise JournalError(f"outbox message {message_id} was already acked; it cannot be retried",
                                   code="journal-message-acked", message_id=message_id)
            conn.execute("UPDATE outbox SET attempts = attempts + 1, next_attempt_s = ? WHERE id = ?",
                         (next_attempt_s, message_id))
            return row[1] + 1

        return self._write(work)
