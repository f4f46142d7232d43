"""``/v1/responses`` driven by the official ``openai`` SDK against the fake Chat Completions provider: Warden
converts Responses requests, answers and streams both ways, function calls included."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import openai
import pytest

from tests.ai.test_chat_completions import KEY, provider, received, warden  # noqa: F401 - fixtures
from tests.interaction.process import WardenProcess

TOOLS: list[Any] = [{"type": "function", "name": "weather", "description": "The weather in a city",
                     "parameters": {"type": "object", "properties": {"city": {"type": "string"}},
                                    "required": ["city"]}}]


@pytest.fixture
async def client(warden: WardenProcess) -> AsyncIterator[openai.AsyncOpenAI]:  # noqa: F811
    async with openai.AsyncOpenAI(base_url=warden.gateway + "/v1", api_key=KEY, max_retries=0) as sdk:
        yield sdk


async def test_a_response_is_converted_both_ways(client: openai.AsyncOpenAI, provider: str) -> None:  # noqa: F811
    response = await client.responses.create(model="gpt-4o-mini", instructions="Be brief.", input="Hi",
                                             max_output_tokens=50)
    assert response.output_text == "Hello from the fake provider."
    assert response.usage is not None and (response.usage.input_tokens, response.usage.output_tokens) == (21, 6)
    sent = received(provider)[-1]
    assert sent["messages"] == [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}]
    assert sent["max_tokens"] == 50


async def test_a_streamed_response_arrives_as_responses_events(client: openai.AsyncOpenAI) -> None:
    stream = await client.responses.create(model="gpt-4o-mini", input=[
        {"role": "user", "content": [{"type": "input_text", "text": "Hi"}]}], stream=True)
    events = [event async for event in stream]
    kinds = [event.type for event in events]
    assert kinds[0] == "response.created" and kinds[-1] == "response.completed"
    text = "".join(e.delta for e in events if e.type == "response.output_text.delta")  # type: ignore[union-attr]
    assert text == "Hello from the fake provider."
    completed = events[-1].response  # type: ignore[union-attr]
    assert completed.output_text == text and completed.usage is not None and completed.usage.output_tokens == 6
    assert [e.sequence_number for e in events] == list(range(len(events)))


async def test_function_calls_round_trip(client: openai.AsyncOpenAI, provider: str) -> None:  # noqa: F811
    first = await client.responses.create(model="gpt-4o-mini", input="Weather in Paris?", tools=TOOLS)
    call = next(item for item in first.output if item.type == "function_call")
    assert call.name == "weather" and json.loads(call.arguments) == {"city": "Paris"}

    stream = await client.responses.create(model="gpt-4o-mini", input="Weather in Paris?", tools=TOOLS,
                                           stream=True)
    events = [event async for event in stream]
    streamed = events[-1].response  # type: ignore[union-attr]
    streamed_call = next(item for item in streamed.output if item.type == "function_call")
    assert json.loads(streamed_call.arguments) == {"city": "Paris"}

    final = await client.responses.create(model="gpt-4o-mini", tools=TOOLS, input=[
        {"role": "user", "content": "Weather in Paris?"},
        {"type": "function_call", "call_id": call.call_id, "name": call.name, "arguments": call.arguments},
        {"type": "function_call_output", "call_id": call.call_id, "output": "18 degrees"}])
    assert final.output_text == "Hello from the fake provider."
    sent = received(provider)[-1]["messages"]
    assert sent[1]["tool_calls"][0]["id"] == call.call_id
    assert sent[2] == {"role": "tool", "tool_call_id": call.call_id, "content": "18 degrees"}


async def test_refusals_in_openai_shape(client: openai.AsyncOpenAI) -> None:
    with pytest.raises(openai.NotFoundError):
        await client.responses.create(model="nothing-here", input="x")
    with pytest.raises(openai.BadRequestError) as missing:
        await client.responses.create(model="gpt-4o-mini", input="")
    assert missing.value.body["param"] == "input"  # type: ignore[index]
