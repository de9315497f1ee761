"""The charger's durable memory: sessions, meter checkpoints, receipts and the outbox.

Chargers keep this file on SD cards and eMMC that wear out and lose power without warning,
so the journal is built around two questions: what must survive a power cut at any instant,
and how few bytes can we write to guarantee it. It is CPython-only (``sqlite3``); the
portable core never imports it.

Durability contract (what the runtime must do, and what it may then rely on)
----------------------------------------------------------------------------
1. Boot: force the relay open *first*, then ``Journal.open(path)``, read the meter once and
   call ``reconcile(meter_wh_now, now_s, make_receipt=...)``. Only after it returns may any
   new session start. Every session left open by a crash is closed with that reading.
2. Start: ``start_session(...)`` returns only after the start reading (Wh, meter serial, time,
   authorization, tariff) is on stable storage (WAL + ``synchronous=FULL`` fsync). The relay
   must not close before it returns. A crash before it returns means no session and no
   energy; a crash after it means an open session that ``reconcile`` will bill.
3. During charging: feed every meter reading to ``checkpoint(...)``. It writes only when the
   policy says so (``CheckpointPolicy``); the meter's cumulative register survives power loss
   on its own, so checkpoints are evidence of progress and a fallback when the meter is
   replaced or goes backwards, not the basis of billing.
4. Stop: open the relay, read the meter, then ``stop_session(...)``. Billed energy is always
   ``stop_wh - start_wh``; it returns after the stop reading is durable.
5. Receipt: ``store_receipt(session_id, receipt)`` stores it exactly once (optionally queueing
   its delivery in the same transaction). ``reconcile`` issues any receipt that a crash
   prevented, for every closed session without one.
6. Outbox: anything that must reach the network is ``enqueue``-d (durable on return) before
   the runtime considers it sent; a sender takes ``due(now_s)``, delivers, then ``ack``-s or
   ``retry``-s. A crash between delivery and ack redelivers (at-least-once); a ``key``
   deduplicates repeated enqueues of the same logical message.
7. Network orders: a protocol binding keeps the orders it has confirmed with
   ``save_order(binding, tx_id, snapshot_json, now_s)`` (durable on return, one row per
   binding and transaction, replaced on every save), reads them back at start with
   ``orders(binding)`` and forgets one with ``delete_order(binding, tx_id)``. A buyer who paid
   and got an order id must still find that order after a power cut. The snapshot is the
   binding's own JSON object; the journal only checks that it is one. Bindings never see each
   other's rows (the MQTT and HTTP bindings answer their own transactions).

8. Latched faults: ``FaultStore`` (below) keeps them in a small file of its own beside the
   journal, ``fault_store_path(journal_path)``. A latch must outlive a power cut and be
   cleared only by a local reset, and that reset (``urja fault reset``) must work while the
   agent runs; the journal itself is opened exclusively, so the latch cannot live in it. The
   runtime records a latch (durable on return) when the safety gate latches, re-latches a
   recorded uncleared one at boot before anything can close the relay, and records the clearing.

Tables added after schema version 1 that older code can simply ignore (``orders``) are created
with ``CREATE TABLE IF NOT EXISTS`` at every open, without a version bump: a file stays
readable by the release before, so going back after a bad update keeps every session.

"Durable" means fsynced: it holds on storage that honours flush requests (industrial-grade
SD/eMMC; consumer cards that acknowledge writes from a volatile cache can still lose the last
transactions, which is why the relay ordering above, not the checkpoints, protects billing).

Only one process opens the journal at a time (``locking_mode=EXCLUSIVE`` by default): the
WAL index then lives in process memory instead of a memory-mapped ``-shm`` file that every
commit dirties and the kernel writes back to flash on its own schedule. Tools read it after
the agent stops or ask the agent. Calls are synchronous and each costs one fsync
(milliseconds on flash); the asyncio runtime calls them inline because their ordering
relative to the relay is the point.

Modules: ``store`` (``Journal``: opening, the write transaction, housekeeping), ``sessions``,
``receipts`` (with ``reconcile``), ``outbox``, ``orders``, ``schema``, ``records``, ``values``,
``errors`` and ``faults`` (``FaultStore``). Everything is imported from this package.
"""
from agent.journal.errors import (
    InvalidValue,
    JournalError,
    ReceiptConflict,
    SchemaError,
    SessionClosed,
    SessionExists,
    StorageError,
    UnknownMessage,
    UnknownSession,
)
from agent.journal.faults import FaultStore, LatchedFault, fault_store_path
from agent.journal.records import CheckpointPolicy, OrderRecord, OutboxEntry, SessionRecord
from agent.journal.schema import PAGE_SIZE, SCHEMA_VERSION
from agent.journal.store import Journal

__all__ = [
    "CheckpointPolicy", "FaultStore", "Journal", "JournalError", "LatchedFault", "OrderRecord", "OutboxEntry",
    "PAGE_SIZE", "ReceiptConflict", "SCHEMA_VERSION", "fault_store_path",
    "SchemaError", "SessionClosed", "SessionExists", "SessionRecord", "StorageError", "UnknownMessage",
    "UnknownSession", "InvalidValue",
]
