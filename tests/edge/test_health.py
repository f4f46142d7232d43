from __future__ import annotations

import time

import anyio
import httpx
from starlette.applications import Starlette
from starlette.routing import Route

from broker.edge.health import HealthChecks


def app_with(checks: dict[str, object]) -> httpx.AsyncClient:
    health = HealthChecks(checks, time.time())  # type: ignore[arg-type]
    app = Starlette(routes=[Route("/ready", health.ready), Route("/live", health.live)])
    return httpx.AsyncClient(transport=httpx.ASGITransport(app), base_url="http://h")


async def test_a_hanging_dependency_costs_at_most_a_second() -> None:
    async def hangs() -> None:
        await anyio.sleep(30)

    async def fine() -> None:
        return None

    async with app_with({"database": fine, "redis": hangs}) as client:
        started = time.monotonic()
        response = await client.get("/ready")
        assert time.monotonic() - started < 1.5
    assert response.status_code == 503
    assert response.json()["checks"]["redis"]["status"] == "timeout"
    assert response.json()["checks"]["database"]["status"] == "ok"


async def test_a_failing_dependency_reports_its_kind_but_no_detail() -> None:
    async def fails() -> None:
        raise ConnectionError("password=hunter2 refused")

    async with app_with({"database": fails}) as client:
        response = await client.get("/ready")
    assert response.status_code == 503
    check = response.json()["checks"]["database"]
    assert (check["status"], check["error"]) == ("error", "ConnectionError")
    assert "hunter2" not in response.text


async def test_live_is_always_ok() -> None:
    async with app_with({}) as client:
        assert (await client.get("/live")).json()["status"] == "ok"
