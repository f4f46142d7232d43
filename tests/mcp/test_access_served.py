"""Tool allow-lists and the explainable catalog, through ``/mcp`` and the management API of a real Warden."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import httpx
import pytest
from mcp.shared.exceptions import MCPError

from tests.conftest import STRONG_PASSWORD
from tests.interaction.process import WardenProcess, served
from tests.mcp.conftest import mcp_client, stdio_server

AGENT = "wdn_" + "G" * 43


@pytest.fixture
def warden(tmp_path: Any) -> Iterator[WardenProcess]:
    with served(tmp_path, {
        "mcp": {"default_access": "deny"},
        "mcp_servers": [stdio_server("demo")],
        "api_keys": [{"name": "agent", "owner": "admin@example.com", "secret": AGENT, "surfaces": ["mcp"]}],
    }) as process:
        yield process


@contextmanager
def admin_console(warden: WardenProcess) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=warden.console) as client:
        body = {"email": "admin@example.com", "password": STRONG_PASSWORD}
        assert client.post("/api/setup", json=body).status_code == 201  # claims the key's passwordless owner
        client.headers["x-csrf-token"] = client.post("/api/auth/login", json=body).json()["csrf_token"]
        yield client


async def listed(warden: WardenProcess) -> list[str]:
    async with mcp_client(warden.gateway + "/mcp", AGENT) as session:
        return [t.name for t in (await session.list_tools()).tools]


async def test_the_catalog_is_exactly_what_the_rules_allow(warden: WardenProcess) -> None:
    assert await listed(warden) == []  # default deny, no rules
    async with mcp_client(warden.gateway + "/mcp", AGENT) as session:
        with pytest.raises(MCPError) as caught:
            await session.call_tool("demo__echo", {"text": "x"})
        assert caught.value.code == -32602

    with admin_console(warden) as console:
        me = console.get("/api/auth/me").json()["user"]["id"]
        user_rule = console.post("/api/mcp/access-rules", json={"subject_kind": "user", "subject_id": me,
                                                                 "pattern": "demo__*"})
        assert user_rule.status_code == 201
        tools = await listed(warden)
        assert "demo__echo" in tools and "demo__add" in tools

        key_id = next(k["id"] for k in console.get("/api/keys").json()["items"] if k["name"] == "agent")
        assert console.post("/api/mcp/access-rules", json={"subject_kind": "api_key", "subject_id": key_id,
                                                           "pattern": "demo__echo"}).status_code == 201
        assert await listed(warden) == ["demo__echo"]
        async with mcp_client(warden.gateway + "/mcp", AGENT) as session:
            assert (await session.call_tool("demo__echo", {"text": "ok"})).is_error is False
            with pytest.raises(MCPError):
                await session.call_tool("demo__add", {"a": 1, "b": 2})

        why = console.get("/api/mcp/explain", params={"tool": "demo__add", "api_key": key_id}).json()
        assert why["listed"] is False and any("key" in r for r in why["reasons"])
        assert console.get("/api/mcp/explain", params={"tool": "demo__echo", "api_key": key_id}).json()["listed"]
        nothing = console.get("/api/mcp/explain", params={"tool": "nowhere__x"}).json()
        assert nothing["reasons"][0].startswith("upstream: no MCP server")
        missing = console.get("/api/mcp/explain", params={"tool": "demo__nope"}).json()
        assert "offers no tool" in missing["reasons"][0]
        assert console.get("/api/mcp/explain", params={"tool": "bad"}).status_code == 422
        bad = console.post("/api/mcp/access-rules", json={"subject_kind": "user", "subject_id": me,
                                                          "pattern": "demo"})
        assert bad.status_code == 422


@pytest.fixture
def declared(tmp_path: Any) -> Iterator[WardenProcess]:
    with served(tmp_path, {
        "mcp": {"default_access": "deny",
                "access_rules": [{"subject": "user:admin@example.com", "pattern": "demo__echo"},
                                 {"subject": "role:viewer", "pattern": "demo__*"}]},
        "mcp_servers": [stdio_server("demo")],
        "api_keys": [{"name": "agent", "owner": "admin@example.com", "secret": AGENT, "surfaces": ["mcp"]}],
    }) as process:
        yield process


async def test_access_rules_declared_in_the_file_apply_and_are_read_only(declared: WardenProcess) -> None:
    assert await listed(declared) == ["demo__echo"]
    with admin_console(declared) as console:
        rules = console.get("/api/mcp/access-rules").json()["items"]
        assert {(r["subject_kind"], r["pattern"]) for r in rules} == {("user", "demo__echo"), ("role", "demo__*")}
        viewer_rule = next(r for r in rules if r["subject_kind"] == "role")
        assert viewer_rule["subject_id"] == "viewer"
        assert console.delete(f"/api/mcp/access-rules/{viewer_rule['id']}").status_code == 409


def test_a_declared_rule_for_an_unknown_user_stops_start_up(tmp_path: Any) -> None:
    config = {"mcp": {"access_rules": [{"subject": "user:ghost@example.com", "pattern": "demo__*"}]}}
    with pytest.raises(AssertionError, match=r"mcp.access_rules\[0\]"), served(tmp_path, config):
        pass
