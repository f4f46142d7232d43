"""Shared fixtures: every storage test runs on SQLite and on the machine's PostgreSQL; apps are built
with ``create_app(config)`` exactly as in production."""

from __future__ import annotations

import inspect
import signal
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import asyncpg
import httpx
import pytest
from aiohttp import web
from redis.asyncio import Redis

from broker.app import Kernel, Warden, create_app, open_kernel
from broker.config import WardenConfig, load_config
from broker.kernel.crypto import KeyRing

# A pytest stopped with SIGTERM (a timeout, a kill) tears its fixtures down as after Ctrl-C, so no Warden or
# upstream process it started keeps running against the shared PostgreSQL and Redis.
signal.signal(signal.SIGTERM, signal.default_int_handler)

POSTGRES_ADMIN_URL = "postgresql://127.0.0.1:5432/test"
REDIS_URL = "redis://127.0.0.1:6379/0"
STRONG_PASSWORD = "correct horse 9 battery"


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if isinstance(item, pytest.Function) and inspect.iscoroutinefunction(item.obj):
            item.add_marker(pytest.mark.anyio)


@pytest.fixture(autouse=True)
def anyio_backend() -> str:
    """Autouse, so anyio's plugin keeps each test's own parametrization (database kind) intact."""
    return "asyncio"


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self, start: float = 1_800_000_000.0) -> None:
        self.value = start

    def now(self) -> float:
        return self.value

    def advance(self, seconds: float) -> None:
        self.value += seconds


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


async def create_postgres_database() -> str:
    name = "warden_t_" + uuid.uuid4().hex[:12]
    conn = await asyncpg.connect(POSTGRES_ADMIN_URL)
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return name


async def drop_postgres_database(name: str) -> None:
    conn = await asyncpg.connect(POSTGRES_ADMIN_URL)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()


@pytest.fixture(params=["sqlite", "postgres"])
async def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    """A fresh, empty database of each kind."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'warden.db'}"
        return
    name = await create_postgres_database()
    try:
        yield f"postgresql://127.0.0.1:5432/{name}"
    finally:
        await drop_postgres_database(name)


def make_config(tmp_path: Path, database_url: str, **sections: Any) -> WardenConfig:
    env = {
        "WARDEN_SERVER_DATA_DIR": str(tmp_path / "data"),
        "WARDEN_DATABASE_URL": database_url,
        "WARDEN_SECRET_KEY": KeyRing.generate_entry(1),
        "WARDEN_SERVER_SECRET": "test-server-secret-" + uuid.uuid4().hex,
        "WARDEN_SECURITY_OUTBOUND_ALLOW": "127.0.0.1,localhost",  # the tests' upstreams listen on loopback
    }
    base = load_config(environ=env).model_dump()
    for section, values in sections.items():
        base[section] = {**base.get(section, {}), **values} if isinstance(values, dict) else values
    return WardenConfig.model_validate(base)


@pytest.fixture
async def postgres_url() -> AsyncIterator[str]:
    """A fresh PostgreSQL database (for tests that need PostgreSQL specifically, e.g. several instances)."""
    name = await create_postgres_database()
    try:
        yield f"postgresql://127.0.0.1:5432/{name}"
    finally:
        await drop_postgres_database(name)


@pytest.fixture
async def redis_client() -> AsyncIterator[Redis]:
    client = Redis.from_url(REDIS_URL)
    try:
        yield client
    finally:
        await client.aclose()


@pytest.fixture
def config(tmp_path: Path, database_url: str) -> WardenConfig:
    return make_config(tmp_path, database_url)


@pytest.fixture
async def warden(config: WardenConfig, clock: FakeClock) -> AsyncIterator[Warden]:
    async with create_app(config, clock) as app:
        yield app


def asgi_client(app: Any, base_url: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app, raise_app_exceptions=False), base_url=base_url)


@pytest.fixture
async def console(warden: Warden) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(warden.console, "http://console.test") as client:
        yield client


@pytest.fixture
async def gateway(warden: Warden) -> AsyncIterator[httpx.AsyncClient]:
    async with asgi_client(warden.gateway, "http://gateway.test") as client:
        yield client


@pytest.fixture
def tmp_data(tmp_path: Path) -> Iterator[Path]:
    path = tmp_path / "data"
    path.mkdir()
    yield path


@pytest.fixture
async def kernel(config: WardenConfig, clock: FakeClock) -> AsyncIterator[Kernel]:
    async with open_kernel(config, clock) as opened:
        yield opened


pytest_plugins = ["tests.webhook_receiver"]


async def eventually(check: Callable[[], Awaitable[bool]], within: float = 5.0, interval: float = 0.05) -> bool:
    """Poll ``check`` until it holds or ``within`` seconds pass: for state another process changes in the background,
    observed through its public API (there is no event to wait on across a process boundary)."""
    with anyio.move_on_after(within):
        while not await check():  # noqa: ASYNC110 - see the docstring
            await anyio.sleep(interval)
        return True
    return await check()


@asynccontextmanager
async def serving(application: web.Application) -> AsyncIterator[int]:
    """An aiohttp application on a free loopback port (its number), for the length of the block."""
    runner = web.AppRunner(application)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        yield site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    finally:
        await runner.cleanup()
