"""SQLite adapter: one writer connection behind a lock, one reader connection, WAL journal.

Every write goes through the single writer (SQLite allows one writer at a time anyway); reads use
their own connection so they never queue behind a write transaction.
"""

from __future__ import annotations

import functools
import itertools
import sqlite3
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import aiosqlite
import anyio

from broker.kernel.store.errors import StoreError, StoreUnavailable, UniqueViolation, UnstorableText
from broker.kernel.store.ports import Dialect, Executor, Row

_PRAGMAS = (
    "PRAGMA journal_mode=WAL",
    # A commit is on disk when it returns. With NORMAL a power loss could take back the latest commits, and the
    # audit writer acknowledges a batch out of the spool, which then reuses its space, as soon as its commit
    # returns: the batch would be gone from both. Writes are few (the audit writer commits a batch of up to
    # 1,000 events at a time): the fsync a commit cost 0.5 us a request under load (bench/audit_cost.py).
    "PRAGMA synchronous=FULL",
    "PRAGMA foreign_keys=ON",
    "PRAGMA busy_timeout=5000",
)


# What the driver raises: its own errors, and UnicodeEncodeError when binding a text with a lone surrogate.
_FAILED = (sqlite3.Error, UnicodeEncodeError)


def _translate(exc: Exception) -> StoreError:
    if isinstance(exc, UnicodeEncodeError):
        return UnstorableText(f"a text holds a character SQLite cannot store (a lone surrogate): {exc}")
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
        except _FAILED as exc:
            raise _translate(exc) from exc

    async def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        try:
            await self.conn.executemany(sql, rows)
        except _FAILED as exc:
            raise _translate(exc) from exc

    async def insert_new(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], key: str) -> None:
        done = 0
        for count in _chunks(len(rows), len(columns)):
            await self.execute(_insert_statement(table, tuple(columns), count, key),
                               *itertools.chain.from_iterable(rows[done:done + count]))
            done += count

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        try:
            cursor = await self.conn.execute(sql, args)
            return [dict(row) for row in await cursor.fetchall()]
        except _FAILED as exc:
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

    async def insert_new(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], key: str) -> None:
        async with self.transaction() as tx:
            await tx.insert_new(table, columns, rows, key)

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


# A bulk insert's rows go in statements of many rows each (not ``executemany``: SQLite's driver takes the
# interpreter lock back for every row, and on a busy event loop each of those hand-overs cost more than inserting
# the row; one statement binds all its values at once and inserts them without the lock), at most this many
# values a statement, within SQLite's limit (32,766).
_MAX_VALUES = 16_384


def _chunks(rows: int, width: int) -> list[int]:
    """``rows`` as a sum of powers of two, largest first, none over ``_MAX_VALUES // width`` rows: the statements a
    batch is inserted with. A statement per batch size would be prepared anew for nearly every batch (batches
    vary in size), and preparing one of a few hundred rows cost about as much as inserting them; these few are
    prepared once and kept by the driver."""
    largest = 1 << ((_MAX_VALUES // width).bit_length() - 1)
    whole, rest = divmod(rows, largest)
    return [largest] * whole + [1 << bit for bit in range(rest.bit_length() - 1, -1, -1) if rest >> bit & 1]


@functools.lru_cache(maxsize=64)
def _insert_statement(table: str, columns: tuple[str, ...], rows: int, key: str) -> str:
    row = f"({', '.join('?' * len(columns))})"
    return (f"INSERT INTO {table} ({', '.join(columns)}) VALUES {', '.join([row] * rows)}"
            f" ON CONFLICT ({key}) DO NOTHING")
