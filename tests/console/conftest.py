from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
import pytest

from broker.app import Warden, create_app
from tests.conftest import REDIS_URL, STRONG_PASSWORD, FakeClock, asgi_client, make_config

ADMIN_EMAIL = "admin@example.com"


async def sign_in(console: httpx.AsyncClient, email: str = ADMIN_EMAIL, password: str = STRONG_PASSWORD) -> str:
    """Sign in; the client keeps the cookies and sends the CSRF header from then on."""
    response = await console.post("/api/auth/login", json={"email": email, "password": password})
    assert response.status_code == 200, response.text
    csrf = str(response.json()["csrf_token"])
    console.headers["x-csrf-token"] = csrf
    return csrf


@pytest.fixture
async def admin(console: httpx.AsyncClient) -> httpx.AsyncClient:
    """The console client, signed in as a freshly set-up super admin."""
    response = await console.post("/api/setup", json={"email": ADMIN_EMAIL, "name": "Admin",
                                                      "password": STRONG_PASSWORD})
    assert response.status_code == 201, response.text
    await sign_in(console)
    return console


@asynccontextmanager
async def two_instances(tmp_path: Path, postgres_url: str, clock: FakeClock
                        ) -> AsyncIterator[tuple[Warden, Warden, httpx.AsyncClient]]:
    """Two instances on one PostgreSQL database and Redis, and the first's console signed in as a new admin."""
    first, second = (make_config(tmp_path / name, postgres_url, redis={"url": REDIS_URL}) for name in "ab")
    async with create_app(first, clock) as one, create_app(second, clock) as other, \
            asgi_client(one.console, "http://console.test") as console:
        assert (await console.post("/api/setup", json={"email": ADMIN_EMAIL,
                                                       "password": STRONG_PASSWORD})).status_code == 201
        await sign_in(console)
        yield one, other, console
