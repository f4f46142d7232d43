"""Tool calls as they run, for consoles that watch them: each call's start, progress events and end.

Steps travel on the broadcast, so a console served by any instance sees the calls of every instance. They are
published only while some console watches (a watching console says so every few seconds; every instance then
publishes for ``WATCH_SECONDS``): a call nobody watches costs one clock read. The audit event, written when the
call ends, stays the record; this is the view of what is happening now.
"""

from __future__ import annotations

import contextlib
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import anyio
from anyio.streams.memory import MemoryObjectReceiveStream, MemoryObjectSendStream

from broker.kernel.bus.ports import Broadcast, Message
from broker.kernel.identity.models import Principal

CHANNEL = "mcp.calls.live"
WATCH_CHANNEL = "mcp.calls.watch"
WATCH_SECONDS = 30.0
WATCH_REPEAT = 10.0  # a watching console renews its watch this often, well within WATCH_SECONDS
BUFFER = 1000  # steps a slow console may fall behind by before it misses some (never the caller's concern)


class LiveCalls:
    def __init__(self, broadcast: Broadcast) -> None:
        self._broadcast = broadcast
        self._watched_until = 0.0
        self._listeners: set[MemoryObjectSendStream[Message]] = set()
        broadcast.subscribe(CHANNEL, self._deliver)
        broadcast.subscribe(WATCH_CHANNEL, self._watch)

    def start(self, principal: Principal, server: str, tool: str, trace_id: str) -> LiveCall | None:
        """A call's steps to publish, or None while no console watches."""
        if time.monotonic() >= self._watched_until:
            return None
        return LiveCall(self._broadcast, {
            "call": uuid.uuid4().hex, "at": time.time(), "server": server, "tool": tool, "trace_id": trace_id,
            "user_id": principal.user.id if principal.user else None,
            "api_key_id": principal.key.id if principal.key else None,
            "team_id": principal.team_id})

    @asynccontextmanager
    async def watch(self) -> AsyncIterator[MemoryObjectReceiveStream[Message]]:
        """Every instance's call steps from now until the block ends."""
        send, receive = anyio.create_memory_object_stream[Message](BUFFER)
        self._listeners.add(send)
        try:
            await self._broadcast.publish(WATCH_CHANNEL, {})  # before the first step is awaited
            async with anyio.create_task_group() as group:
                group.start_soon(self._keep_watching)
                try:
                    yield receive
                finally:
                    group.cancel_scope.cancel()
        finally:
            self._listeners.discard(send)
            send.close()
            receive.close()

    async def _keep_watching(self) -> None:
        while True:
            await anyio.sleep(WATCH_REPEAT)
            await self._broadcast.publish(WATCH_CHANNEL, {})

    async def _watch(self, message: Message) -> None:
        self._watched_until = time.monotonic() + WATCH_SECONDS

    async def _deliver(self, message: Message) -> None:
        for listener in list(self._listeners):
            with contextlib.suppress(anyio.WouldBlock, anyio.BrokenResourceError, anyio.ClosedResourceError):
                listener.send_nowait(message)


class LiveCall:
    """One call's steps as they happen, each sent with what identifies the call."""

    def __init__(self, broadcast: Broadcast, call: dict[str, Any]) -> None:
        self._broadcast = broadcast
        self._call = call
        self._started = time.perf_counter()

    async def step(self, event: str, **fields: Any) -> None:
        step = {"t_ms": round((time.perf_counter() - self._started) * 1000, 3), "event": event, **fields}
        # The broadcast keeps its own failures (a Redis outage) from the publisher: the call goes on.
        await self._broadcast.publish(CHANNEL, {**self._call, "step": step})
