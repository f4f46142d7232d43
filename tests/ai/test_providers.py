"""Every provider family behind every client API: the official ``openai`` and ``anthropic`` SDKs, pointed at
Warden, hold text, streamed and tool-calling conversations with fake OpenAI, Azure OpenAI, Anthropic, Gemini and
Bedrock providers, each speaking its own wire format (Bedrock's binary event stream and SigV4 included)."""

from __future__ import annotations

import json
import sqlite3
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import anthropic
import openai
import pytest

from tests.ai.test_chat_completions import KEY, TOOLS, provider, received  # noqa: F401 - fixtures
from tests.conftest import eventually
from tests.connections.conftest import first_admin
from tests.interaction.process import WardenProcess, served

ANTHROPIC_TOOLS: list[Any] = [{"name": "weather", "description": "The weather in a city", "input_schema": {
    "type": "object", "properties": {"city": {"type": "string"}}, "required": ["city"],
    "additionalProperties": False}}]
BEDROCK_MODEL_ID = "anthropic.claude-3-5-haiku-20241022-v1:0"
# A model of each provider family: by prefix, or registered with the name the provider knows it by.
FAMILIES = {"openai": "gpt-4o-mini", "azure": "azure-4o", "anthropic": "claude-warden-test",
            "gemini": "gemini-2.5-flash", "bedrock": "haiku-on-aws"}
TEXT = "Hello from the fake provider."


@pytest.fixture(scope="module")
def warden(tmp_path_factory: pytest.TempPathFactory, provider: str) -> Iterator[WardenProcess]:  # noqa: F811
    with served(tmp_path_factory.mktemp("providers"), {
        "providers": [
            {"name": "openai", "type": "openai", "base_url": provider + "/v1", "api_key": "sk-fake"},
            {"name": "azure", "type": "azure_openai", "base_url": provider + "/azure", "api_key": "az-fake",
             "api_version": "2024-10-21"},
            {"name": "claude", "type": "anthropic", "base_url": provider + "/anthropic", "api_key": "sk-ant-fake"},
            {"name": "gemini", "type": "gemini", "base_url": provider + "/gemini", "api_key": "gm-fake"},
            {"name": "bedrock", "type": "bedrock", "base_url": provider + "/bedrock", "region": "us-east-1",
             "aws_access_key_id": "AKIDFAKE", "api_key": "bedrock-secret"},
            {"name": "failing", "type": "openai_compatible", "base_url": provider + "/fail/v1"}],
        "models": [
            {"name": "bedrock-haiku", "aliases": ["haiku-on-aws"],
             "routes": [{"provider": "bedrock", "model": BEDROCK_MODEL_ID}]},
            {"name": "azure-4o", "routes": [{"provider": "azure", "model": "gpt4o-prod"}]},
            {"name": "claude-backed", "routes": [{"provider": "failing", "weight": 1000}, {"provider": "claude"}]}],
        "api_keys": [{"name": "all", "owner": "ada@example.com", "secret": KEY, "surfaces": ["ai"]}],
    }) as process:
        first_admin(process, "ada@example.com")
        yield process


@pytest.fixture
async def chat(warden: WardenProcess) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(base_url=warden.gateway + "/v1", api_key=KEY, max_retries=0) as sdk:
        yield sdk


@pytest.fixture
async def claude_sdk(warden: WardenProcess) -> AsyncIterator[anthropic.AsyncAnthropic]:
    async with anthropic.AsyncAnthropic(base_url=warden.gateway, api_key=KEY, max_retries=0) as sdk:
        yield sdk


