"""Audit retention: events older than their kind's retention period are deleted, once a day, and captured bodies
older than the bodies' own period (usually shorter) before that.

The kind is the event's surface (``ai``, ``mcp``, ``quota``...); each may have its own period, the others
share the default; 0 keeps events forever. An event's bodies go with it. Deleting runs in chunks so a first
purge over a large table never holds the database's write lock for long (SQLite has one writer). Offloaded
bodies are deleted from the offload store first; one that cannot be deleted keeps its row for the next pass.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping

import anyio

from broker.kernel.audit.body_store import BodyStore, BodyStoreError
from broker.kernel.clock import Clock
from broker.kernel.store.ports import Database

log = logging.getLogger(__name__)
DAY = 86_400.0
CHUNK = 5_000


class AuditRetention:
    def __init__(self, db: Database, clock: Clock, periods: Callable[[], tuple[int, Mapping[str, int]]],
                 bodies: BodyStore, body_days: Callable[[], int]) -> None:
        self._db = db
        self._clock = clock
        # Both read at each pass: an admin may change them. ``periods``: the default days and the days by kind.
        self._periods = periods
        self._bodies = bodies
        self._body_days = body_days

    async def purge(self) -> int:
        """Delete every expired body and event now; returns how many events went."""
        now = self._clock.now()
        if days := self._body_days():
            await self._delete_bodies("at < ?", now - days * DAY)
        default_days, days_by_kind = self._periods()
        deleted = 0
        for kind, days in days_by_kind.items():
            if days:
                deleted += await self._delete("surface = ? AND at < ?", kind, now - days * DAY)
        if default_days:
            others = list(days_by_kind)
            placeholders = ", ".join("?" * len(others))
            condition = f"surface NOT IN ({placeholders}) AND at < ?" if others else "at < ?"
            deleted += await self._delete(condition, *others, now - default_days * DAY)
        return deleted

    async def run(self, every: float = DAY) -> None:
        """Purge at start and then once every ``every`` seconds (a failed pass is logged and retried then)."""
        while True:
            try:
                if deleted := await self.purge():
                    log.info("audit retention: deleted %d expired event(s)", deleted)
            except Exception:
                log.exception("audit retention pass failed")
            await anyio.sleep(every)

    async def _delete(self, condition: str, *args: object) -> int:
        deleted = 0
        while True:
            chosen = f"SELECT id FROM audit_events WHERE {condition} LIMIT {CHUNK}"
            ids = [str(r["id"]) for r in await self._db.fetch(chosen, *args)]
            if ids:
                placeholders = ", ".join("?" * len(ids))
                await self._delete_bodies(f"event_id IN ({placeholders})", *ids)
                async with self._db.transaction() as tx:
                    deleted += await tx.execute(f"DELETE FROM audit_events WHERE id IN ({placeholders})", *ids)
            if len(ids) < CHUNK:
                return deleted

    async def _delete_bodies(self, condition: str, *args: object) -> None:
        while True:
            rows = await self._db.fetch(
                f"SELECT event_id, part, offload_key FROM audit_bodies WHERE {condition} LIMIT {CHUNK}", *args)
            gone = []
            for row in rows:
                if row["offload_key"] is not None:
                    try:
                        await self._bodies.delete(row["offload_key"])
                    except BodyStoreError as exc:
                        log.warning("audit retention: offloaded body %s not deleted, kept for the next pass: %s",
                                    row["offload_key"], exc)
                        continue
                gone.append((row["event_id"], row["part"]))
            if gone:
                async with self._db.transaction() as tx:
                    await tx.execute_many("DELETE FROM audit_bodies WHERE event_id = ? AND part = ?", gone)
            if len(rows) < CHUNK or not gone:
                return
