"""Settings changed at run time: one JSON document per name, in the store (the config file gives defaults)."""

from __future__ import annotations

from typing import Any

import orjson

from broker.kernel.clock import Clock
from broker.kernel.store.ports import Database


class SettingsStore:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def get(self, name: str) -> dict[str, Any] | None:
        row = await self._db.fetchrow("SELECT value FROM settings WHERE name = ?", name)
        return orjson.loads(row["value"]) if row else None

    async def put(self, name: str, value: dict[str, Any], updated_by: str | None) -> None:
        await self._db.execute(
            "INSERT INTO settings (name, value, updated_at, updated_by) VALUES (?, ?, ?, ?)"
            " ON CONFLICT (name) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at,"
            " updated_by = excluded.updated_by",
            name, orjson.dumps(value).decode(), self._clock.now(), updated_by)
