"""Per-tool options: result caching (per user, never errors) and the per-user credential hook."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from mcp.shared.exceptions import MCPError

from tests.conftest import eventually
from tests.interaction.process import WardenProcess, served
from tests.mcp.conftest import mcp_client

ALICE = "wdn_" + "a" * 43
BOB = "wdn_" + "b" * 43
ADMIN = "wdn_" + "c" * 43


@pytest.fixture(scope="module")
def warden(tmp_path_factory: pytest.TempPathFactory, upstream_url: str) -> Iterator[WardenProcess]:
    tmp: Path = tmp_path_factory.mktemp("tool-options")
    with served(tmp, {
        "server": {"console_public_url": "https://warden.example/"},
        "mcp_servers": [{"name": "web", "transport": "streamable_http", "url": upstream_url, "tool_options": {
            "counter": {"cache_ttl_seconds": 60}, "explode": {"cache_ttl_seconds": 60},
            "sound": {"requires_user_credential": True}}}],
        "api_keys": [{"name": "alice", "owner": "alice@example.com", "secret": ALICE, "surfaces": ["mcp"]},
                     {"name": "bob", "owner": "bob@example.com", "secret": BOB, "surfaces": ["mcp"]},
                     {"name": "admin", "owner": "alice@example.com", "secret": ADMIN, "surfaces": ["management"]}],
    }) as process:
        setup = httpx.post(process.console + "/api/setup", json={"email": "alice@example.com",
                                                                  "password": "correct horse 9 battery"})
        assert setup.status_code == 201
        yield process


def url(warden: WardenProcess) -> str:
    return warden.gateway + "/mcp"


async def audited_calls(warden: WardenProcess, tool: str, count: int) -> list[dict[str, Any]]:
    """The audited calls of ``tool``, once ``count`` of them are stored (the writer works off the request path)."""
    calls: list[dict[str, Any]] = []

    async def stored() -> bool:
        nonlocal calls
        async with httpx.AsyncClient(headers={"authorization": f"Bearer {ADMIN}"}) as http:
            items = (await http.get(warden.console + "/api/mcp/calls")).json()["items"]
        calls = [call for call in items if call["detail"]["tool"] == tool]
        return len(calls) >= count

    assert await eventually(stored)
    return calls


async def test_a_cacheable_tool_answers_the_same_caller_from_the_cache(warden: WardenProcess) -> None:
    async with mcp_client(url(warden), ALICE) as session:
        first = (await session.call_tool("web__counter", {"label": "x"})).structured_content
        again = (await session.call_tool("web__counter", {"label": "x"})).structured_content
        other_arguments = (await session.call_tool("web__counter", {"label": "y"})).structured_content
    async with mcp_client(url(warden), ALICE) as session:  # a new session, same user
        later = (await session.call_tool("web__counter", {"label": "x"})).structured_content
    async with mcp_client(url(warden), BOB) as session:  # another user never gets alice's result
        bobs = (await session.call_tool("web__counter", {"label": "x"})).structured_content
    assert first == again == later
    calls = await audited_calls(warden, "web__counter", 5)
    hits = [call for call in calls if "cache_hit" in [e["event"] for e in call["detail"]["timeline"]]]
    assert len(hits) == 2 and all(call["outcome"] == "ok" for call in hits)  # cached calls are audited too
    assert other_arguments != first and bobs not in (first, other_arguments)


async def test_errors_are_never_cached(warden: WardenProcess) -> None:
    async with mcp_client(url(warden), ALICE) as session:
        for _ in range(2):
            assert (await session.call_tool("web__explode", {})).is_error
    calls = await audited_calls(warden, "web__explode", 2)
    timelines = [[e["event"] for e in call["detail"]["timeline"]] for call in calls]
    assert timelines == [["start", "tool_error"], ["start", "tool_error"]]


async def test_a_tool_needing_the_users_own_credential_says_where_to_link_it(warden: WardenProcess) -> None:
    async with mcp_client(url(warden), ALICE) as session:
        listed = [t.name for t in (await session.list_tools()).tools]
        with pytest.raises(MCPError) as refused:
            await session.call_tool("web__sound", {})
    assert "web__sound" in listed  # listed, so the agent can tell its user what to link
    assert refused.value.code == -32050
    assert refused.value.data["connect_url"] == "https://warden.example/connections?server=web"
    assert refused.value.data["tool"] == "web__sound"
    async with httpx.AsyncClient(headers={"authorization": f"Bearer {ADMIN}"}) as http:
        explained = (await http.get(warden.console + "/api/mcp/explain", params={"tool": "web__sound"})).json()
    assert explained["listed"] is True and explained["callable"] is False
    assert explained["reasons"][0].startswith("credential:")


def test_tool_options_are_shown_by_the_api(warden: WardenProcess) -> None:
    server = httpx.get(warden.console + "/api/mcp/servers/web", headers={"authorization": f"Bearer {ADMIN}"}).json()
    assert server["tool_options"]["counter"] == {"cache_ttl_seconds": 60.0, "requires_user_credential": False}
    assert server["tool_options"]["sound"]["requires_user_credential"] is True
