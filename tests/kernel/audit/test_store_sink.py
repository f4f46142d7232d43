from __future__ import annotations

import uuid

import anyio

from broker.app import Kernel
from broker.kernel.audit.adapters.store import AuditQuery, StoreAuditSink
from broker.kernel.audit.events import AuditEvent


def event(target: str = "mcp_server:demo") -> AuditEvent:
    return AuditEvent(uuid.uuid4().hex, 1.0, "t" * 32, "mcp", "u1", None, "k1", target, "tools/call:demo__x",
                      "ok", None, 1.5, {"timeline": [{"t_ms": 0, "event": "start"}]})


async def test_every_queued_event_is_written_before_the_writer_returns(kernel: Kernel) -> None:
    sink = StoreAuditSink(kernel.db, queue_size=10)
    events = [event() for _ in range(500)]
    async with anyio.create_task_group() as group:
        group.start_soon(sink.run)
        for item in events:  # more than the queue holds: record waits instead of dropping
            await sink.record(item)
        sink.close()
        with anyio.fail_after(10):
            await sink.drained.wait()
    stored = await AuditQuery(kernel.db).recent("mcp", 1000)
    assert sorted(e["id"] for e in stored) == sorted(e.id for e in events)
    assert stored[0]["detail"]["timeline"][0]["event"] == "start"


async def test_replaying_an_event_does_not_duplicate_it(kernel: Kernel) -> None:
    sink = StoreAuditSink(kernel.db)
    item = event()
    async with anyio.create_task_group() as group:
        group.start_soon(sink.run)
        await sink.record(item)
        await sink.record(item)
        sink.close()
        with anyio.fail_after(10):
            await sink.drained.wait()
    assert len(await AuditQuery(kernel.db).recent("mcp")) == 1
    assert (await AuditQuery(kernel.db).get(item.id)) is not None


async def test_events_recorded_and_closed_before_the_writer_starts_are_still_written(kernel: Kernel) -> None:
    sink = StoreAuditSink(kernel.db)
    item = event()
    await sink.record(item)  # the writer has not run yet: the event waits in the queue
    sink.close()
    with anyio.fail_after(10):
        await sink.run()
    assert sink.drained.is_set()
    assert (await AuditQuery(kernel.db).get(item.id)) is not None


async def test_a_writer_started_after_an_empty_sink_was_closed_returns_at_once(kernel: Kernel) -> None:
    sink = StoreAuditSink(kernel.db)
    sink.close()
    with anyio.fail_after(5):
        await sink.run()
    assert sink.drained.is_set()
