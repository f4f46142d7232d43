from __future__ import annotations

from pathlib import Path

import anyio

from broker.config import WardenConfig
from broker.kernel.store.migrations import discover, migrate, split_statements
from broker.storage import open_database


def test_statements_split_at_terminating_semicolons_only() -> None:
    script = "-- comment\nCREATE TABLE a (x TEXT DEFAULT ';');\n\nINSERT INTO a VALUES ('b;c');\n"
    assert split_statements(script) == ["CREATE TABLE a (x TEXT DEFAULT ';')", "INSERT INTO a VALUES ('b;c')"]


def test_dialect_file_replaces_the_common_one(tmp_path: Path) -> None:
    (tmp_path / "common").mkdir()
    (tmp_path / "postgres").mkdir()
    (tmp_path / "common" / "0001_a.sql").write_text("SELECT 1;")
    (tmp_path / "common" / "0002_b.sql").write_text("SELECT 2;")
    (tmp_path / "postgres" / "0002_b.sql").write_text("SELECT 22;")
    assert [m.statements for m in discover("postgres", tmp_path)] == [("SELECT 1",), ("SELECT 22",)]
    assert [m.statements for m in discover("sqlite", tmp_path)] == [("SELECT 1",), ("SELECT 2",)]


async def test_migrations_apply_once_and_are_recorded(config: WardenConfig) -> None:
    db = await open_database(config)
    try:
        applied = await migrate(db)
        assert [m.version for m in applied] == [m.version for m in discover(db.dialect)]
        assert await migrate(db) == []
        rows = await db.fetch("SELECT version FROM schema_migrations ORDER BY version")
        assert [r["version"] for r in rows] == [m.version for m in applied]
    finally:
        await db.close()


async def test_concurrent_instances_apply_each_migration_exactly_once(config: WardenConfig) -> None:
    first, second = await open_database(config), await open_database(config)
    results: list[int] = []
    try:
        async def run(db: object) -> None:
            results.append(len(await migrate(db)))  # type: ignore[arg-type]

        async with anyio.create_task_group() as group:
            group.start_soon(run, first)
            group.start_soon(run, second)
        assert sorted(results) == [0, len(discover(first.dialect))]
    finally:
        await first.close()
        await second.close()
