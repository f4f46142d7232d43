"""Settings changed at run time: one JSON document per name, in the store (the config file gives defaults),
applied on every instance at once through the broadcast."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, Generic, TypeVar

import orjson
from pydantic import BaseModel

from broker.kernel.bus.ports import Broadcast, Message
from broker.kernel.clock import Clock
from broker.kernel.store.ports import Database

Model = TypeVar("Model", bound=BaseModel)


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


class LiveSettings(Generic[Model]):
    """One group of settings: the configuration file's values until changed, then the stored ones; a change is
    stored, applied here and announced, and every other instance reads and applies it on the announcement.
    ``current`` is the value in force; ``follow`` adds what must act on a change."""

    def __init__(self, name: str, model: type[Model], defaults: Model, store: SettingsStore, broadcast: Broadcast
                 ) -> None:
        self._name = name
        self._model = model
        self._store = store
        self._broadcast = broadcast
        self._followers: list[Callable[[Model], None]] = []
        self.current = defaults
        broadcast.subscribe(self._channel, self._changed)

    @property
    def _channel(self) -> str:
        return f"settings.{self._name}"

    async def load(self) -> None:
        if (stored := await self._store.get(self._name)) is not None:
            self._set(self._model.model_validate(stored))

    async def update(self, settings: Model, updated_by: str | None) -> None:
        await self._store.put(self._name, settings.model_dump(mode="json"), updated_by)
        self._set(settings)
        await self._broadcast.publish(self._channel, {})

    def follow(self, apply: Callable[[Model], None]) -> LiveSettings[Model]:
        """Give every new value of these settings to ``apply`` too (readers of ``current`` need nothing)."""
        self._followers.append(apply)
        return self

    def _set(self, settings: Model) -> None:
        self.current = settings
        for apply in self._followers:
            apply(settings)

    async def _changed(self, message: Message) -> None:
        await self.load()