@pytest.mark.parametrize("family", FAMILIES)
async def test_openai_sdk_text_and_stream(chat: openai.AsyncOpenAI, family: str) -> None:
    model = FAMILIES[family]
    completion = await chat.chat.completions.create(model=model, max_tokens=50, messages=[
        {"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"}])
    assert completion.choices[0].message.content == TEXT and completion.choices[0].finish_reason == "stop"
    assert completion.usage is not None and (completion.usage.prompt_tokens, completion.usage.completion_tokens) \
        == (21, 6)
    if family not in ("openai", "azure"):  # passed-through answers name the model as the provider does
        assert completion.model == model

    stream = await chat.chat.completions.create(model=model, stream=True, stream_options={"include_usage": True},
                                                messages=[{"role": "user", "content": "Hi"}])
    chunks = [chunk async for chunk in stream]
    pieces = [c.choices[0].delta.content for c in chunks if c.choices and c.choices[0].delta.content]
    assert "".join(pieces) == TEXT and len(pieces) > 1
    assert [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason] == ["stop"]
    assert chunks[-1].usage is not None and chunks[-1].usage.total_tokens == 27

    quiet = await chat.chat.completions.create(model=model, stream=True, messages=[{"role": "user", "content": "Hi"}])
    assert all([chunk.choices async for chunk in quiet])  # no usage chunk unless asked


@pytest.mark.parametrize("family", FAMILIES)
async def test_openai_sdk_tool_calls(chat: openai.AsyncOpenAI, family: str) -> None:
    model = FAMILIES[family]
    messages: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
    first = await chat.chat.completions.create(model=model, messages=messages, tools=TOOLS)  # type: ignore[arg-type]
    assert first.choices[0].finish_reason == "tool_calls"
    call = first.choices[0].message.tool_calls[0]  # type: ignore[index]
    assert call.function.name == "weather" and json.loads(call.function.arguments) == {"city": "Paris"}

    stream = await chat.chat.completions.create(model=model, messages=messages, tools=TOOLS,  # type: ignore[arg-type]
                                                stream=True)
    deltas = [tc async for chunk in stream if chunk.choices for tc in chunk.choices[0].delta.tool_calls or []]
    assert deltas[0].id and deltas[0].function and deltas[0].function.name == "weather"
    assert json.loads("".join(d.function.arguments or "" for d in deltas if d.function)) == {"city": "Paris"}

    messages += [first.choices[0].message.model_dump(exclude_none=True),
                 {"role": "tool", "tool_call_id": call.id, "content": "18 degrees"}]
    final = await chat.chat.completions.create(model=model, messages=messages, tools=TOOLS)  # type: ignore[arg-type]
    assert final.choices[0].message.content == TEXT


