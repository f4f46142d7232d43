"""Audit retention: each kind of event kept its own number of days, the rest the default, 0 forever; deleted in
chunks (on SQLite and PostgreSQL)."""

from __future__ import annotations

import uuid

import pytest

from broker.app import Kernel
from broker.kernel.audit import retention as retention_module
from broker.kernel.audit.adapters.store_search import AuditFilter, StoreAuditSearch
from broker.kernel.audit.retention import DAY, AuditRetention
from tests.conftest import FakeClock


async def add(kernel: Kernel, surface: str, days_ago: float, clock: FakeClock) -> str:
    event_id = uuid.uuid4().hex
    await kernel.db.execute(
        "INSERT INTO audit_events (id, at, trace_id, surface, target, action, outcome, duration_ms, detail)"
        " VALUES (?, ?, ?, ?, 't', 'a', 'ok', 1.0, '{}')", event_id, clock.now() - days_ago * DAY, "t" * 32, surface)
    return event_id


def retention_of(kernel: Kernel, clock: FakeClock, default_days: int, days_by_kind: dict[str, int],
                 body_days: int = 0) -> AuditRetention:
    return AuditRetention(kernel.db, clock, lambda: (default_days, days_by_kind), kernel.bodies, lambda: body_days)


async def add_body(kernel: Kernel, event_id: str, days_ago: float, clock: FakeClock, offloaded: bool) -> str | None:
    key = f"old/{event_id}.request" if offloaded else None
    if key:
        await kernel.bodies.put(key, b"body")
    await kernel.db.execute(
        "INSERT INTO audit_bodies (event_id, part, at, bytes, redactions, content, offload_key)"
        " VALUES (?, 'request', ?, 4, '{}', ?, ?)", event_id, clock.now() - days_ago * DAY,
        None if offloaded else "body", key)
    return key


async def bodies_of(kernel: Kernel) -> set[str]:
    return {str(r["event_id"]) for r in await kernel.db.fetch("SELECT event_id FROM audit_bodies")}


async def remaining(kernel: Kernel) -> set[str]:
    return {str(r["id"]) for r in await kernel.db.fetch("SELECT id FROM audit_events")}


async def test_each_kind_keeps_its_own_period_and_the_rest_the_default(kernel: Kernel, clock: FakeClock) -> None:
    kept = {await add(kernel, "ai", 29, clock), await add(kernel, "mcp", 89, clock),
            await add(kernel, "quota", 364, clock), await add(kernel, "console", 1000, clock)}
    gone = {await add(kernel, "ai", 31, clock), await add(kernel, "mcp", 91, clock),
            await add(kernel, "quota", 366, clock)}
    retention = retention_of(kernel, clock, 365, {"ai": 30, "mcp": 90, "console": 0})
    assert await retention.purge() == len(gone)
    assert await remaining(kernel) == kept
    assert await retention.purge() == 0


async def test_periods_changed_at_run_time_apply_at_the_next_pass(kernel: Kernel, clock: FakeClock) -> None:
    """The periods are read at every pass: what the console's retention settings hold when the purge runs."""
    recent, older = await add(kernel, "ai", 20, clock), await add(kernel, "mcp", 50, clock)
    periods: tuple[int, dict[str, int]] = (365, {})
    retention = AuditRetention(kernel.db, clock, lambda: periods, kernel.bodies, lambda: 0)
    assert await retention.purge() == 0
    periods = (30, {"ai": 10})
    assert await retention.purge() == 2 and await remaining(kernel) == set()
    assert recent != older


async def test_forever_keeps_everything_and_large_purges_go_in_chunks(
        kernel: Kernel, clock: FakeClock, monkeypatch: pytest.MonkeyPatch) -> None:
    old = {await add(kernel, "ai", 400, clock) for _ in range(7)}
    assert await retention_of(kernel, clock, 0, {}).purge() == 0
    monkeypatch.setattr(retention_module, "CHUNK", 3)
    assert await retention_of(kernel, clock, 365, {}).purge() == 7
    assert not await remaining(kernel) & old
    assert await StoreAuditSearch(kernel.db).events(AuditFilter(surface="ai"), 100) == []


async def test_bodies_go_after_their_own_shorter_period_and_with_their_event(kernel: Kernel,
                                                                           clock: FakeClock) -> None:
    fresh, stale, expired = [await add(kernel, "ai", days, clock) for days in (5, 40, 400)]
    keys = {}
    for event_id, days in ((fresh, 5), (stale, 40), (expired, 400)):
        await add_body(kernel, event_id, days, clock, offloaded=False)
    keys["stale"] = await add_body(kernel, stale + "x", 40, clock, offloaded=True)
    keys["fresh"] = await add_body(kernel, fresh + "x", 5, clock, offloaded=True)
    assert await retention_of(kernel, clock, 365, {}, body_days=30).purge() == 1  # the 400-day-old event
    assert await remaining(kernel) == {fresh, stale}  # metadata outlives the bodies
    assert await bodies_of(kernel) == {fresh, fresh + "x"}
    offloaded = kernel.config.server.data_dir / "audit-bodies"
    assert not (offloaded / str(keys["stale"])).exists() and (offloaded / str(keys["fresh"])).exists()


async def test_an_event_purged_takes_its_bodies_even_when_bodies_live_as_long_as_events(
        kernel: Kernel, clock: FakeClock) -> None:
    old = await add(kernel, "mcp", 100, clock)
    key = await add_body(kernel, old, 100, clock, offloaded=True)
    assert await retention_of(kernel, clock, 90, {}, body_days=0).purge() == 1
    assert await bodies_of(kernel) == set()
    assert not (kernel.config.server.data_dir / "audit-bodies" / str(key)).exists()
