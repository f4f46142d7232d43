"""What several Warden instances share about handshake-era ``/mcp`` sessions.

The directory holds each session's handshake (protocol version, the client's initialize parameters) and the
API key that opened it, so an instance that never saw the session can take it over. The event log holds
every message sent to the client on any of the session's SSE streams, so a stream resumed with
``Last-Event-ID`` — or the session's GET stream — can be served by any instance. In-process adapters serve
a single instance; the Redis adapters make all instances one.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import asdict, dataclass
from typing import Any, Protocol

import anyio
from redis.asyncio import Redis
from redis.exceptions import RedisError

SESSION_TTL = 1800.0  # as the SDK's idle timeout: a session unused this long is gone everywhere
LOG_LENGTH = 2000  # events kept per session: enough to resume a long call, bounded for a chatty one


class SessionStoreUnavailable(Exception):
    """The shared session state could not be reached in time."""


@dataclass(frozen=True, slots=True)
class SessionRecord:
    key_id: str | None
    protocol_version: str
    client_params: dict[str, Any]


@dataclass(frozen=True, slots=True)
class LoggedEvent:
    event_id: str
    stream_id: str
    message: str | None  # None for a priming event (a resumption point with no message)


class SessionDirectory(Protocol):
    async def record(self, session_id: str, record: SessionRecord) -> None: ...

    async def settings(self, session_id: str) -> dict[str, Any]:
        """What the client set on its session (log level, subscriptions), for every instance to apply."""
        ...

    async def save_settings(self, session_id: str, settings: dict[str, Any]) -> None: ...

    async def find(self, session_id: str) -> SessionRecord | None: ...

    async def touch(self, session_id: str) -> None: ...

    async def end(self, session_id: str) -> None: ...


class EventLog(Protocol):
    async def append(self, session_id: str, stream_id: str, message: str | None) -> str: ...

    async def latest(self, session_id: str) -> str:
        """The id after which the next event will come (a position, even in an empty log)."""
        ...

    async def stream_of(self, session_id: str, event_id: str) -> str | None: ...

    async def read_after(self, session_id: str, event_id: str, wait: float) -> list[LoggedEvent]:
        """Events after ``event_id`` on every stream of the session, waiting up to ``wait`` for one."""
        ...

    async def drop(self, session_id: str) -> None: ...


class MemorySessionDirectory:
    def __init__(self) -> None:
        self._records: dict[str, tuple[SessionRecord, float]] = {}
        self._settings: dict[str, dict[str, Any]] = {}

    async def settings(self, session_id: str) -> dict[str, Any]:
        return dict(self._settings.get(session_id, {}))

    async def save_settings(self, session_id: str, settings: dict[str, Any]) -> None:
        self._settings[session_id] = dict(settings)

    async def record(self, session_id: str, record: SessionRecord) -> None:
        self._prune()
        self._records[session_id] = (record, time.monotonic())

    async def find(self, session_id: str) -> SessionRecord | None:
        entry = self._records.get(session_id)
        if entry is None or time.monotonic() - entry[1] > SESSION_TTL:
            return None
        return entry[0]

    async def touch(self, session_id: str) -> None:
        entry = self._records.get(session_id)
        if entry is not None:
            self._records[session_id] = (entry[0], time.monotonic())

    async def end(self, session_id: str) -> None:
        self._records.pop(session_id, None)
        self._settings.pop(session_id, None)

    def _prune(self) -> None:
        now = time.monotonic()
        for session_id in [s for s, (_, seen) in self._records.items() if now - seen > SESSION_TTL]:
            del self._records[session_id]
            self._settings.pop(session_id, None)


class MemoryEventLog:
    """Bounded per session; a session's log is dropped when it ends, or after SESSION_TTL without events
    (a session that expired without a DELETE)."""

    def __init__(self, ttl: float = SESSION_TTL) -> None:
        self._ttl = ttl
        self._events: dict[str, deque[LoggedEvent]] = {}
        self._next: dict[str, int] = {}
        self._grown: dict[str, anyio.Event] = {}
        self._last: dict[str, float] = {}

    def sessions(self) -> int:
        return len(self._events)

    def _prune(self, now: float) -> None:
        for session_id in [s for s, at in self._last.items() if now - at > self._ttl]:
            self._events.pop(session_id, None)
            self._next.pop(session_id, None)
            self._last.pop(session_id, None)

    async def append(self, session_id: str, stream_id: str, message: str | None) -> str:
        now = time.monotonic()
        if session_id not in self._last:
            self._prune(now)
        self._last[session_id] = now
        number = self._next.get(session_id, 1)
        self._next[session_id] = number + 1
        event = LoggedEvent(str(number), stream_id, message)
        self._events.setdefault(session_id, deque(maxlen=LOG_LENGTH)).append(event)
        grown = self._grown.pop(session_id, None)
        if grown is not None:
            grown.set()
        return event.event_id

    async def latest(self, session_id: str) -> str:
        return str(self._next.get(session_id, 1) - 1)

    async def stream_of(self, session_id: str, event_id: str) -> str | None:
        return next((e.stream_id for e in self._events.get(session_id, ()) if e.event_id == event_id), None)

    async def read_after(self, session_id: str, event_id: str, wait: float) -> list[LoggedEvent]:
        after = _number(event_id)
        events = [e for e in self._events.get(session_id, ()) if int(e.event_id) > after]
        if events or wait <= 0:
            return events
        grown = self._grown.setdefault(session_id, anyio.Event())
        with anyio.move_on_after(wait):
            await grown.wait()
        return [e for e in self._events.get(session_id, ()) if int(e.event_id) > after]

    async def drop(self, session_id: str) -> None:
        self._events.pop(session_id, None)
        self._next.pop(session_id, None)
        self._last.pop(session_id, None)
        grown = self._grown.pop(session_id, None)
        if grown is not None:
            grown.set()


def _number(event_id: str) -> int:
    try:
        return int(event_id)
    except ValueError:
        return 0


class RedisSessionDirectory:
    def __init__(self, redis: Redis, timeout: float) -> None:
        self._redis = redis
        self._timeout = timeout

    async def record(self, session_id: str, record: SessionRecord) -> None:
        async with _bounded(self._timeout):
            await self._redis.set(_key(session_id), json.dumps(asdict(record)), ex=int(SESSION_TTL))

    async def find(self, session_id: str) -> SessionRecord | None:
        async with _bounded(self._timeout):
            raw = await self._redis.get(_key(session_id))
        if raw is None:
            return None
        data = json.loads(raw)
        return SessionRecord(data["key_id"], data["protocol_version"], data["client_params"])

    async def touch(self, session_id: str) -> None:
        async with _bounded(self._timeout):
            await self._redis.expire(_key(session_id), int(SESSION_TTL))
            await self._redis.expire(_key(session_id) + ":settings", int(SESSION_TTL))

    async def end(self, session_id: str) -> None:
        async with _bounded(self._timeout):
            await self._redis.delete(_key(session_id), _key(session_id) + ":settings")

    async def settings(self, session_id: str) -> dict[str, Any]:
        async with _bounded(self._timeout):
            raw = await self._redis.get(_key(session_id) + ":settings")
        return dict(json.loads(raw)) if raw else {}

    async def save_settings(self, session_id: str, settings: dict[str, Any]) -> None:
        async with _bounded(self._timeout):
            await self._redis.set(_key(session_id) + ":settings", json.dumps(settings), ex=int(SESSION_TTL))


class RedisEventLog:
    """One Redis stream per session; event ids are the stream's entry ids."""

    def __init__(self, redis: Redis, timeout: float) -> None:
        self._redis = redis
        self._timeout = timeout
        # XREAD BLOCK must return before the client's socket timeout fires.
        self._block_ms = max(10, int(timeout * 1000 * 0.8))

    async def append(self, session_id: str, stream_id: str, message: str | None) -> str:
        key = _log_key(session_id)
        async with _bounded(self._timeout), self._redis.pipeline(transaction=False) as pipe:
            pipe.xadd(key, {"s": stream_id, "m": "" if message is None else "1" + message},
                      maxlen=LOG_LENGTH, approximate=True)
            pipe.expire(key, int(SESSION_TTL))
            added: Any = await pipe.execute()
        return _text(added[0])

    async def latest(self, session_id: str) -> str:
        async with _bounded(self._timeout):
            entries: Any = await self._redis.xrevrange(_log_key(session_id), count=1)
        return _text(entries[0][0]) if entries else "0-0"

    async def stream_of(self, session_id: str, event_id: str) -> str | None:
        if not _is_entry_id(event_id):
            return None
        async with _bounded(self._timeout):
            entries: Any = await self._redis.xrange(_log_key(session_id), event_id, event_id)
        return _text(entries[0][1][b"s"]) if entries else None

    async def read_after(self, session_id: str, event_id: str, wait: float) -> list[LoggedEvent]:
        if not _is_entry_id(event_id):
            return []
        block = min(self._block_ms, int(wait * 1000)) if wait > 0 else None
        async with _bounded(self._timeout + (block or 0) / 1000):
            read: Any = await self._redis.xread({_log_key(session_id): event_id}, block=block)
        events = []
        for _, entries in read or ():
            for entry_id, fields in entries:
                raw = _text(fields[b"m"])
                events.append(LoggedEvent(_text(entry_id), _text(fields[b"s"]), raw[1:] if raw else None))
        return events

    async def drop(self, session_id: str) -> None:
        async with _bounded(self._timeout):
            await self._redis.delete(_log_key(session_id))


@asynccontextmanager
async def _bounded(seconds: float) -> AsyncIterator[None]:
    """A Redis round trip bounded in time; any failure becomes SessionStoreUnavailable."""
    try:
        with anyio.fail_after(seconds):
            yield
    except TimeoutError as exc:
        raise SessionStoreUnavailable("redis did not answer in time") from exc
    except (RedisError, OSError) as exc:
        raise SessionStoreUnavailable(f"redis: {exc}") from exc


def _key(session_id: str) -> str:
    return f"warden:mcp:session:{session_id}"


def _log_key(session_id: str) -> str:
    return f"warden:mcp:log:{session_id}"


def _text(value: bytes | str) -> str:
    return value.decode() if isinstance(value, bytes) else value


def _is_entry_id(value: str) -> bool:
    first, dash, second = value.partition("-")
    return bool(dash) and first.isdigit() and second.isdigit()
