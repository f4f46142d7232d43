"""Kernel events (a key about to expire, a key disabled for inactivity): recorded, then broadcast.

Later issues (alerting, the console dashboard) subscribe to ``EVENTS_CHANNEL`` or read the table.
"""

from __future__ import annotations

import json
import logging
import uuid
from dataclasses import dataclass
from typing import Any

from broker.kernel.bus.ports import Broadcast
from broker.kernel.clock import Clock
from broker.kernel.store.ports import Database

EVENTS_CHANNEL = "kernel.events"
log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class KernelEvent:
    """Something about the kernel's records that someone may want to be told."""

    id: str
    at: float
    kind: str
    subject_id: str | None
    detail: dict[str, Any]


class KernelEvents:
    """Stores each event, then publishes it to every instance."""

    def __init__(self, db: Database, broadcast: Broadcast, clock: Clock) -> None:
        self._db = db
        self._broadcast = broadcast
        self._clock = clock

    async def emit(self, kind: str, subject_id: str | None, detail: dict[str, Any]) -> KernelEvent:
        event = KernelEvent(uuid.uuid4().hex, self._clock.now(), kind, subject_id, detail)
        await self._db.execute(
            "INSERT INTO kernel_events (id, at, kind, subject_id, detail) VALUES (?, ?, ?, ?, ?)",
            event.id, event.at, kind, subject_id, json.dumps(detail),
        )
        log.info("kernel event %s subject=%s", kind, subject_id)
        await self._broadcast.publish(EVENTS_CHANNEL, {
            "id": event.id, "at": event.at, "kind": kind, "subject_id": subject_id, "detail": detail,
        })
        return event

    async def recent(self, kind: str | None = None, limit: int = 100) -> list[KernelEvent]:
        if kind is None:
            rows = await self._db.fetch("SELECT * FROM kernel_events ORDER BY at DESC LIMIT ?", limit)
        else:
            rows = await self._db.fetch(
                "SELECT * FROM kernel_events WHERE kind = ? ORDER BY at DESC LIMIT ?", kind, limit
            )
        return [KernelEvent(r["id"], r["at"], r["kind"], r["subject_id"], json.loads(r["detail"])) for r in rows]
