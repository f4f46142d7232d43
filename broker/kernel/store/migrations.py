"""Numbered SQL migrations, applied once, in order, inside one transaction under a lock.

Files live in ``migrations/common/NNNN_name.sql``; ``migrations/<dialect>/NNNN_name.sql`` replaces the
common file of the same number where the dialects differ. The lock is PostgreSQL's transaction-scoped
advisory lock, or SQLite's ``BEGIN IMMEDIATE`` write lock, so instances starting together apply each
migration exactly once.
"""

from __future__ import annotations

import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path

from broker.kernel.store.ports import Database, Executor

_LOCK_KEY = 0x5741_5244  # "WARD": the advisory-lock id reserved for migrations
_DEFAULT_DIR = Path(__file__).resolve().parents[3] / "migrations"


@dataclass(frozen=True, slots=True)
class Migration:
    """One numbered migration for one dialect."""

    version: int
    name: str
    statements: tuple[str, ...]


def discover(dialect: str, root: Path = _DEFAULT_DIR) -> list[Migration]:
    """The migrations for ``dialect``, ordered by version."""
    chosen: dict[int, Path] = {}
    for folder in (root / "common", root / dialect):
        for path in sorted(folder.glob("[0-9][0-9][0-9][0-9]_*.sql")):
            chosen[int(path.name[:4])] = path
    return [
        Migration(version, path.stem[5:], tuple(split_statements(path.read_text(encoding="utf-8"))))
        for version, path in sorted(chosen.items())
    ]


def split_statements(script: str) -> list[str]:
    """Split a script into statements at the semicolons that end them (not those inside literals)."""
    statements: list[str] = []
    pending = ""
    for line in script.splitlines(keepends=True):
        if not pending and (not line.strip() or line.lstrip().startswith("--")):
            continue
        pending += line
        if sqlite3.complete_statement(pending):
            statements.append(pending.strip().rstrip(";").strip())
            pending = ""
    if pending.strip():
        statements.append(pending.strip())
    return statements


async def migrate(db: Database, root: Path = _DEFAULT_DIR) -> list[Migration]:
    """Apply every pending migration; return those applied (an empty list when up to date)."""
    migrations = discover(db.dialect, root)
    async with db.transaction() as tx:
        if db.dialect == "postgres":
            await tx.execute("SELECT pg_advisory_xact_lock(?)", _LOCK_KEY)
        await tx.execute(
            "CREATE TABLE IF NOT EXISTS schema_migrations ("
            " version INTEGER PRIMARY KEY, name TEXT NOT NULL, applied_at DOUBLE PRECISION NOT NULL)"
        )
        applied = await _applied_versions(tx)
        pending = [m for m in migrations if m.version not in applied]
        for migration in pending:
            for statement in migration.statements:
                await tx.execute(statement)
            await tx.execute(
                "INSERT INTO schema_migrations (version, name, applied_at) VALUES (?, ?, ?)",
                migration.version, migration.name, time.time(),
            )
    return pending


async def _applied_versions(tx: Executor) -> set[int]:
    return {int(row["version"]) for row in await tx.fetch("SELECT version FROM schema_migrations")}


async def pending_count(db: Database, root: Path = _DEFAULT_DIR) -> int:
    """How many migrations are not yet applied (for ``warden migrate --check``)."""
    known = {m.version for m in discover(db.dialect, root)}
    try:
        applied = await _applied_versions(db)
    except Exception:
        return len(known)
    return len(known - applied)
