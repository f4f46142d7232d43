"""SQLite adapter: one writer connection behind a lock, one reader connection, WAL journal.

Every write goes through the single writer (SQLite allows one writer at a time anyway); reads use
their own connection so they never queue behind a write transaction.
"""

from __future__ import annotations

import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite
import anyio

from broker.kernel.store.errors import StoreError, StoreUnavailable, UniqueViolation
from broker.kernel.store.ports import Dialect, Executor, Row

_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    "PRAGMA synchronous=NORMAL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=5000",
)


def _translate(exc: sqlite3.Error) -> StoreError:
    if isinstance(exc, sqlite3.IntegrityError) and "UNIQUE" in str(exc):
        return UniqueViolation(str(exc))
    if isinstance(exc, sqlite3.OperationalError):
        return StoreUnavailable(str(exc))
    return StoreError(str(exc))


class _Connection:
    """Executor over one aiosqlite connection."""

    def __init__(self, conn: aiosqlite.Connection) -> None:
        self.conn = conn

    async def execute(self, sql: str, *args: Any) -> int:
        try:
            cursor = await self.conn.execute(sql, args)
            return cursor.rowcount
        except sqlite3.Error as exc:
            raise _translate(exc) from exc

    async def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        try:
            await self.conn.executemany(sql, rows)
        except sqlite3.Error as exc:
            raise _translate(exc) from exc

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        try:
            cursor = await self.conn.execute(sql, args)
            return [dict(row) for row in await cursor.fetchall()]
        except sqlite3.Error as exc:
            raise _translate(exc) from exc

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        rows = await self.fetch(sql, *args)
        return rows[0] if rows else None


class SqliteDatabase:
    """The embedded default store."""

    dialect: Dialect = "sqlite"

    def __init__(self, writer: aiosqlite.Connection, reader: aiosqlite.Connection) -> None:
        self._writer = _Connection(writer)
        self._reader = _Connection(reader)
        self._write_lock = anyio.Lock()

    @classmethod
    async def open(cls, path: Path) -> SqliteDatabase:
        path.parent.mkdir(parents=True, exist_ok=True)
        try:
            writer = await _connect(path)
            reader = await _connect(path)
        except sqlite3.Error as exc:
            raise StoreUnavailable(f"cannot open SQLite database {path}: {exc}") from exc
        return cls(writer, reader)

    async def execute(self, sql: str, *args: Any) -> int:
        async with self._write_lock:
            return await self._writer.execute(sql, *args)

    async def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        async with self._write_lock:
            await self._writer.execute_many(sql, rows)

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        return await self._reader.fetch(sql, *args)

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        return await self._reader.fetchrow(sql, *args)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Executor]:
        async with self._write_lock:
            await self._writer.execute("BEGIN IMMEDIATE")
            try:
                yield self._writer
            except BaseException:
                await self._writer.execute("ROLLBACK")
                raise
            await self._writer.execute("COMMIT")

    async def ping(self) -> None:
        await self._reader.fetch("SELECT 1")

    async def close(self) -> None:
        await self._reader.conn.close()
        await self._writer.conn.close()


async def _connect(path: Path) -> aiosqlite.Connection:
    conn = await aiosqlite.connect(path, isolation_level=None)
    conn.row_factory = aiosqlite.Row
    for pragma in _PRAGMAS:
        await conn.execute(pragma)
    return conn
