"""``/v1/messages`` driven by the official ``anthropic`` SDK (2.x, on httpx2) against the fake OpenAI-format
provider: Warden converts Anthropic Messages to Chat Completions and back, streaming and tool use included."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import anthropic
import httpx
import pytest

from tests.ai.test_chat_completions import KEY, LIMITED, provider, received, warden  # noqa: F401 - fixtures
from tests.interaction.process import WardenProcess

TOOLS: list[Any] = [{"name": "weather", "description": "The weather in a city", "input_schema": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"]}}]


@pytest.fixture
async def client(warden: WardenProcess) -> AsyncIterator[anthropic.AsyncAnthropic]:  # noqa: F811
    async with anthropic.AsyncAnthropic(base_url=warden.gateway, api_key=KEY, max_retries=0) as sdk:
        yield sdk


async def test_a_message_is_converted_both_ways(client: anthropic.AsyncAnthropic, provider: str) -> None:  # noqa: F811
    message = await client.messages.create(model="gpt-4o-mini", max_tokens=100, system="Be brief.",
                                           stop_sequences=["END"],
                                           messages=[{"role": "user", "content": "Hi"}])
    assert message.content[0].type == "text" and message.content[0].text == "Hello from the fake provider."
    assert message.stop_reason == "end_turn"
    assert (message.usage.input_tokens, message.usage.output_tokens) == (21, 6)
    sent = received(provider)[-1]
    assert sent["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    assert (sent["max_tokens"], sent["stop"]) == (100, ["END"])


async def test_a_streamed_message_arrives_as_messages_events(client: anthropic.AsyncAnthropic) -> None:
    async with client.messages.stream(model="gpt-4o-mini", max_tokens=100,
                                      messages=[{"role": "user", "content": "Hi"}]) as stream:
        texts = [text async for text in stream.text_stream]
        final = await stream.get_final_message()
    assert "".join(texts) == "Hello from the fake provider." and len(texts) > 1
    assert final.stop_reason == "end_turn" and final.usage.output_tokens == 6


async def test_tool_use_round_trip(client: anthropic.AsyncAnthropic, provider: str) -> None:  # noqa: F811
    first = await client.messages.create(model="gpt-4o-mini", max_tokens=100, tools=TOOLS,
                                         tool_choice={"type": "auto"},
                                         messages=[{"role": "user", "content": "Weather in Paris?"}])
    assert first.stop_reason == "tool_use"
    use = next(block for block in first.content if block.type == "tool_use")
    assert use.name == "weather" and use.input == {"city": "Paris"}
    assert received(provider)[-1]["tools"][0]["function"]["parameters"]["required"] == ["city"]

    async with client.messages.stream(model="gpt-4o-mini", max_tokens=100, tools=TOOLS,
                                      messages=[{"role": "user", "content": "Weather in Paris?"}]) as stream:
        streamed = await stream.get_final_message()
    streamed_use = next(block for block in streamed.content if block.type == "tool_use")
    assert streamed_use.input == {"city": "Paris"} and streamed.stop_reason == "tool_use"

    final = await client.messages.create(model="gpt-4o-mini", max_tokens=100, tools=TOOLS, messages=[
        {"role": "user", "content": "Weather in Paris?"},
        {"role": "assistant", "content": [block.model_dump() for block in first.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "18 degrees"}]}])
    assert final.content[0].type == "text"
    sent = received(provider)[-1]["messages"]
    assert sent[1]["tool_calls"][0]["function"] == {"name": "weather", "arguments": json.dumps({"city": "Paris"})}
    assert sent[2] == {"role": "tool", "tool_call_id": use.id, "content": "18 degrees"}


async def test_errors_in_anthropic_shape(warden: WardenProcess) -> None:  # noqa: F811
    async with anthropic.AsyncAnthropic(base_url=warden.gateway, api_key=LIMITED, max_retries=0) as limited:
        with pytest.raises(anthropic.PermissionDeniedError) as forbidden:
            await limited.messages.create(model="gpt-4o", max_tokens=10, messages=[{"role": "user", "content": "x"}])
    assert forbidden.value.body["error"]["type"] == "permission_error"  # type: ignore[index]
    async with anthropic.AsyncAnthropic(base_url=warden.gateway, api_key=KEY, max_retries=0) as sdk:
        with pytest.raises(anthropic.NotFoundError) as unknown:
            await sdk.messages.create(model="nothing-here", max_tokens=10, messages=[{"role": "user", "content": "x"}])
        assert unknown.value.body["error"]["type"] == "not_found_error"  # type: ignore[index]
        with pytest.raises(anthropic.BadRequestError) as passed_on:
            await sdk.messages.create(model="gpt-refuse", max_tokens=10, messages=[{"role": "user", "content": "x"}])
        assert "max_tokens is too large" in passed_on.value.body["error"]["message"]  # type: ignore[index]
        with pytest.raises(anthropic.InternalServerError):
            await sdk.messages.create(model="gpt-fail", max_tokens=10, messages=[{"role": "user", "content": "x"}])



def test_malformed_requests_and_unknown_keys_in_anthropic_shape(warden: WardenProcess) -> None:  # noqa: F811
    missing = httpx.post(warden.gateway + "/v1/messages", headers={"x-api-key": KEY,
                                                                    "anthropic-version": "2023-06-01"},
                         json={"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "x"}]})
    assert missing.status_code == 400 and missing.json()["error"]["type"] == "invalid_request_error"
    assert "max_tokens" in missing.json()["error"]["message"]
    unknown_key = httpx.post(warden.gateway + "/v1/messages", headers={"x-api-key": "wdn_" + "z" * 43},
                             json={"model": "gpt-4o-mini", "max_tokens": 5, "messages": []})
    assert unknown_key.status_code == 401 and unknown_key.json()["error"]["type"] == "authentication_error"
