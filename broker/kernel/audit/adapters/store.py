"""Audit events written to the database in batches by one writer task, off the request path (an event is
stored within about 50 ms of being recorded).

``record`` puts the event on a bounded queue; when the writer falls behind, ``record`` waits (back
pressure) rather than dropping. ``run`` drains what is queued before it returns on shutdown.
"""

from __future__ import annotations

import json
import logging
from typing import Any

import anyio
import orjson
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from broker.kernel.audit.events import AuditEvent
from broker.kernel.store.ports import Database, Row

log = logging.getLogger(__name__)
BATCH = 200
LINGER = 0.05  # seconds an event may wait for others to share its transaction


class StoreAuditSink:
    """The embedded default sink."""

    def __init__(self, db: Database, queue_size: int = 10_000) -> None:
        self._db = db
        sender, receiver = anyio.create_memory_object_stream[AuditEvent](queue_size)
        self._sender: MemoryObjectSendStream[AuditEvent] = sender
        self._receiver: MemoryObjectReceiveStream[AuditEvent] = receiver
        self.drained = anyio.Event()  # set when ``run`` has written everything queued before ``close``
        self._running = False

    async def record(self, event: AuditEvent) -> None:
        try:
            # Not ``send``: it yields to the event loop first, one more loop pass on every request's path.
            self._sender.send_nowait(event)
        except anyio.WouldBlock:
            await self._sender.send(event)

    def close(self) -> None:
        """No more events; a running ``run`` writes what is queued and returns (idempotent)."""
        self._sender.close()
        if not self._running and not self._receiver.statistics().current_buffer_used:
            self._receiver.close()  # no writer has started and nothing waits to be written: none is needed
            self.drained.set()

    async def run(self) -> None:
        if self.drained.is_set():
            return  # closed before it started, with nothing queued
        self._running = True
        async with self._receiver:
            while True:
                try:
                    first = await self._receiver.receive()
                except anyio.EndOfStream:
                    self.drained.set()
                    return
                batch = [first]
                if self._receiver.statistics().current_buffer_used < BATCH:
                    # Let what arrives shortly after share the transaction: a transaction per few events costs
                    # the database thread and the event loop far more than a short delay before they are stored.
                    await anyio.sleep(LINGER)
                while len(batch) < BATCH:
                    try:
                        batch.append(self._receiver.receive_nowait())
                    except (anyio.WouldBlock, anyio.EndOfStream):
                        break
                await self._write(batch)

    async def _write(self, batch: list[AuditEvent]) -> None:
        """Retry until written; meanwhile the queue fills and ``record`` makes requests wait."""
        attempt = 0
        while True:
            attempt += 1
            try:
                with anyio.CancelScope(shield=True):  # a started transaction finishes even during shutdown
                    await self._insert(batch)
                return
            except Exception as exc:
                log.error("audit write of %d event(s) failed (attempt %d): %s", len(batch), attempt, exc)
            try:
                await anyio.sleep(min(0.2 * 2**attempt, 5))
            except anyio.get_cancelled_exc_class():
                log.critical("audit: shutting down with %d event(s) unwritten (the database is failing)",
                             len(batch))
                raise

    async def _insert(self, batch: list[AuditEvent]) -> None:
        async with self._db.transaction() as tx:
            await tx.execute_many(
                "INSERT INTO audit_events (id, at, trace_id, surface, user_id, team_id, api_key_id,"
                " target, action, outcome, error_code, duration_ms, detail, request_id, client_ip, user_agent)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (id) DO NOTHING",
                [(e.id, e.at, e.trace_id, e.surface, e.user_id, e.team_id, e.api_key_id, e.target, e.action,
                  e.outcome, e.error_code, e.duration_ms, orjson.dumps(e.detail).decode(), e.request_id,
                  e.client_ip, e.user_agent) for e in batch],
            )


class AuditQuery:
    """Reading the stored events back (the audit issue adds search and analytics)."""

    def __init__(self, db: Database) -> None:
        self._db = db

    async def recent(self, surface: str, limit: int = 100, target: str | None = None) -> list[dict[str, Any]]:
        if target is None:
            rows = await self._db.fetch(
                "SELECT * FROM audit_events WHERE surface = ? ORDER BY at DESC LIMIT ?", surface, limit)
        else:
            rows = await self._db.fetch(
                "SELECT * FROM audit_events WHERE surface = ? AND target = ? ORDER BY at DESC LIMIT ?",
                surface, target, limit)
        return [_event(r) for r in rows]

    async def get(self, event_id: str) -> dict[str, Any] | None:
        row = await self._db.fetchrow("SELECT * FROM audit_events WHERE id = ?", event_id)
        return _event(row) if row else None


def _event(row: Row) -> dict[str, Any]:
    return {**row, "detail": json.loads(row["detail"])}
