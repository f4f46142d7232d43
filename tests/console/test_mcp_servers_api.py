from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
import httpx
import pytest

from broker.app import Warden
from tests.console.test_management_api import create
from tests.mcp.conftest import stdio_server


async def poll(admin: httpx.AsyncClient, name: str, done: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """Read the server's view through the API until ``done`` holds (the state changes in the background)."""
    with anyio.fail_after(20):
        while True:
            view: dict[str, Any] = (await admin.get(f"/api/mcp/servers/{name}")).json()
            if done(view):
                return view
            await anyio.sleep(0.1)


async def wait_for(admin: httpx.AsyncClient, name: str, health: str) -> dict[str, Any]:
    return await poll(admin, name, lambda view: view["health"] == health)


async def test_registered_server_connects_and_its_env_is_sealed(admin: httpx.AsyncClient, warden: Warden) -> None:
    spec = stdio_server("tools")
    spec["env"]["UPSTREAM_TOKEN"] = "tok-very-secret-123"
    created = await create(admin, "/api/mcp/servers", spec)
    assert created["env_keys"] == ["DEMO_NAME", "PYTHONPATH", "UPSTREAM_TOKEN"] and "env" not in created
    view = await wait_for(admin, "tools", "healthy")
    assert {"echo", "add", "countdown"} <= set(view["tools"])
    rows = await warden.kernel.db.fetch("SELECT * FROM mcp_servers")
    assert "tok-very-secret-123" not in repr(rows)

    disabled = await admin.patch("/api/mcp/servers/tools", json={"enabled": False})
    assert disabled.status_code == 200
    assert (await wait_for(admin, "tools", "disabled"))["tool_count"] == 0
    assert (await admin.delete("/api/mcp/servers/tools")).status_code == 204
    assert (await admin.get("/api/mcp/servers/tools")).status_code == 404


async def test_unreachable_server_reports_why(admin: httpx.AsyncClient) -> None:
    await create(admin, "/api/mcp/servers", {"name": "gone", "transport": "streamable_http",
                                             "url": "http://127.0.0.1:9/mcp", "timeout_seconds": 1})
    view = await poll(admin, "gone", lambda v: bool(v["last_error"]))
    assert view["health"] in ("down", "connecting")


@pytest.mark.parametrize(("body", "field"), [
    ({"name": "a__b", "transport": "stdio", "command": "x"}, "name"),
    ({"name": "ok", "transport": "stdio"}, "command"),
    ({"name": "ok", "transport": "sse", "url": "ftp://x"}, "url"),
    ({"name": "ok", "transport": "carrier-pigeon"}, "transport"),
])
async def test_invalid_servers_are_422_naming_the_field(admin: httpx.AsyncClient, body: dict[str, Any],
                                                        field: str) -> None:
    response = await admin.post("/api/mcp/servers", json=body)
    assert response.status_code == 422
    assert field in [f["field"] for f in response.json()["error"]["fields"]]


async def test_duplicate_name_is_a_conflict(admin: httpx.AsyncClient) -> None:
    spec = {"name": "dup", "transport": "sse", "url": "http://127.0.0.1:9/sse", "enabled": False}
    await create(admin, "/api/mcp/servers", spec)
    assert (await admin.post("/api/mcp/servers", json=spec)).status_code == 409
