"""Opening the configured database and Redis, with bounded timeouts and errors that name the dependency."""

from __future__ import annotations

from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import anyio
from redis.asyncio import Redis
from redis.exceptions import RedisError

from broker.config import WardenConfig
from broker.kernel.store.errors import StoreUnavailable
from broker.kernel.store.ports import Database


class StartupError(Exception):
    """A dependency failed its start-up check; the message names it."""


def redact_url(url: str) -> str:
    """The URL without its password, for messages and logs."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@")
    return urlunsplit(parts._replace(netloc=netloc))


async def open_database(config: WardenConfig) -> Database:
    url = config.database_url
    try:
        with anyio.fail_after(config.database.connect_timeout_seconds + 1):
            if url.startswith("sqlite:///"):
                from broker.kernel.store.adapters.sqlite import SqliteDatabase

                return await SqliteDatabase.open(Path(url.removeprefix("sqlite:///")))
            from broker.kernel.store.adapters.postgres import PostgresDatabase

            return await PostgresDatabase.open(
                url, config.database.pool_size, config.database.connect_timeout_seconds
            )
    except (StoreUnavailable, TimeoutError) as exc:
        raise StartupError(f"database {redact_url(url)}: unreachable ({exc or 'timed out'})") from exc


async def open_redis(config: WardenConfig) -> Redis | None:
    if not config.redis.url:
        return None
    timeout = config.redis.timeout_seconds
    client = Redis.from_url(config.redis.url, socket_timeout=timeout, socket_connect_timeout=timeout)
    try:
        with anyio.fail_after(timeout * 4):
            await client.ping()
    except (RedisError, OSError, TimeoutError) as exc:
        await client.aclose()
        raise StartupError(f"redis {redact_url(config.redis.url)}: unreachable ({exc or 'timed out'})") from exc
    return client
