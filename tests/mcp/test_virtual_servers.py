"""Virtual servers: chosen upstream tools, renamed, at ``/mcp/<name>``, from the file and from the API."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from mcp.shared.exceptions import MCPError

from tests.interaction.process import WardenProcess, served
from tests.mcp.conftest import mcp_client, stdio_server

AGENT = "wdn_" + "v" * 43
NARROW = "wdn_" + "w" * 43
ADMIN = "wdn_" + "x" * 43


@pytest.fixture(scope="module")
def warden(tmp_path_factory: pytest.TempPathFactory, upstream_url: str) -> Iterator[WardenProcess]:
    tmp: Path = tmp_path_factory.mktemp("virtual")
    with served(tmp, {
        "mcp_servers": [{"name": "web", "transport": "streamable_http", "url": upstream_url},
                        stdio_server("demo")],
        "mcp_virtual_servers": [{"name": "review-kit", "description": "what reviewers need", "tools": [
            {"tool": "web__echo", "name": "say", "description": "Repeat the text back."},
            {"tool": "demo__add"},
            {"tool": "web__countdown", "name": "wait_a_bit"},
        ]}],
        "api_keys": [{"name": "agent", "owner": "agent@example.com", "secret": AGENT, "surfaces": ["mcp"]},
                     {"name": "narrow", "owner": "agent@example.com", "secret": NARROW, "surfaces": ["mcp"]},
                     {"name": "admin", "owner": "agent@example.com", "secret": ADMIN, "surfaces": ["management"]}],
    }) as process:
        setup = httpx.post(process.console + "/api/setup", json={"email": "agent@example.com",
                                                                  "password": "correct horse 9 battery"})
        assert setup.status_code == 201
        yield process


def admin() -> dict[str, str]:
    return {"authorization": f"Bearer {ADMIN}"}


async def test_a_virtual_server_lists_its_tools_renamed_in_order(warden: WardenProcess) -> None:
    async with mcp_client(warden.gateway + "/mcp/review-kit", AGENT) as session:
        tools = (await session.list_tools()).tools
        said = await session.call_tool("say", {"text": "hello"})
        summed = await session.call_tool("add", {"a": 1, "b": 2})
        progress: list[float] = []

        async def on_progress(value: float, total: float | None, message: str | None) -> None:
            progress.append(value)

        await session.call_tool("wait_a_bit", {"steps": 2}, progress_callback=on_progress)
        prompts = (await session.list_prompts()).prompts
        with pytest.raises(MCPError) as unknown:
            await session.call_tool("web__echo", {"text": "the original name is not served here"})
    assert [t.name for t in tools] == ["say", "add", "wait_a_bit"]
    assert tools[0].description == "Repeat the text back."
    assert tools[0].input_schema["properties"]["text"]  # the upstream's schema, unchanged
    assert said.content[0].text == "hello"  # type: ignore[union-attr]
    assert summed.structured_content == {"result": 3}
    assert progress == [1, 2]
    assert prompts == []
    assert unknown.value.code == -32602


async def test_access_rules_apply_to_the_upstream_tool_behind_each_entry(warden: WardenProcess) -> None:
    async with httpx.AsyncClient(headers=admin()) as http:
        keys = (await http.get(warden.console + "/api/keys")).json()["items"]
        narrow = next(k for k in keys if k["name"] == "narrow")
        rule = await http.post(warden.console + "/api/mcp/access-rules", json={
            "subject_kind": "api_key", "subject_id": narrow["id"], "pattern": "web__*"})
        assert rule.status_code == 201
    async with mcp_client(warden.gateway + "/mcp/review-kit", NARROW) as session:
        names = [t.name for t in (await session.list_tools()).tools]
        with pytest.raises(MCPError) as refused:
            await session.call_tool("add", {"a": 1, "b": 2})
    assert names == ["say", "wait_a_bit"]
    assert refused.value.code == -32602


async def test_virtual_servers_are_managed_through_the_api(warden: WardenProcess) -> None:
    async with httpx.AsyncClient(headers=admin()) as http:
        base = warden.console + "/api/mcp/virtual-servers"
        created = await http.post(base, json={"name": "tiny", "tools": [{"tool": "web__add", "name": "plus"}]})
        assert created.status_code == 201, created.text
        assert created.json()["tools"][0] == {"tool": "web__add", "name": "plus", "description": None,
                                              "shown_as": "plus", "available": True}
        async with mcp_client(warden.gateway + "/mcp/tiny", AGENT) as session:
            assert [t.name for t in (await session.list_tools()).tools] == ["plus"]
        replaced = await http.put(base + "/tiny", json={"tools": [{"tool": "web__echo"}, {"tool": "demo__echo"}]})
        assert replaced.status_code == 422  # both would be shown as "echo"
        assert "rename one" in replaced.text
        clash = await http.post(base, json={"name": "web", "tools": [{"tool": "web__echo"}]})
        assert clash.status_code == 409
        from_file = await http.delete(base + "/review-kit")
        assert from_file.status_code == 409
        assert (await http.delete(base + "/tiny")).status_code == 204
        async with httpx.AsyncClient() as plain:
            gone = await plain.post(warden.gateway + "/mcp/tiny", headers={"authorization": f"Bearer {AGENT}"},
                                    json={"jsonrpc": "2.0", "id": 1, "method": "ping"})
        assert gone.status_code == 404
        listed = (await http.get(base)).json()["items"]
        assert [v["name"] for v in listed] == ["review-kit"]
