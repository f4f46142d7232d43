"""Audit retention: each kind of event kept its own number of days, the rest the default, 0 forever; deleted in
chunks (on SQLite and PostgreSQL)."""

from __future__ import annotations

import uuid

import pytest

from broker.app import Kernel
from broker.kernel.audit import retention as retention_module
from broker.kernel.audit.adapters.store import AuditQuery
from broker.kernel.audit.retention import DAY, AuditRetention
from tests.conftest import FakeClock


async def add(kernel: Kernel, surface: str, days_ago: float, clock: FakeClock) -> str:
    event_id = uuid.uuid4().hex
    await kernel.db.execute(
        "INSERT INTO audit_events (id, at, trace_id, surface, target, action, outcome, duration_ms, detail)"
        " VALUES (?, ?, ?, ?, 't', 'a', 'ok', 1.0, '{}')", event_id, clock.now() - days_ago * DAY, "t" * 32, surface)
    return event_id


async def remaining(kernel: Kernel) -> set[str]:
    return {str(r["id"]) for r in await kernel.db.fetch("SELECT id FROM audit_events")}


async def test_each_kind_keeps_its_own_period_and_the_rest_the_default(kernel: Kernel, clock: FakeClock) -> None:
    kept = {await add(kernel, "ai", 29, clock), await add(kernel, "mcp", 89, clock),
            await add(kernel, "quota", 364, clock), await add(kernel, "console", 1000, clock)}
    gone = {await add(kernel, "ai", 31, clock), await add(kernel, "mcp", 91, clock),
            await add(kernel, "quota", 366, clock)}
    retention = AuditRetention(kernel.db, clock, 365, {"ai": 30, "mcp": 90, "console": 0})
    assert await retention.purge() == len(gone)
    assert await remaining(kernel) == kept
    assert await retention.purge() == 0


async def test_forever_keeps_everything_and_large_purges_go_in_chunks(
        kernel: Kernel, clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    old = {await add(kernel, "ai", 400, clock) for _ in range(7)}
    assert await AuditRetention(kernel.db, clock, 0, {}).purge() == 0
    monkeypatch.setattr(retention_module, "CHUNK", 3)
    assert await AuditRetention(kernel.db, clock, 365, {}).purge() == 7
    assert not await remaining(kernel) & old
    assert await AuditQuery(kernel.db).recent("ai") == []
