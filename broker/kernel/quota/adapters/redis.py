"""Redis counters for several instances: one Lua script checks and counts all of a request's rules in one
round trip, so concurrent instances never admit more than a limit.

Every call is bounded by a short timeout. After a failure the store reports itself down at once (no
further waiting) until ``healthy()`` — probed in the background — sees Redis answer again.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import TypeVar

import anyio
from redis.asyncio import BlockingConnectionPool, Redis
from redis.backoff import NoBackoff
from redis.exceptions import RedisError
from redis.retry import Retry

from broker.kernel.quota.errors import CounterStoreDown
from broker.kernel.quota.ports import Add, AdmitOutcome, Check, Slot

_PREFIX = "warden:quota:"
T = TypeVar("T")

# Reads one counter: a window hash {bucket -> amount} summed over its last 60 buckets in bucket order
# (pruning older fields), or a budget string. Mirrors MemoryCounters exactly.
_READ = """
local function read(key, is_window, bucket)
  if is_window == '0' then
    return tonumber(redis.call('GET', key) or '0'), -1
  end
  local flat = redis.call('HGETALL', key)
  local live = {}
  for j = 1, #flat, 2 do
    local b = tonumber(flat[j])
    if b > bucket - 60 then
      live[#live + 1] = {b, tonumber(flat[j + 1])}
    else
      redis.call('HDEL', key, flat[j])
    end
  end
  table.sort(live, function(x, y) return x[1] < y[1] end)
  local sum = 0
  for _, entry in ipairs(live) do sum = sum + entry[2] end
  if #live == 0 then return 0, -1 end
  return sum, live[1][1]
end
local function add(key, is_window, bucket, amount, ttl)
  if is_window == '1' then
    redis.call('HINCRBYFLOAT', key, bucket, amount)
  else
    redis.call('INCRBYFLOAT', key, amount)
  end
  redis.call('EXPIRE', key, ttl)
end
local function fmt(x) return string.format('%.17g', x) end
"""

# ARGV per check (6 values): is_window, bucket, cost, limit, estimate ('' for none), ttl.
_ADMIT = _READ + """
local used, oldest = {}, {}
for i = 1, #KEYS do
  local a = (i - 1) * 6
  used[i], oldest[i] = read(KEYS[i], ARGV[a + 1], tonumber(ARGV[a + 2]))
end
local failed = 0
for i = 1, #KEYS do
  local a = (i - 1) * 6
  local cost, limit, estimate = tonumber(ARGV[a + 3]), tonumber(ARGV[a + 4]), ARGV[a + 5]
  local ok
  if cost > 0 then
    ok = used[i] + cost <= limit
  else
    ok = used[i] < limit and (estimate == '' or used[i] + tonumber(estimate) <= limit)
  end
  if not ok then failed = i break end
end
if failed == 0 then
  for i = 1, #KEYS do
    local a = (i - 1) * 6
    local cost = tonumber(ARGV[a + 3])
    if cost > 0 then add(KEYS[i], ARGV[a + 1], ARGV[a + 2], cost, ARGV[a + 6]) end
  end
end
local reply = {tostring(failed)}
for i = 1, #KEYS do reply[#reply + 1] = fmt(used[i]); reply[#reply + 1] = tostring(oldest[i]) end
return reply
"""

# ARGV per add (4 values): is_window, bucket, amount, ttl.
_CHARGE = _READ + """
local reply = {}
for i = 1, #KEYS do
  local a = (i - 1) * 4
  local before = read(KEYS[i], ARGV[a + 1], tonumber(ARGV[a + 2]))
  add(KEYS[i], ARGV[a + 1], ARGV[a + 2], ARGV[a + 3], ARGV[a + 4])
  reply[#reply + 1] = fmt(before)
  reply[#reply + 1] = fmt(before + tonumber(ARGV[a + 3]))
end
return reply
"""

_READ_ONLY = _READ + """
local reply = {}
for i = 1, #KEYS do
  local a = (i - 1) * 2
  local value = read(KEYS[i], ARGV[a + 1], tonumber(ARGV[a + 2]))
  reply[#reply + 1] = fmt(value)
end
return reply
"""


def quota_redis(url: str, timeout: float, max_connections: int = 256) -> Redis:
    """A client for the hot path: short socket timeouts, no retries, and a pool that queues (bounded by the
    timeout) instead of failing when every connection is busy."""
    pool = BlockingConnectionPool.from_url(
        url, max_connections=max_connections, timeout=timeout, socket_timeout=timeout,
        socket_connect_timeout=timeout, retry=Retry(NoBackoff(), 0),
    )
    return Redis.from_pool(pool)  # closing the client closes its pool


def _flag(slot: Slot) -> str:
    return "1" if slot.is_window else "0"


class RedisCounters:
    """Counters in Redis, shared by every instance."""

    def __init__(self, redis: Redis, timeout: float, prefix: str = _PREFIX) -> None:
        self._prefix = prefix
        self._redis = redis
        self._timeout = timeout
        self._admit = redis.register_script(_ADMIT)
        self._charge = redis.register_script(_CHARGE)
        self._read = redis.register_script(_READ_ONLY)
        self._down = False

    async def admit(self, checks: list[Check]) -> AdmitOutcome:
        args: list[str | int | float] = []
        for c in checks:
            args += [_flag(c.slot), c.slot.bucket, c.cost, c.limit, "" if c.estimate is None else c.estimate,
                     c.slot.ttl]
        reply = await self._call(self._admit, [self._prefix + c.slot.key for c in checks], args)
        failed = int(reply[0])
        used = tuple(float(reply[1 + 2 * i]) for i in range(len(checks)))
        oldest = tuple(None if int(reply[2 + 2 * i]) < 0 else int(reply[2 + 2 * i]) for i in range(len(checks)))
        return AdmitOutcome(failed == 0, failed - 1 if failed else None, used, oldest)

    async def charge(self, adds: list[Add]) -> list[tuple[float, float]]:
        args: list[str | int | float] = []
        for a in adds:
            args += [_flag(a.slot), a.slot.bucket, a.amount, a.slot.ttl]
        reply = await self._call(self._charge, [self._prefix + a.slot.key for a in adds], args)
        return [(float(reply[2 * i]), float(reply[2 * i + 1])) for i in range(len(adds))]

    async def read(self, slots: list[Slot]) -> list[float]:
        args: list[str | int | float] = []
        for slot in slots:
            args += [_flag(slot), slot.bucket]
        reply = await self._call(self._read, [self._prefix + s.key for s in slots], args)
        return [float(v) for v in reply]

    async def claim_alert(self, key: str, ttl: int) -> bool:
        return bool(await self._guarded(lambda: self._redis.set(self._prefix + "alert:" + key, 1, nx=True, ex=ttl)))

    async def prepare(self, deadline: float = 2.0) -> None:
        """Open a connection and load the scripts before traffic arrives, so the first request does not pay
        for them inside its short timeout; raises CounterStoreDown when Redis does not answer."""
        try:
            with anyio.fail_after(deadline):
                for script in (self._admit, self._charge, self._read):
                    script.sha = await self._redis.script_load(script.script)
        except (RedisError, OSError, TimeoutError) as exc:
            raise CounterStoreDown(str(exc) or "timed out") from exc

    async def healthy(self) -> bool:
        # Only a store marked down is probed. A probe of a working store proved nothing a request would not, and
        # a probe that merely waited behind a busy event loop (a start-up, a large body) used to mark Redis down,
        # refusing requests in fail-closed mode though Redis answered all along. Requests mark it down themselves.
        if not self._down:
            return True
        try:
            with anyio.fail_after(self._timeout * 4):
                await self._redis.ping()
            if self._down:
                await self.prepare(self._timeout * 10)  # a restarted Redis has lost the scripts
        except (RedisError, OSError, TimeoutError, CounterStoreDown):
            self._down = True
            return False
        self._down = False
        return True

    async def _call(self, script: object, keys: list[str], args: list[str | int | float]) -> list[str]:
        if not keys:
            return ["0"]
        reply = await self._guarded(lambda: script(keys=keys, args=args))  # type: ignore[operator]
        return [v.decode() if isinstance(v, bytes) else str(v) for v in reply]

    async def _guarded(self, request: Callable[[], Awaitable[T]]) -> T:
        """One Redis round trip under the deadline; a failure marks the store down until it answers again."""
        if self._down:
            raise CounterStoreDown("redis is down")
        try:
            with anyio.fail_after(self._timeout):
                return await request()
        except (RedisError, OSError, TimeoutError) as exc:
            self._down = True
            raise CounterStoreDown(str(exc) or "timed out") from exc
