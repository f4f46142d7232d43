"""Audit retention: events older than their kind's retention period are deleted, once a day.

The kind is the event's surface (``ai``, ``mcp``, ``quota``...); each may have its own period, the others
share the default; 0 keeps events forever. Deleting runs in chunks so a first purge over a large table never
holds the database's write lock for long (SQLite has one writer).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping

import anyio

from broker.kernel.clock import Clock
from broker.kernel.store.ports import Database

log = logging.getLogger(__name__)
DAY = 86_400.0
CHUNK = 5_000


class AuditRetention:
    def __init__(self, db: Database, clock: Clock, default_days: int, days_by_kind: Mapping[str, int]) -> None:
        self._db = db
        self._clock = clock
        self._default_days = default_days
        self._days_by_kind = dict(days_by_kind)

    async def purge(self) -> int:
        """Delete every expired event now; returns how many went."""
        now = self._clock.now()
        deleted = 0
        for kind, days in self._days_by_kind.items():
            if days:
                deleted += await self._delete("surface = ? AND at < ?", kind, now - days * DAY)
        if self._default_days:
            others = list(self._days_by_kind)
            placeholders = ", ".join("?" * len(others))
            condition = f"surface NOT IN ({placeholders}) AND at < ?" if others else "at < ?"
            deleted += await self._delete(condition, *others, now - self._default_days * DAY)
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
            async with self._db.transaction() as tx:
                count = await tx.execute(
                    f"DELETE FROM audit_events WHERE id IN (SELECT id FROM audit_events WHERE {condition}"
                    f" LIMIT {CHUNK})", *args)
            deleted += count
            if count < CHUNK:
                return deleted
