"""The storage port, on SQLite and on PostgreSQL alike."""

from __future__ import annotations

import pytest

from broker.config import WardenConfig
from broker.kernel.store.errors import UniqueViolation, UnstorableText
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


COLUMNS = ("id", "at", "trace_id", "surface", "target", "action", "outcome", "duration_ms", "detail")


def row(key: str, at: float = 1.0) -> tuple[object, ...]:
    return (key, at, "trace", "mcp", "t", "a", "ok", 1, "{}")


async def test_insert_new_leaves_out_rows_already_stored_and_goes_with_its_transaction(config: WardenConfig) -> None:
    """The bulk path: thousands of rows at once (more than one SQLite statement holds), those whose key is stored
    already, or twice in the batch, left out; inside a transaction it commits or rolls back with it."""
    db = await open_database(config)
    try:
        await migrate(db)
        await db.insert_new("audit_events", COLUMNS, [row(f"bulk-{i:05d}", i) for i in range(0, 4000, 4)], "id")
        # Outside a transaction too (PostgreSQL first copies the rows straight in, which a stored key fails)
        await db.insert_new("audit_events", COLUMNS, [row(f"bulk-{i:05d}", i) for i in range(0, 4000, 2)]
                            + [row("bulk-00002", -3)], "id")
        batch = [row(f"bulk-{i:05d}", -1) for i in range(5000)] + [row("bulk-00001", -2)]
        async with db.transaction() as tx:
            await tx.insert_new("audit_events", COLUMNS, batch, "id")
            await tx.insert_new("audit_events", COLUMNS, [row("bulk-last")], "id")  # twice in one transaction
        rows = await db.fetch("SELECT id, at, duration_ms FROM audit_events WHERE id LIKE 'bulk-%' ORDER BY id")
        assert [r["id"] for r in rows] == [*(f"bulk-{i:05d}" for i in range(5000)), "bulk-last"]
        assert [r["at"] for r in rows[:6:2]] == [0.0, 2.0, 4.0] and rows[3]["at"] == -1.0  # stored rows kept
        assert rows[1]["at"] in (-1.0, -2.0)  # one of the pair
        assert rows[0]["duration_ms"] == 1.0
        with pytest.raises(RuntimeError):
            async with db.transaction() as tx:
                await tx.insert_new("audit_events", COLUMNS, [row("bulk-rolled-back")], "id")
                raise RuntimeError("the transaction fails after the insert")
        assert await db.fetchrow("SELECT id FROM audit_events WHERE id = 'bulk-rolled-back'") is None
        await db.insert_new("audit_events", COLUMNS, [], "id")
    finally:
        await db.close()


async def test_a_commit_is_durable_when_it_returns(config: WardenConfig) -> None:
    """The audit writer frees spool space once its commit returns, so a commit must survive a power loss: on
    SQLite, the WAL is synced at every commit (synchronous=FULL), not only at checkpoints; PostgreSQL commits are
    (synchronous_commit on, its default)."""
    db = await open_database(config)
    try:
        async with db.transaction() as tx:
            setting = await tx.fetchrow("PRAGMA synchronous" if db.dialect == "sqlite" else "SHOW synchronous_commit")
        assert setting is not None and list(setting.values()) == ([2] if db.dialect == "sqlite" else ["on"])
    finally:
        await db.close()


@pytest.mark.parametrize("text", ["a\x00b", "a\ud800b"], ids=["nul", "lone-surrogate"])
async def test_a_text_the_database_cannot_take_is_a_typed_error(config: WardenConfig, text: str) -> None:
    """NUL (PostgreSQL's text cannot hold it; SQLite stores it) and lone surrogates (not UTF-8: neither takes
    them) come from clients; the edge answers them with 422, so the adapters must say which error it is."""
    db = await open_database(config)
    try:
        await migrate(db)
        if db.dialect == "sqlite" and text == "a\x00b":
            await db.execute(INSERT, "nul-kept", 1.0, text)
            assert (await db.fetchrow("SELECT trace_id FROM audit_events WHERE id = 'nul-kept'")) == {"trace_id": text}
            return
        with pytest.raises(UnstorableText):
            await db.execute(INSERT, "unstorable", 1.0, text)
        with pytest.raises(UnstorableText):
            await db.fetch("SELECT id FROM audit_events WHERE trace_id = ?", text)
    finally:
        await db.close()
