"""The storage port: a small async SQL interface both adapters implement.

Queries use ``?`` placeholders and portable SQL; the PostgreSQL adapter rewrites placeholders to ``$n``.
Rows come back as plain dicts.
"""

from __future__ import annotations

from collections.abc import Sequence
from contextlib import AbstractAsyncContextManager
from typing import Any, Literal, Protocol

Row = dict[str, Any]
Dialect = Literal["sqlite", "postgres"]


class Executor(Protocol):
    """Runs statements, inside or outside a transaction."""

    async def execute(self, sql: str, *args: Any) -> int:
        """Run a statement; return the number of rows it changed."""
        ...

    async def execute_many(self, sql: str, rows: Sequence[Sequence[Any]]) -> None:
        """Run one statement once per row of arguments, in one round trip to the database."""
        ...

    async def insert_new(self, table: str, columns: Sequence[str], rows: Sequence[Sequence[Any]], key: str) -> None:
        """Insert many rows at once, leaving out those whose ``key`` (a unique column) is already stored: the bulk
        path, for batches of many rows (the audit writer's). Each row gives a value for each of ``columns``,
        which include every NOT NULL column of the table."""
        ...

    async def fetch(self, sql: str, *args: Any) -> list[Row]:
        """Run a query; return every row."""
        ...

    async def fetchrow(self, sql: str, *args: Any) -> Row | None:
        """Run a query; return its first row or None."""
        ...


class Database(Executor, Protocol):
    """A connection pool to one database."""

    dialect: Dialect

    def transaction(self) -> AbstractAsyncContextManager[Executor]:
        """A serializable unit of work: committed on exit, rolled back on an exception."""
        ...

    async def ping(self) -> None:
        """Round-trip to the database; raises StoreUnavailable when it does not answer."""
        ...

    async def close(self) -> None:
        """Release every connection."""
        ...
