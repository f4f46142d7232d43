"""The shared session directory and event log, against the in-process adapters and a real Redis."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import anyio
import pytest
from redis.asyncio import Redis

from broker.mcp.session_store import (
    EventLog,
    MemoryEventLog,
    MemorySessionDirectory,
    RedisEventLog,
    RedisSessionDirectory,
    SessionDirectory,
    SessionRecord,
    SessionStoreUnavailable,
)
from tests.conftest import REDIS_URL


@pytest.fixture(params=["memory", "redis"])
async def stores(request: pytest.FixtureRequest) -> AsyncIterator[tuple[SessionDirectory, EventLog]]:
    if request.param == "memory":
        yield MemorySessionDirectory(), MemoryEventLog()
        return
    client = Redis.from_url(REDIS_URL, socket_timeout=2)
    try:
        yield RedisSessionDirectory(client, 2), RedisEventLog(client, 2)
    finally:
        await client.aclose()


async def test_a_recorded_session_is_found_until_it_ends(stores: tuple[SessionDirectory, EventLog]) -> None:
    directory, _ = stores
    session = uuid.uuid4().hex
    record = SessionRecord("key-1", "2025-11-25", {"protocolVersion": "2025-11-25", "capabilities": {}})
    assert await directory.find(session) is None
    await directory.record(session, record)
    await directory.touch(session)
    assert await directory.find(session) == record
    await directory.end(session)
    assert await directory.find(session) is None


async def test_events_replay_per_stream_in_order(stores: tuple[SessionDirectory, EventLog]) -> None:
    _, events = stores
    session = uuid.uuid4().hex
    start = await events.latest(session)
    priming = await events.append(session, "7", None)
    first = await events.append(session, "7", '{"n": 1}')
    await events.append(session, "_GET_stream", '{"n": "other"}')
    await events.append(session, "7", '{"n": 2}')
    assert await events.stream_of(session, priming) == "7"
    assert await events.stream_of(session, "999999-0") is None
    after = await events.read_after(session, priming, wait=0)
    assert [(e.stream_id, e.message) for e in after] == [
        ("7", '{"n": 1}'), ("_GET_stream", '{"n": "other"}'), ("7", '{"n": 2}')]
    assert [e.message for e in await events.read_after(session, first, wait=0)] == ['{"n": "other"}', '{"n": 2}']
    assert len(await events.read_after(session, start, wait=0)) == 4
    await events.drop(session)
    assert await events.read_after(session, priming, wait=0) == []


async def test_a_follower_is_woken_by_the_next_event(stores: tuple[SessionDirectory, EventLog]) -> None:
    _, events = stores
    session = uuid.uuid4().hex
    position = await events.latest(session)
    seen = []

    async def follow() -> None:
        seen.extend(await events.read_after(session, position, wait=1.0))

    async with anyio.create_task_group() as group:
        group.start_soon(follow)
        await anyio.sleep(0.1)
        await events.append(session, "1", '{"late": true}')
    assert [e.message for e in seen] == ['{"late": true}']


async def test_an_unreachable_redis_is_a_typed_error_within_the_bound() -> None:
    client = Redis.from_url("redis://127.0.0.1:1/0", socket_timeout=0.2, socket_connect_timeout=0.2)
    try:
        with anyio.fail_after(2):
            with pytest.raises(SessionStoreUnavailable):
                await RedisSessionDirectory(client, 0.3).find("x")
            with pytest.raises(SessionStoreUnavailable):
                await RedisEventLog(client, 0.3).append("x", "1", None)
    finally:
        await client.aclose()


async def test_settings_are_kept_with_the_session_and_end_with_it(stores: tuple[SessionDirectory, EventLog]) -> None:
    directory, _ = stores
    session = uuid.uuid4().hex
    await directory.record(session, SessionRecord("k", "2025-11-25", {}))
    assert await directory.settings(session) == {}
    await directory.save_settings(session, {"level": "warning", "subscriptions": [["demo", "demo://a", "x"]]})
    assert await directory.settings(session) == {"level": "warning", "subscriptions": [["demo", "demo://a", "x"]]}
    await directory.end(session)
    assert await directory.settings(session) == {}


async def test_the_sdk_event_store_port_replays_one_stream(stores: tuple[SessionDirectory, EventLog]) -> None:
    import mcp_types as types
    from mcp.server.streamable_http import EventMessage

    from broker.mcp.session_manager import _LoggedEvents

    _, events = stores
    store = _LoggedEvents(events, uuid.uuid4().hex)
    first = await store.store_event("5", None)
    await store.store_event("5", types.JSONRPCNotification(jsonrpc="2.0", method="notifications/progress",
                                                           params={"progressToken": 1, "progress": 1}))
    await store.store_event("6", types.JSONRPCNotification(jsonrpc="2.0", method="notifications/other"))
    replayed: list[EventMessage] = []

    async def collect(message: EventMessage) -> None:
        replayed.append(message)

    assert await store.replay_events_after(first, collect) == "5"
    assert [m.message.method for m in replayed] == ["notifications/progress"]  # type: ignore[union-attr]
    assert await store.replay_events_after("no-such-event", collect) is None


async def test_the_in_process_log_forgets_sessions_that_went_quiet() -> None:
    events = MemoryEventLog(ttl=0.05)
    await events.append("old", "1", "{}")
    await anyio.sleep(0.1)
    await events.append("new", "1", "{}")  # a new session's first event prunes the quiet ones
    assert events.sessions() == 1
    assert await events.read_after("old", "0", wait=0) == []
