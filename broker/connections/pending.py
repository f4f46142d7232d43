"""Authorizations in flight, keyed by their ``state``: single use, expiring (Redis when configured, else the store).

The state itself is never stored, only its SHA-256: a leaked table or keyspace does not let anyone complete
someone else's authorization. ``take`` removes the entry in the same step that reads it, so a replayed
state finds nothing, on any instance.
"""

from __future__ import annotations

from typing import Protocol

from redis.asyncio import Redis
from redis.exceptions import RedisError

from broker.kernel.clock import Clock
from broker.kernel.crypto import sha256_hex
from broker.kernel.store.ports import Database

STATE_TTL = 600.0  # ten minutes to log in and consent upstream
_PREFIX = "warden:oauth:state:"


class PendingUnavailable(Exception):
    """The shared store of pending authorizations could not be reached."""


class PendingAuthorizations(Protocol):
    async def put(self, state: str, payload: str, ttl: float = STATE_TTL) -> None: ...

    async def take(self, state: str) -> str | None:
        """The payload stored under ``state``, removed; None when unknown, used or expired."""
        ...


class StorePendingAuthorizations:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def put(self, state: str, payload: str, ttl: float = STATE_TTL) -> None:
        now = self._clock.now()
        await self._db.execute("DELETE FROM oauth_states WHERE expires_at < ?", now)
        await self._db.execute("INSERT INTO oauth_states (state_hash, payload, expires_at) VALUES (?, ?, ?)",
                               sha256_hex(state), payload, now + ttl)

    async def take(self, state: str) -> str | None:
        async with self._db.transaction() as tx:  # on the writing connection: reading it is removing it
            row = await tx.fetchrow("DELETE FROM oauth_states WHERE state_hash = ? RETURNING payload, expires_at",
                                    sha256_hex(state))
        if row is None or float(row["expires_at"]) < self._clock.now():
            return None
        return str(row["payload"])


class RedisPendingAuthorizations:
    def __init__(self, redis: Redis, timeout: float) -> None:
        self._redis = redis
        self._timeout = timeout

    async def put(self, state: str, payload: str, ttl: float = STATE_TTL) -> None:
        try:
            await self._redis.set(_PREFIX + sha256_hex(state), payload, px=int(ttl * 1000))
        except (RedisError, OSError, TimeoutError) as exc:
            raise PendingUnavailable(f"redis: {exc}") from exc

    async def take(self, state: str) -> str | None:
        try:
            value = await self._redis.getdel(_PREFIX + sha256_hex(state))
        except (RedisError, OSError, TimeoutError) as exc:
            raise PendingUnavailable(f"redis: {exc}") from exc
        return value.decode() if isinstance(value, bytes) else value
