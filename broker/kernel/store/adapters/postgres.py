"""PostgreSQL adapter over an asyncpg pool; rewrites ``?`` placeholders to ``$n`` once per query text."""

from __future__ import annotations

import functools
import itertools
import re
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from typing import Any

import asyncpg

from broker.kernel.store.errors import StoreError, StoreUnavailable, UniqueViolation, UnstorableText
from broker.kernel.store.ports import Dialect, Executor, Row

_PLACEHOLDER = re.compile(r"\?")
_UNAVAILABLE = (OSError, TimeoutError, asyncpg.exceptions.InterfaceError,
                asyncpg.exceptions.CannotConnectNowError, asyncpg.exceptions.ConnectionDoesNotExistError)


@functools.lru_cache(maxsize=1024)
def to_postgres(sql: str) -> str:
    """Rewrite ``?`` placeholders to asyncpg's ``$1..$n`` (our SQL never has ``?`` inside literals)."""
    counter = itertools.count(1)
    return _PLACEHOLDER.sub(lambda _: f"${next(counter)}", sql)


_UNSTORABLE = (UnicodeEncodeError, asyncpg.exceptions.CharacterNotInRepertoireError,
               asyncpg.exceptions.UntranslatableCharacterError)
_FAILED = (asyncpg.PostgresError, UnicodeEncodeError, *_UNAVAILABLE)  # what the driver raises, translated


def _translate(exc: Exception) -> StoreError:
    if isinstance(exc, asyncpg.exceptions.UniqueViolationError):
        return UniqueViolation(str(exc))
    if isinstance(exc, _UNSTORABLE) or isinstance(exc.__cause__, UnicodeEncodeError):  # asyncpg's DataError
        return UnstorableText(f"a text holds a character PostgreSQL cannot store (NUL, or a lone surrogate): {exc}")
    if isinstance(exc, _UNAVAILABLE):
        return StoreUnavailable(f"PostgreSQL unavailable: {exc}")
    return StoreError(str(exc))


def _rowcount(status: str) -> int:
    tail = status.rsplit(" ", 1)[-1]
    return int(tail) if tail.isdigit() else 0


async def _keep_session(conn: asyncpg.Connection) -> None:
    """Nothing to reset when a connection goes back to the pool (the pool has already rolled back a transaction
    left open): Warden keeps no session state but the audit writer's staging table, which is meant to stay.
    No LISTEN, no session-level advisory lock (migrations take a transaction's), no SET, no cursor outside a
    transaction. asyncpg's default reset is one more round trip on every release, every query's."""


class _Connection:
    def __init__(self, conn: asyncpg.Connection) -> None:
        self._conn = conn

    async def execute(self, sql: str, *args: Any) -> int:
        try:
            return _rowcount(await self._conn.execute(to_postgres(sql), *args))
        except _FAILED as exc:
            raise _translate(exc) from exc

    async def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        try:
            await self._conn.executemany(to_postgres(sql), rows)
        except _FAILED as exc:
            raise _translate(exc) from exc

    async def copy(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
        """Binary COPY of ``rows`` into ``table``: all or, when any row is refused, none."""
        try:
            await self._conn.copy_records_to_table(table, records=rows, columns=list(columns))
        except _FAILED as exc:
            raise _translate(exc) from exc

    async def insert_new(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], key: str) -> None:
        # COPY into a temporary table of the same columns, then one INSERT of what is new: COPY cannot leave out
        # rows, and binary COPY costs the client a quarter of what a multi-row INSERT or arrays of values do.
        if not rows:
            return
        staging = f"{table}_new"
        names = ", ".join(columns)
        try:  # in a transaction (the executors callers get are), which empties the staging table as it commits
            await self._conn.execute(f"CREATE TEMPORARY TABLE IF NOT EXISTS {staging} (LIKE {table})"
                                     " ON COMMIT DELETE ROWS")
            await self._conn.copy_records_to_table(staging, records=rows, columns=list(columns))
            await self._conn.execute(f"INSERT INTO {table} ({names}) SELECT {names} FROM {staging}"
                                     f" ON CONFLICT ({key}) DO NOTHING")
        except _FAILED as exc:
            raise _translate(exc) from exc

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        try:
            return [dict(r) for r in await self._conn.fetch(to_postgres(sql), *args)]
        except _FAILED as exc:
            raise _translate(exc) from exc

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        rows = await self.fetch(sql, *args)
        return rows[0] if rows else None


class PostgresDatabase:
    """The store for deployments of several instances."""

    dialect: Dialect = "postgres"

    def __init__(self, pool: asyncpg.Pool) -> None:
        self._pool = pool

    @classmethod
    async def open(cls, url: str, pool_size: int = 10, connect_timeout: float = 5.0) -> PostgresDatabase:
        try:
            pool = await asyncpg.create_pool(
                url, min_size=1, max_size=pool_size, timeout=connect_timeout, command_timeout=30,
                reset=_keep_session,
            )
        except _FAILED as exc:
            raise StoreUnavailable(f"cannot connect to PostgreSQL: {exc}") from exc
        return cls(pool)

    async def execute(self, sql: str, *args: Any) -> int:
        async with self._acquire() as conn:
            return await conn.execute(sql, *args)

    async def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        async with self._acquire() as conn:
            await conn.execute_many(sql, rows)

    async def insert_new(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], key: str) -> None:
        # Outside a transaction a batch is new as a rule (the audit writer's: only a replay after a crash holds
        # rows stored already), so it is first copied straight into the table: one statement, atomic on its own,
        # instead of a transaction around a staging table (five round trips, each costing Warden's event loop
        # about as much as copying fifty rows). When some row is there already the copy fails as a whole
        # and the staging path leaves those rows out.
        if not rows:
            return
        async with self._acquire() as conn:
            try:
                await conn.copy(table, columns, rows)
                return
            except UniqueViolation:
                pass
        async with self.transaction() as tx:
            await tx.insert_new(table, columns, rows, key)

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        async with self._acquire() as conn:
            return await conn.fetch(sql, *args)

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        async with self._acquire() as conn:
            return await conn.fetchrow(sql, *args)

    @asynccontextmanager
    async def transaction(self) -> AsyncIterator[Executor]:
        try:
            async with self._pool.acquire(timeout=10) as raw, raw.transaction():
                yield _Connection(raw)
        except _UNAVAILABLE as exc:
            raise _translate(exc) from exc

    @asynccontextmanager
    async def _acquire(self) -> AsyncIterator[_Connection]:
        try:
            async with self._pool.acquire(timeout=10) as raw:
                yield _Connection(raw)
        except _UNAVAILABLE as exc:
            raise _translate(exc) from exc

    async def ping(self) -> None:
        await self.fetch("SELECT 1")

    async def close(self) -> None:
        await self._pool.close()