@pytest.mark.parametrize("family", FAMILIES)
async def test_anthropic_sdk_text_stream_and_tools(claude_sdk: anthropic.AsyncAnthropic, family: str) -> None:
    model = FAMILIES[family]
    message = await claude_sdk.messages.create(model=model, max_tokens=50, system="Be brief.",
                                               messages=[{"role": "user", "content": "Hi"}])
    assert [(b.type, getattr(b, "text", None)) for b in message.content] == [("text", TEXT)]
    assert message.stop_reason == "end_turn" and (message.usage.input_tokens, message.usage.output_tokens) == (21, 6)

    async with claude_sdk.messages.stream(model=model, max_tokens=50,
                                          messages=[{"role": "user", "content": "Hi"}]) as stream:
        texts = [text async for text in stream.text_stream]
        streamed = await stream.get_final_message()
    assert "".join(texts) == TEXT and len(texts) > 1 and streamed.usage.output_tokens == 6

    ask: list[Any] = [{"role": "user", "content": "Weather in Paris?"}]
    first = await claude_sdk.messages.create(model=model, max_tokens=50, tools=ANTHROPIC_TOOLS, messages=ask)
    use = next(block for block in first.content if block.type == "tool_use")
    assert first.stop_reason == "tool_use" and use.name == "weather" and use.input == {"city": "Paris"}

    async with claude_sdk.messages.stream(model=model, max_tokens=50, tools=ANTHROPIC_TOOLS,
                                          messages=ask) as tool_stream:
        streamed_use = next(b for b in (await tool_stream.get_final_message()).content if b.type == "tool_use")
    assert streamed_use.input == {"city": "Paris"}

    final = await claude_sdk.messages.create(model=model, max_tokens=50, tools=ANTHROPIC_TOOLS, messages=[
        *ask, {"role": "assistant", "content": [block.model_dump() for block in first.content]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": use.id, "content": "18 degrees"}]}])
    assert final.content[0].type == "text" and final.content[0].text == TEXT


@pytest.mark.parametrize("family", FAMILIES)
async def test_responses_text_stream_and_function_calls(chat: openai.AsyncOpenAI, family: str) -> None:
    model = FAMILIES[family]
    response = await chat.responses.create(model=model, instructions="Be brief.", input="Hi")
    assert response.output_text == TEXT and response.usage is not None and response.usage.output_tokens == 6

    async with chat.responses.stream(model=model, input="Hi") as stream:
        deltas = [event.delta async for event in stream if event.type == "response.output_text.delta"]
        final = await stream.get_final_response()
    assert "".join(deltas) == TEXT and final.output_text == TEXT

    tools: Any = [{"type": "function", "name": "weather", "description": "The weather in a city",
                   "parameters": TOOLS[0]["function"]["parameters"]}]
    called = await chat.responses.create(model=model, input="Weather in Paris?", tools=tools)
    item = next(i for i in called.output if i.type == "function_call")
    assert item.name == "weather" and json.loads(item.arguments) == {"city": "Paris"}
    answered = await chat.responses.create(model=model, tools=tools, input=[
        {"role": "user", "content": "Weather in Paris?"},
        {"type": "function_call", "call_id": item.call_id, "name": "weather", "arguments": item.arguments},
        {"type": "function_call_output", "call_id": item.call_id, "output": "18 degrees"}])
    assert answered.output_text == TEXT


async def test_what_each_provider_receives(chat: openai.AsyncOpenAI, provider: str) -> None:  # noqa: F811
    messages: Any = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": [
        {"type": "text", "text": "What is this?"},
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,iVBORw0KGgo="}}]}]
    await chat.chat.completions.create(model="claude-warden-test", messages=messages, stop="END", temperature=0.5)
    sent = received(provider)[-1]
    assert sent["system"] == "Be brief." and sent["stop_sequences"] == ["END"] and sent["max_tokens"] == 4096
    assert sent["messages"][0]["content"][1] == {"type": "image", "source": {
        "type": "base64", "media_type": "image/png", "data": "iVBORw0KGgo="}}

    await chat.chat.completions.create(model="gemini-2.5-flash", messages=messages, max_tokens=20)
    sent = received(provider)[-1]
    assert sent["systemInstruction"] == {"parts": [{"text": "Be brief."}]}
    assert sent["contents"][0]["parts"][1] == {"inlineData": {"mimeType": "image/png", "data": "iVBORw0KGgo="}}
    assert sent["generationConfig"] == {"maxOutputTokens": 20}

    await chat.chat.completions.create(model="bedrock-haiku", messages=messages, max_tokens=20)
    sent = received(provider)[-1]
    assert sent["model_id"] == BEDROCK_MODEL_ID and sent["system"] == [{"text": "Be brief."}]
    assert sent["messages"][0]["content"][1] == {"image": {"format": "png", "source": {"bytes": "iVBORw0KGgo="}}}
    assert sent["inferenceConfig"] == {"maxTokens": 20}

    await chat.chat.completions.create(model="azure-4o", messages=[{"role": "user", "content": "x"}])
    assert received(provider)[-1]["model"] == "gpt4o-prod"  # the deployment, from the path

    with pytest.raises(openai.BadRequestError) as refused:  # Bedrock takes no image URLs: said, not sent
        await chat.chat.completions.create(model="bedrock-haiku", messages=[{"role": "user", "content": [
            {"type": "image_url", "image_url": {"url": "https://example.com/cat.png"}}]}])
    assert "inline" in refused.value.message


async def test_failover_crosses_formats_and_is_audited(chat: openai.AsyncOpenAI, warden: WardenProcess) -> None:
    completion = await chat.chat.completions.create(model="claude-backed",
                                                    messages=[{"role": "user", "content": "Hi"}])
    assert completion.choices[0].message.content == TEXT

    def details() -> list[dict[str, Any]]:
        with sqlite3.connect(Path(warden.env["WARDEN_SERVER_DATA_DIR"]) / "warden.db") as db:
            rows = db.execute("SELECT detail FROM audit_events WHERE surface = 'ai'").fetchall()
        return [d for (raw,) in rows if (d := json.loads(raw)).get("model") == "claude-backed"]

    async def audited() -> bool:
        return bool(details())

    assert await eventually(audited)
    detail = details()[0]
    assert detail["provider"] == "claude" and (detail["input_tokens"], detail["output_tokens"]) == (21, 6)
    assert detail["fallbacks"] == ["failing: HTTP 500", "failing: HTTP 500"]


async def test_provider_errors_reach_the_client_in_its_own_shape(chat: openai.AsyncOpenAI,
                                                                claude_sdk: anthropic.AsyncAnthropic) -> None:
    with pytest.raises(openai.BadRequestError) as converted:  # Anthropic's refusal, as an OpenAI error
        await chat.chat.completions.create(model="claude-warden-test", messages=[
            {"role": "user", "content": "Hi"}, {"role": "tool", "tool_call_id": "toolu_nowhere", "content": "x"}])
    assert "tool_use_id" in converted.value.message
    with pytest.raises(anthropic.BadRequestError) as native:  # Anthropic's refusal, passed on as it is
        await claude_sdk.messages.create(model="claude-warden-test", max_tokens=10, messages=[
            {"role": "assistant", "content": "first"}])
    assert native.value.body["error"]["type"] == "invalid_request_error"  # type: ignore[index]
    with pytest.raises(anthropic.BadRequestError) as from_gemini:  # Gemini's refusal, as an Anthropic error
        await claude_sdk.messages.create(model="gemini-2.5-flash", max_tokens=10, messages=[
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_nowhere", "content": "x"}]}])
    assert "without a matching call" in from_gemini.value.body["error"]["message"]  # type: ignore[index]


@pytest.mark.parametrize("family", FAMILIES)
async def test_count_tokens(claude_sdk: anthropic.AsyncAnthropic, provider: str, family: str) -> None:  # noqa: F811
    messages: Any = [{"role": "user", "content": "How many tokens is this?"}]
    counted = await claude_sdk.messages.count_tokens(model=FAMILIES[family], system="Be brief.", messages=messages)
    sent = (received(provider) or [{}])[-1]
    if family == "anthropic":  # counted by the provider, the request as the client sent it
        assert counted.input_tokens == len(json.dumps(messages)) // 4 and sent["system"] == "Be brief."
    elif family == "gemini":
        assert counted.input_tokens == len(json.dumps(sent["generateContentRequest"]["contents"])) // 4
    elif family == "bedrock":
        assert counted.input_tokens == len(json.dumps(sent["input"]["converse"]["messages"])) // 4
    else:  # no endpoint counts Chat Completions: estimated from the request's size
        assert 0 < counted.input_tokens < 40


async def test_count_tokens_refusals(claude_sdk: anthropic.AsyncAnthropic) -> None:
    with pytest.raises(anthropic.NotFoundError):
        await claude_sdk.messages.count_tokens(model="nothing-here", messages=[{"role": "user", "content": "x"}])
    with pytest.raises(anthropic.BadRequestError) as malformed:
        await claude_sdk.messages.count_tokens(model="claude-warden-test", messages=[])
    assert "messages" in malformed.value.message
