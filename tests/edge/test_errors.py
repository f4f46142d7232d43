from __future__ import annotations

import httpx
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from broker.edge.errors import EXCEPTION_HANDLERS
from broker.kernel.errors import TooManyAttempts
from broker.kernel.store.errors import StoreUnavailable


async def crashes(request: Request) -> Response:
    raise RuntimeError("internal detail: /srv/secret/path")


async def database_down(request: Request) -> Response:
    raise StoreUnavailable("connection to 10.0.0.5 refused")


async def locked(request: Request) -> Response:
    raise TooManyAttempts("slow down", retry_after=42)


def client() -> httpx.AsyncClient:
    app = Starlette(routes=[Route("/crash", crashes), Route("/db", database_down), Route("/locked", locked)],
                    exception_handlers=EXCEPTION_HANDLERS)
    return httpx.AsyncClient(transport=httpx.ASGITransport(app, raise_app_exceptions=False), base_url="http://e")


async def test_unexpected_error_is_500_json_without_any_trace() -> None:
    async with client() as http:
        response = await http.get("/crash")
    assert response.status_code == 500
    assert response.json() == {"error": {"code": "internal_error", "message": "internal error"}}
    assert "secret" not in response.text and "Traceback" not in response.text


async def test_database_outage_is_503_with_retry_after() -> None:
    async with client() as http:
        response = await http.get("/db")
    assert response.status_code == 503 and response.headers["retry-after"] == "1"
    assert "10.0.0.5" not in response.text


async def test_lockout_carries_retry_after() -> None:
    async with client() as http:
        response = await http.get("/locked")
    assert response.status_code == 429 and response.headers["retry-after"] == "42"


async def test_wrong_method_is_405_json() -> None:
    async with client() as http:
        response = await http.post("/crash")
    assert response.status_code == 405 and response.json()["error"]["code"] == "method_not_allowed"
