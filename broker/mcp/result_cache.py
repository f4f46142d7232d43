"""Cached results of tools an admin marked cacheable (``tool_options.<tool>.cache_ttl_seconds``).

The key is the server, the tool, the arguments in canonical JSON and the calling user (or team, for a team
key), so one user's result never answers another's call. Only successful results are stored. The cache is
an optimisation: when Redis is slow or down a lookup is a miss and a store is skipped, never an error.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections import OrderedDict
from typing import Any, Protocol

import anyio
from redis.asyncio import Redis
from redis.exceptions import RedisError

from broker.kernel.identity.models import Principal

log = logging.getLogger(__name__)
MEMORY_ENTRIES = 10_000


def cache_key(server: str, tool: str, arguments: dict[str, Any] | None, principal: Principal,
              upstream_subject: str | None = None) -> str:
    """Per caller: the upstream account a per-user server's call runs as, else the Warden user (or team)."""
    caller = (f"upstream:{upstream_subject}" if upstream_subject
              else f"user:{principal.user.id}" if principal.user else f"team:{principal.team_id}")
    canonical = json.dumps([server, tool, arguments or {}, caller], sort_keys=True, separators=(",", ":"),
                           ensure_ascii=False)
    return "warden:mcp:result:" + hashlib.sha256(canonical.encode()).hexdigest()


class ResultCache(Protocol):
    async def get(self, key: str) -> str | None: ...

    async def put(self, key: str, value: str, ttl_seconds: float) -> None: ...


class MemoryResultCache:
    """In-process, bounded: the oldest entries go first when it is full."""

    def __init__(self, entries: int = MEMORY_ENTRIES) -> None:
        self._entries = entries
        self._items: OrderedDict[str, tuple[str, float]] = OrderedDict()

    async def get(self, key: str) -> str | None:
        item = self._items.get(key)
        if item is None:
            return None
        if item[1] < time.monotonic():
            del self._items[key]
            return None
        return item[0]

    async def put(self, key: str, value: str, ttl_seconds: float) -> None:
        self._items[key] = (value, time.monotonic() + ttl_seconds)
        self._items.move_to_end(key)
        while len(self._items) > self._entries:
            self._items.popitem(last=False)


class RedisResultCache:
    """Shared by every instance; each round trip bounded, failures are misses."""

    def __init__(self, redis: Redis, timeout: float) -> None:
        self._redis = redis
        self._timeout = timeout

    async def get(self, key: str) -> str | None:
        try:
            with anyio.fail_after(self._timeout):
                value = await self._redis.get(key)
        except (TimeoutError, RedisError, OSError) as exc:
            log.warning("MCP result cache unavailable, calling the tool: %s", exc)
            return None
        return value.decode() if isinstance(value, bytes) else value

    async def put(self, key: str, value: str, ttl_seconds: float) -> None:
        try:
            with anyio.fail_after(self._timeout):
                await self._redis.set(key, value, px=max(1, int(ttl_seconds * 1000)))
        except (TimeoutError, RedisError, OSError) as exc:
            log.warning("MCP result cache unavailable, result not stored: %s", exc)
