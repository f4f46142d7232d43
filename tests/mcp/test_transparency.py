"""One suite, two URLs: the demo upstream directly, and the same upstream through ``/mcp/<name>``.
Whatever a client sees directly it must see identically through Warden."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import mcp_types as types
import pytest
from mcp import ClientSession

from tests.interaction.process import WardenProcess, served
from tests.mcp.conftest import mcp_client

SECRET = "wdn_" + "T" * 43


@pytest.fixture(scope="module")
def upstream_url() -> Iterator[str]:
    from tests.mcp import conftest

    yield from conftest.http_upstream.__wrapped__()  # type: ignore[attr-defined]


@pytest.fixture(scope="module")
def warden(tmp_path_factory: pytest.TempPathFactory, upstream_url: str) -> Iterator[WardenProcess]:
    tmp: Path = tmp_path_factory.mktemp("transparency")
    with served(tmp, {
        "mcp_servers": [{"name": "web", "transport": "streamable_http", "url": upstream_url}],
        "api_keys": [{"name": "agent", "owner": "agent@example.com", "secret": SECRET, "surfaces": ["mcp"]}],
    }) as process:
        yield process


@pytest.fixture(params=["direct", "through_warden"])
def connect(request: pytest.FixtureRequest, upstream_url: str, warden: WardenProcess):  # type: ignore[no-untyped-def]
    @asynccontextmanager
    async def opened() -> AsyncIterator[ClientSession]:
        if request.param == "direct":
            async with mcp_client(upstream_url, None) as session:
                yield session
        else:
            async with mcp_client(warden.gateway + "/mcp/web", SECRET) as session:
                yield session

    return opened


async def test_tools_are_listed_identically(connect, upstream_url: str) -> None:  # type: ignore[no-untyped-def]
    async with connect() as session, mcp_client(upstream_url, None) as direct:
        seen = (await session.list_tools()).tools
        expected = (await direct.list_tools()).tools
    assert [t.model_dump() for t in seen] == [t.model_dump() for t in expected]


async def test_calls_return_identical_results(connect) -> None:  # type: ignore[no-untyped-def]
    async with connect() as session:
        echoed = await session.call_tool("echo", {"text": "same"})
        summed = await session.call_tool("add", {"a": 2, "b": 40})
        failed = await session.call_tool("explode", {})
    assert echoed.model_dump(exclude={"meta"}) == types.CallToolResult(
        content=[types.TextContent(type="text", text="same")], structured_content={"result": "same"},
    ).model_dump(exclude={"meta"})
    assert summed.structured_content == {"result": 42}
    assert failed.is_error


async def test_progress_arrives_identically(connect) -> None:  # type: ignore[no-untyped-def]
    seen: list[tuple[float, float | None, str | None]] = []

    async def on_progress(progress: float, total: float | None, message: str | None) -> None:
        seen.append((progress, total, message))

    async with connect() as session:
        await session.call_tool("countdown", {"steps": 3}, progress_callback=on_progress)
    assert seen == [(1, 3, "step 1"), (2, 3, "step 2"), (3, 3, "step 3")]


async def test_prompts_resources_and_completion_are_identical(connect) -> None:  # type: ignore[no-untyped-def]
    async with connect() as session:
        prompts = [p.name for p in (await session.list_prompts()).prompts]
        prompt = await session.get_prompt("review", {"language": "python"})
        resources = sorted(str(r.uri) for r in (await session.list_resources()).resources)
        templates = [t.uri_template for t in (await session.list_resource_templates()).resource_templates]
        item = await session.read_resource("demo://items/7")
        completion = await session.complete(types.PromptReference(type="ref/prompt", name="review"),
                                            {"name": "language", "value": "r"})
    assert prompts == ["review"]
    assert prompt.messages[0].content.text == "Please review this python code."  # type: ignore[union-attr]
    assert resources == ["demo://readme"]
    assert templates == ["demo://items/{item_id}"]
    assert item.contents[0].text == "item 7"  # type: ignore[union-attr]
    assert completion.completion.values == ["rust"]
