from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from broker.app import create_app
from tests.conftest import STRONG_PASSWORD, FakeClock, asgi_client, make_config


@pytest.fixture
async def cors_console(tmp_path: Path, database_url: str, clock: FakeClock) -> AsyncIterator[httpx.AsyncClient]:
    config = make_config(tmp_path, database_url, security={"cors_origins": ("https://ops.example.com",)})
    async with create_app(config, clock) as warden, asgi_client(warden.console, "http://console.test") as client:
        yield client


async def test_cors_allows_only_listed_origins(cors_console: httpx.AsyncClient) -> None:
    preflight = {"access-control-request-method": "POST", "access-control-request-headers": "content-type"}
    allowed = await cors_console.options("/api/teams", headers={"origin": "https://ops.example.com", **preflight})
    assert allowed.headers["access-control-allow-origin"] == "https://ops.example.com"
    assert allowed.headers["access-control-allow-credentials"] == "true"
    denied = await cors_console.options("/api/teams", headers={"origin": "https://evil.example", **preflight})
    assert "access-control-allow-origin" not in denied.headers


async def test_without_an_allow_list_no_cors_headers_are_sent(console: httpx.AsyncClient) -> None:
    response = await console.get("/api/setup", headers={"origin": "https://evil.example"})
    assert "access-control-allow-origin" not in response.headers


async def test_session_bound_to_the_client_ip_is_refused_from_another(tmp_path: Path, database_url: str,
                                                                      clock: FakeClock) -> None:
    config = make_config(tmp_path, database_url, security={"session_bind_ip": True})
    async with create_app(config, clock) as warden:
        here = httpx.ASGITransport(warden.console, client=("10.0.0.1", 5000))
        there = httpx.ASGITransport(warden.console, client=("10.0.0.2", 5000))
        async with httpx.AsyncClient(transport=here, base_url="http://c") as first:
            body = {"email": "admin@example.com", "password": STRONG_PASSWORD}
            assert (await first.post("/api/setup", json=body)).status_code == 201
            assert (await first.post("/api/auth/login", json=body)).status_code == 200
            assert (await first.get("/api/auth/me")).status_code == 200
            async with httpx.AsyncClient(transport=there, base_url="http://c", cookies=first.cookies) as second:
                assert (await second.get("/api/auth/me")).status_code == 401
