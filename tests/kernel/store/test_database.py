"""The storage port, on SQLite and on PostgreSQL alike."""

from __future__ import annotations

import pytest

from broker.config import WardenConfig
from broker.kernel.store.errors import UniqueViolation
from broker.kernel.store.migrations import migrate
from broker.storage import open_database

INSERT = ("INSERT INTO audit_events (id, at, trace_id, surface, target, action, outcome, duration_ms, detail)"
          " VALUES (?, ?, ?, 'mcp', 't', 'a', 'ok', 1, '{}')")


async def test_execute_many_runs_the_statement_for_every_row_and_rolls_back_with_its_transaction(
        config: WardenConfig) -> None:
    db = await open_database(config)
    try:
        await migrate(db)
        await db.execute_many(INSERT, [(f"many-{i}", float(i), "trace") for i in range(5)])
        with pytest.raises(UniqueViolation):
            async with db.transaction() as tx:
                await tx.execute_many(INSERT, [("many-new", 9.0, "trace"), ("many-0", 9.0, "trace")])
        rows = await db.fetch("SELECT id FROM audit_events WHERE id LIKE 'many-%' ORDER BY id")
        assert [r["id"] for r in rows] == [f"many-{i}" for i in range(5)]  # the failed batch left nothing
    finally:
        await db.close()
