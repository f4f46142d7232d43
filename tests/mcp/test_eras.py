"""Warden bridges the protocol eras both ways: clients of either era, upstreams of either era."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import mcp_types as types
import pytest
from mcp.shared.exceptions import MCPError

from tests.conftest import eventually
from tests.interaction.process import WardenProcess, served
from tests.mcp.conftest import mcp_client, modern_client, stdio_server

SECRET = "wdn_" + "E" * 43


@pytest.fixture(scope="module")
def warden(tmp_path_factory: pytest.TempPathFactory) -> Iterator[WardenProcess]:
    tmp: Path = tmp_path_factory.mktemp("eras")
    modern = stdio_server("modern")
    modern["env"]["DEMO_MODERN_ONLY"] = "1"
    with served(tmp, {
        "mcp_servers": [stdio_server("legacy"), modern],
        "api_keys": [{"name": "agent", "owner": "agent@example.com", "secret": SECRET, "surfaces": ["mcp"]}],
    }) as process:
        yield process


def url(warden: WardenProcess) -> str:
    return warden.gateway + "/mcp"


@pytest.mark.parametrize("era", ["2025-11-25", "2026-07-28"])
async def test_both_eras_of_client_use_both_eras_of_upstream(warden: WardenProcess, era: str) -> None:
    progress: list[float] = []

    async def on_progress(value: float, total: float | None, message: str | None) -> None:
        progress.append(value)

    client: Any = mcp_client(url(warden), SECRET) if era == "2025-11-25" else modern_client(url(warden), SECRET)
    async with client as session:
        names = [t.name for t in (await session.list_tools()).tools]
        from_modern = await session.call_tool("modern__echo", {"text": "new"})
        from_legacy = await session.call_tool("legacy__echo", {"text": "old"})
        await session.call_tool("modern__countdown", {"steps": 3}, progress_callback=on_progress)
        prompt = await session.get_prompt("modern__review", {"language": "go"})
        item = await session.read_resource("modern+demo://items/3")
    assert "modern__echo" in names and "legacy__echo" in names
    assert from_modern.content[0].text == "new" and from_legacy.content[0].text == "old"
    assert progress == [1, 2, 3]
    assert prompt.messages[0].content.text == "Please review this go code."
    assert item.contents[0].text == "item 3"


async def sample(context: Any, params: types.CreateMessageRequestParams) -> types.CreateMessageResult:
    return types.CreateMessageResult(role="assistant", model="m",
                                     content=types.TextContent(type="text", text="forty-two"))


async def test_a_legacy_client_answers_a_modern_upstreams_input_request_on_its_session(warden: WardenProcess) -> None:
    """The upstream returns input_required; Warden asks the client over its session and retries upstream."""
    async with mcp_client(url(warden), SECRET, sampling_callback=sample) as session:
        answered = await session.call_tool("modern__ask_model", {"question": "meaning?"})
    assert answered.content[0].text == "forty-two"  # type: ignore[union-attr]


async def test_a_modern_client_gets_a_modern_upstreams_input_required_and_retries(warden: WardenProcess) -> None:
    async with modern_client(url(warden), SECRET) as session:
        first = await session.call_tool("modern__ask_model", {"question": "meaning?"}, allow_input_required=True)
        assert isinstance(first, types.InputRequiredResult)
        request = first.input_requests["model"]
        assert isinstance(request, types.CreateMessageRequest)
        answer = await sample(None, request.params)
        final = await session.call_tool("modern__ask_model", {"question": "meaning?"}, allow_input_required=True,
                                        input_responses={"model": answer}, request_state=first.request_state)
    assert isinstance(final, types.CallToolResult)
    assert final.content[0].text == "forty-two"  # type: ignore[union-attr]


async def test_a_modern_client_answers_a_legacy_upstreams_request_through_input_required(
        warden: WardenProcess) -> None:
    """The handshake-era upstream asks for sampling mid-call; the 2026-07-28 client gets input_required,
    answers, retries, and gets the result."""
    async with modern_client(url(warden), SECRET, sampling_callback=sample) as session:
        first = await session.call_tool("legacy__ask_model", {"question": "meaning?"}, allow_input_required=True)
        assert isinstance(first, types.InputRequiredResult)
        (key, request), = first.input_requests.items()
        assert isinstance(request, types.CreateMessageRequest)
        assert request.params.messages[0].content.text == "meaning?"  # type: ignore[union-attr]
        answer = await sample(None, request.params)
        final = await session.call_tool("legacy__ask_model", {"question": "meaning?"}, allow_input_required=True,
                                        input_responses={key: answer}, request_state=first.request_state)
        with pytest.raises(MCPError) as forged:
            await session.call_tool("legacy__ask_model", {"question": "meaning?"}, allow_input_required=True,
                                    input_responses={key: answer}, request_state="bm90IG91cnM=")
    assert isinstance(final, types.CallToolResult)
    assert final.content[0].text == "forty-two"  # type: ignore[union-attr]
    assert forged.value.code == -32602


async def test_a_modern_client_without_the_capability_is_refused_clearly(warden: WardenProcess) -> None:
    async with modern_client(url(warden), SECRET) as session:
        with pytest.raises(MCPError, match="Sampling not supported"):
            await session.call_tool("legacy__ask_model", {"question": "anyone?"})


async def test_a_modern_upstreams_list_change_reaches_the_catalog(warden: WardenProcess) -> None:
    async with modern_client(url(warden), SECRET) as session:
        assert "modern__grown" not in [t.name for t in (await session.list_tools()).tools]
        await session.call_tool("modern__grow", {})

        async def grown() -> bool:
            return "modern__grown" in [t.name for t in (await session.list_tools()).tools]

        assert await eventually(grown, within=10)


async def test_a_modern_client_listens_to_a_legacy_upstreams_resource(warden: WardenProcess) -> None:
    from mcp.client.subscriptions import listen

    async with modern_client(url(warden), SECRET) as session:
        async with listen(session, resource_subscriptions=["legacy+demo://readme"]) as subscription:
            touched = await session.call_tool("legacy__touch", {"uri": "demo://readme"})
            assert touched.structured_content == {"result": True}  # Warden subscribed upstream for the stream
            with anyio.fail_after(10):
                event = await subscription.__anext__()
        assert getattr(event, "uri", None) == "legacy+demo://readme"

        async def unsubscribed() -> bool:  # once Warden has seen the stream end
            touched = await session.call_tool("legacy__touch", {"uri": "demo://readme"})
            return touched.structured_content == {"result": False}

        assert await eventually(unsubscribed)


async def test_a_legacy_client_answers_a_modern_upstreams_prompt_input_request(warden: WardenProcess) -> None:
    async def elicit(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        return types.ElicitResult(action="accept", content={"name": "Ada"})

    async with mcp_client(url(warden), SECRET, elicitation_callback=elicit) as session:
        prompt = await session.get_prompt("modern__personal")
    assert prompt.messages[0].content.text == "Hello Ada."  # type: ignore[union-attr]


async def test_a_modern_client_listens_to_a_modern_upstreams_resource(warden: WardenProcess) -> None:
    from mcp.client.subscriptions import listen

    async with modern_client(url(warden), SECRET) as session, \
            listen(session, resource_subscriptions=["modern+demo://readme"]) as subscription:
        with anyio.fail_after(10):
            while True:  # until Warden's own listen stream upstream names the resource
                await session.call_tool("modern__touch", {"uri": "demo://readme"})
                with anyio.move_on_after(0.5):
                    event = await subscription.__anext__()
                    break
    assert getattr(event, "uri", None) == "modern+demo://readme"


async def test_a_modern_client_answers_a_legacy_upstreams_prompt_through_input_required(
        warden: WardenProcess) -> None:
    async def elicit(context: Any, params: types.ElicitRequestParams) -> types.ElicitResult:
        return types.ElicitResult(action="accept", content={"name": "Grace"})

    async with modern_client(url(warden), SECRET, elicitation_callback=elicit) as session:
        first = await session.get_prompt("legacy__personal", allow_input_required=True)
        assert isinstance(first, types.InputRequiredResult) and first.input_requests
        (key, request), = first.input_requests.items()
        assert isinstance(request, types.ElicitRequest)
        answer = await elicit(None, request.params)
        final = await session.get_prompt("legacy__personal", allow_input_required=True,
                                         input_responses={key: answer}, request_state=first.request_state)
    assert isinstance(final, types.GetPromptResult)
    assert final.messages[0].content.text == "Hello Grace."  # type: ignore[union-attr]
