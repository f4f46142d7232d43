from __future__ import annotations

import httpx
import pytest

from tests.conftest import STRONG_PASSWORD

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
