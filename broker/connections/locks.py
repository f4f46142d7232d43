"""One refresh per credential at a time, across every Warden instance.

Concurrent calls that find a token about to expire queue on an in-process lock first (one waiter per
instance reaches the shared lock), then on the shared lock: a Redis key set with NX and an expiry when Redis
is configured, else a row of ``credential_locks``. A holder that died leaves a lock that expires on its own.
Whoever gets the lock reads the credential again before refreshing: another instance may have done it.
"""

from __future__ import annotations

import contextlib
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Protocol

import anyio
from redis.asyncio import Redis
from redis.exceptions import RedisError

from broker.kernel.clock import Clock
from broker.kernel.store.errors import UniqueViolation
from broker.kernel.store.ports import Database

HOLD = 30.0  # a refresh never takes longer than this; a crashed holder's lock is free again after it
WAIT = 35.0
_POLL = 0.05
_RELEASE = "if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end"


class LockTimeout(Exception):
    """The credential's lock stayed held longer than a refresh can take."""


class SharedLock(Protocol):
    async def acquire(self, name: str, holder: str) -> bool: ...

    async def release(self, name: str, holder: str) -> None: ...


class StoreLock:
    def __init__(self, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock

    async def acquire(self, name: str, holder: str) -> bool:
        now = self._clock.now()
        await self._db.execute("DELETE FROM credential_locks WHERE name = ? AND expires_at < ?", name, now)
        try:
            await self._db.execute("INSERT INTO credential_locks (name, holder, expires_at) VALUES (?, ?, ?)",
                                   name, holder, now + HOLD)
        except UniqueViolation:
            return False
        return True

    async def release(self, name: str, holder: str) -> None:
        await self._db.execute("DELETE FROM credential_locks WHERE name = ? AND holder = ?", name, holder)


class RedisLock:
    def __init__(self, redis: Redis) -> None:
        self._redis = redis

    async def acquire(self, name: str, holder: str) -> bool:
        try:
            return bool(await self._redis.set("warden:lock:" + name, holder, nx=True, px=int(HOLD * 1000)))
        except (RedisError, OSError) as exc:
            raise LockTimeout(f"redis: {exc}") from exc

    async def release(self, name: str, holder: str) -> None:
        with contextlib.suppress(RedisError, OSError):  # it expires on its own
            await self._redis.eval(_RELEASE, 1, "warden:lock:" + name, holder)


class CredentialLocks:
    def __init__(self, shared: SharedLock) -> None:
        self._shared = shared
        self._local: dict[str, anyio.Lock] = {}

    @asynccontextmanager
    async def hold(self, name: str) -> AsyncIterator[None]:
        local = self._local.setdefault(name, anyio.Lock())
        async with local:
            holder = uuid.uuid4().hex
            with anyio.move_on_after(WAIT) as waited:
                # Another instance holds it: nothing here can signal its release, so poll.
                while not await self._shared.acquire(name, holder):  # noqa: ASYNC110
                    await anyio.sleep(_POLL)
            if waited.cancelled_caught:
                raise LockTimeout(f"the lock on {name} stayed held for {WAIT:g}s")
            try:
                yield
            finally:
                with anyio.CancelScope(shield=True):
                    await self._shared.release(name, holder)
            if not local.statistics().tasks_waiting:
                self._local.pop(name, None)
