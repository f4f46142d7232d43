"""Anthropic's Messages API. A Messages request from a client goes on as it is; a Chat Completions (hub) request
is converted: system messages become ``system``, consecutive messages of one role are merged (Anthropic wants
them alternating), tool calls become ``tool_use`` blocks and tool results ``tool_result`` blocks in a user turn,
images base64 or URL sources. Answers and stream events are converted back, usage included."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from ai_proxy import sse
from ai_proxy.chat_usage import count
from ai_proxy.errors import ProxyError
from ai_proxy.provider_http import ProviderResponse
from ai_proxy.providers.base import (
    ChunkWriter,
    NoteUsage,
    Outgoing,
    StreamFailed,
    add_turn,
    arguments,
    completion,
    data_url,
    json_bytes,
    parts_of,
    text_of,
    tool_call,
)
from ai_proxy.routing import Provider

VERSION = "2023-06-01"
DEFAULT_MAX_TOKENS = 4096  # Anthropic requires max_tokens; Chat Completions clients often leave it out
FINISH_REASONS = {"end_turn": "stop", "stop_sequence": "stop", "pause_turn": "stop", "max_tokens": "length",
                  "tool_use": "tool_calls", "refusal": "content_filter", "model_context_window_exceeded": "length"}


def input_tokens_of(usage: dict[str, Any]) -> int:
    """All the input a request was charged for: fresh, written to and read from the prompt cache."""
    return sum(count(usage.get(name)) for name in ("input_tokens", "cache_creation_input_tokens",
                                                      "cache_read_input_tokens"))


class AnthropicDialect:
    format = "anthropic"

    def _outgoing(self, provider: Provider, endpoint: str, body: bytes) -> Outgoing:
        headers = {"content-type": "application/json", "anthropic-version": VERSION}
        if provider.api_key:
            headers["x-api-key"] = provider.api_key
        return Outgoing(f"{provider.base_url}/v1{endpoint}", headers, body)

    def native(self, provider: Provider, endpoint: str, body: dict[str, Any], raw: bytes, model: str,
               stream: bool) -> Outgoing:
        return self._outgoing(provider, endpoint, raw if model == body["model"] else json_bytes({**body,
                                                                                                 "model": model}))

    def native_usage(self, answer: dict[str, Any]) -> tuple[int, int]:
        usage = answer.get("usage") or {}
        return input_tokens_of(usage), count(usage.get("output_tokens"))

    async def native_stream(self, response: ProviderResponse, body: dict[str, Any],
                            note: NoteUsage) -> AsyncIterator[bytes]:
        input_tokens = output_tokens = 0
        async for event in sse.events(response):
            if b"message_start" in event or b"message_delta" in event:  # the events that carry usage
                data = sse.json_object(sse.data_of(event) or b"")
                usage = (data.get("message") or {}).get("usage") if data.get("type") == "message_start" \
                    else data.get("usage")
                if isinstance(usage, dict):
                    input_tokens = input_tokens_of(usage) or input_tokens
                    output_tokens = count(usage.get("output_tokens")) or output_tokens
                    note(input_tokens, output_tokens)
            yield event

    def convert(self, provider: Provider, hub: dict[str, Any], model: str, stream: bool) -> Outgoing:
        return self._outgoing(provider, "/messages", json_bytes(request(hub, model, stream)))

    def answer(self, answer: dict[str, Any], model: str) -> dict[str, Any]:
        text = "".join(b.get("text", "") for b in answer.get("content") or [] if b.get("type") == "text")
        calls = [tool_call(b["id"], b["name"], b.get("input") or {}) for b in answer.get("content") or []
                 if b.get("type") == "tool_use"]
        input_tokens, output_tokens = self.native_usage(answer)
        return completion(str(answer.get("id", "")).removeprefix("msg_"), model, text, calls,
                          FINISH_REASONS.get(answer.get("stop_reason") or "end_turn", "stop"), input_tokens,
                          output_tokens)

    async def chunks(self, response: ProviderResponse, model: str) -> AsyncIterator[dict[str, Any]]:
        writer: ChunkWriter | None = None
        tools: dict[int, int] = {}  # Anthropic content block index -> tool call index
        input_tokens = output_tokens = 0
        async for event in sse.json_data(response):
            kind = event.get("type")
            if kind == "message_start":
                message = event.get("message") or {}
                writer = ChunkWriter(str(message.get("id", "warden")).removeprefix("msg_"), model)
                input_tokens = input_tokens_of(message.get("usage") or {})
                output_tokens = count((message.get("usage") or {}).get("output_tokens"))
                continue
            if kind == "error":
                raise StreamFailed(str((event.get("error") or {}).get("message") or "the provider failed"))
            if writer is None:
                writer = ChunkWriter("warden", model)
            index = int(event.get("index", 0))
            if kind == "content_block_start" and (event.get("content_block") or {}).get("type") == "tool_use":
                block = event["content_block"]
                tools[index] = len(tools)
                for chunk in writer.delta({"tool_calls": [{"index": tools[index], "id": block.get("id"),
                                                           "type": "function", "function": {
                                                               "name": block.get("name"), "arguments": ""}}]}):
                    yield chunk
            elif kind == "content_block_delta":
                delta = event.get("delta") or {}
                if delta.get("type") == "text_delta" and delta.get("text"):
                    for chunk in writer.delta({"content": delta["text"]}):
                        yield chunk
                elif delta.get("type") == "input_json_delta" and delta.get("partial_json") and index in tools:
                    for chunk in writer.delta({"tool_calls": [{"index": tools[index], "function": {
                            "arguments": delta["partial_json"]}}]}):
                        yield chunk
            elif kind == "message_delta":
                usage = event.get("usage") or {}
                input_tokens = input_tokens_of(usage) or input_tokens
                output_tokens = count(usage.get("output_tokens")) or output_tokens
                reason = (event.get("delta") or {}).get("stop_reason")
                for chunk in writer.delta({}, FINISH_REASONS.get(reason or "end_turn", "stop")):
                    yield chunk
        if writer is not None:
            yield writer.usage(input_tokens, output_tokens)

    def error_message(self, answer: dict[str, Any]) -> str | None:
        error = answer.get("error")
        return str(error.get("message")) if isinstance(error, dict) and error.get("message") else None

    def count_request(self, provider: Provider, hub: dict[str, Any], model: str) -> Outgoing | None:
        body = request(hub, model, False)
        del body["max_tokens"]
        return self._outgoing(provider, "/messages/count_tokens", json_bytes(body))

    def counted(self, answer: dict[str, Any]) -> int:
        return count(answer.get("input_tokens"))


def request(hub: dict[str, Any], model: str, stream: bool) -> dict[str, Any]:
    """A Chat Completions request as a Messages request."""
    system: list[str] = []
    messages: list[dict[str, Any]] = []
    for message in hub["messages"]:
        role = message.get("role")
        if role in ("system", "developer"):
            system.append(text_of(message.get("content")))
        elif role == "tool":
            add_turn(messages, "user", [{"type": "tool_result", "tool_use_id": message.get("tool_call_id"),
                                        "content": text_of(message.get("content"))}])
        elif role == "assistant":
            blocks = [{"type": "text", "text": t} for t in [text_of(message.get("content"))] if t]
            blocks += [{"type": "tool_use", "id": c["id"], "name": c["function"]["name"],
                        "input": arguments(c["function"].get("arguments"))} for c in message.get("tool_calls") or []]
            add_turn(messages, "assistant", blocks)
        else:
            add_turn(messages, "user", [_block(part) for part in parts_of(message.get("content"))])
    body: dict[str, Any] = {"model": model, "messages": messages, "max_tokens": hub.get("max_completion_tokens")
                            or hub.get("max_tokens") or DEFAULT_MAX_TOKENS}
    if system:
        body["system"] = "\n\n".join(system)
    for name in ("temperature", "top_p"):
        if hub.get(name) is not None:
            body[name] = hub[name]
    stop = hub.get("stop")
    if stop:
        body["stop_sequences"] = [stop] if isinstance(stop, str) else list(stop)
    if hub.get("tools"):
        body["tools"] = [{"name": t["function"]["name"], "description": t["function"].get("description") or "",
                          "input_schema": t["function"].get("parameters") or {"type": "object"}}
                         for t in hub["tools"] if t.get("type") == "function"]
        choice = _tool_choice(hub.get("tool_choice"))
        if hub.get("parallel_tool_calls") is False and choice.get("type") != "none":
            choice["disable_parallel_tool_use"] = True
        body["tool_choice"] = choice
    if isinstance(hub.get("user"), str):
        body["metadata"] = {"user_id": hub["user"]}
    if stream:
        body["stream"] = True
    return body


def _tool_choice(choice: Any) -> dict[str, Any]:
    if isinstance(choice, dict):
        return {"type": "tool", "name": (choice.get("function") or {}).get("name")}
    return {"type": {"required": "any", "none": "none"}.get(str(choice), "auto")}



def _block(part: dict[str, Any]) -> dict[str, Any]:
    if part.get("type") == "image_url":
        url = str((part.get("image_url") or {}).get("url", ""))
        inline = data_url(url)
        source = {"type": "base64", "media_type": inline[0], "data": inline[1]} if inline \
            else {"type": "url", "url": url}
        return {"type": "image", "source": source}
    if part.get("type") == "text":
        return {"type": "text", "text": part.get("text", "")}
    raise ProxyError(400, "invalid_request_error", f"content parts of type {part.get('type')!r} cannot be sent to"
                     " an Anthropic model", param="messages")
