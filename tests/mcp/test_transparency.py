"""One suite, two URLs: the demo upstream directly, and the same upstream through ``/mcp/<name>``.
Whatever a client sees directly it must see identically through Warden."""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp import ClientSession
from mcp.shared.exceptions import MCPError

from tests.interaction.process import WardenProcess, served
from tests.mcp.conftest import mcp_client

SECRET = "wdn_" + "T" * 43


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
    async def opened(**callbacks: Any) -> AsyncIterator[ClientSession]:
        if request.param == "direct":
            async with mcp_client(upstream_url, None, **callbacks) as session:
                yield session
        else:
            async with mcp_client(warden.gateway + "/mcp/web", SECRET, **callbacks) as session:
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
    assert prompts == ["show", "personal", "review"]  # the upstream's own order
    assert prompt.messages[0].content.text == "Please review this python code."  # type: ignore[union-attr]
    assert resources == ["demo://logo.png", "demo://readme"]
    assert templates == ["demo://items/{item_id}"]
    assert item.contents[0].text == "item 7"  # type: ignore[union-attr]
    assert completion.completion.values == ["rust"]


async def test_every_content_type_comes_back_identically(connect) -> None:  # type: ignore[no-untyped-def]
    async with connect() as session:
        results = {name: (await session.call_tool(name, {})).model_dump(exclude={"meta"})
                   for name in ("picture", "sound", "attachment", "mixed")}
    image = results["picture"]["content"][0]
    assert image["type"] == "image" and image["mime_type"] == "image/png" and image["data"]
    assert results["sound"]["content"][0]["type"] == "audio"
    assert results["attachment"]["content"][0]["resource"]["text"] == "demo readme"
    assert [c["type"] for c in results["mixed"]["content"]] == ["text", "image", "resource_link"]


async def test_binary_resources_and_rich_prompts_are_identical(connect) -> None:  # type: ignore[no-untyped-def]
    async with connect() as session:
        logo = await session.read_resource("demo://logo.png")
        prompt = await session.get_prompt("show", {"subject": "the logo"})
    assert isinstance(logo.contents[0], types.BlobResourceContents) and logo.contents[0].mime_type == "image/png"
    assert [m.content.type for m in prompt.messages] == ["text", "image", "resource"]


async def test_log_messages_stream_during_the_call_and_follow_set_level(connect) -> None:  # type: ignore[no-untyped-def]
    received: list[tuple[str, object]] = []

    async def on_log(params: types.LoggingMessageNotificationParams) -> None:
        received.append((params.level, params.data))

    async with connect(logging_callback=on_log) as session:
        await session.call_tool("chatty", {})
        everything = list(received)
        received.clear()
        await session.send_request(types.SetLevelRequest(params=types.SetLevelRequestParams(level="warning")),
                                   types.EmptyResult)
        await session.call_tool("chatty", {})
    assert everything == [("debug", "debug line"), ("info", "info line"), ("warning", "warning line")]
    assert received == [("warning", "warning line")]


async def test_sampling_request_reaches_the_calling_client(connect) -> None:  # type: ignore[no-untyped-def]
    asked: list[str] = []

    async def sample(context: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
        asked.append(params.messages[0].content.text)  # type: ignore[union-attr]
        return types.CreateMessageResult(role="assistant", model="test-model",
                                         content=types.TextContent(type="text", text="forty-two"))

    async with connect(sampling_callback=sample) as session:
        answered = await session.call_tool("ask_model", {"question": "meaning of life?"})
    assert asked == ["meaning of life?"]
    assert answered.content[0].text == "forty-two"  # type: ignore[union-attr]


async def test_sampling_without_the_capability_is_refused_clearly(connect) -> None:  # type: ignore[no-untyped-def]
    async with connect() as session:
        with pytest.raises(MCPError, match="Sampling not supported"):
            await session.call_tool("ask_model", {"question": "anyone?"})


async def test_elicitation_reaches_the_calling_client(connect) -> None:  # type: ignore[no-untyped-def]
    async def elicit(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        assert "favourite colour" in params.message
        return types.ElicitResult(action="accept", content={"colour": "teal"})

    async with connect(elicitation_callback=elicit) as session:
        answered = await session.call_tool("ask_user", {})
    assert answered.content[0].text == "teal"  # type: ignore[union-attr]


async def test_roots_are_asked_of_the_calling_client(connect) -> None:  # type: ignore[no-untyped-def]
    async def list_roots(context: Any) -> types.ListRootsResult:
        return types.ListRootsResult(roots=[types.Root(uri="file:///work/project", name="project")])

    async with connect(list_roots_callback=list_roots) as session:
        answered = await session.call_tool("roots", {})
    assert answered.structured_content == {"result": ["file:///work/project"]}


async def test_resource_subscriptions_notify_and_unsubscribe(connect) -> None:  # type: ignore[no-untyped-def]
    updated: list[str] = []
    arrived = anyio.Event()

    async def on_message(message: Any) -> None:
        if isinstance(message, types.ResourceUpdatedNotification):
            updated.append(str(message.params.uri))
            arrived.set()

    async with connect(message_handler=on_message) as session:
        await session.send_request(types.SubscribeRequest(params=types.SubscribeRequestParams(
            uri="demo://readme")), types.EmptyResult)
        assert (await session.call_tool("touch", {"uri": "demo://readme"})).structured_content == {"result": True}
        with anyio.fail_after(5):
            await arrived.wait()
        await session.send_request(types.UnsubscribeRequest(params=types.UnsubscribeRequestParams(
            uri="demo://readme")), types.EmptyResult)
        assert (await session.call_tool("touch", {"uri": "demo://readme"})).structured_content == {"result": False}
    assert updated == ["demo://readme"]


async def test_concurrent_calls_in_one_session_each_get_their_own_stream(connect) -> None:  # type: ignore[no-untyped-def]
    seen: dict[str, list[float]] = {"a": [], "b": []}

    async with connect() as session:
        async def run(label: str, steps: int) -> None:
            async def on_progress(progress: float, total: float | None, message: str | None) -> None:
                seen[label].append(progress)
            await session.call_tool("countdown", {"steps": steps}, progress_callback=on_progress)

        async with anyio.create_task_group() as group:
            group.start_soon(run, "a", 3)
            group.start_soon(run, "b", 5)
    assert seen == {"a": [1, 2, 3], "b": [1, 2, 3, 4, 5]}
