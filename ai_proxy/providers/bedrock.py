"""AWS Bedrock's Converse API (``/model/<id>/converse`` and ``/converse-stream``), signed with SigV4 by botocore's
signer (or, with no access key id configured, a Bedrock API key as a bearer token). Chat Completions requests
are converted: system messages become ``system`` blocks, tool calls ``toolUse`` blocks, tool results
``toolResult`` blocks in a user turn, inline images ``image`` blocks (Bedrock takes no image URLs), sampling
settings ``inferenceConfig``, tools ``toolConfig``. Answers and the binary event stream
(``application/vnd.amazon.eventstream``, decoded by botocore) are converted back."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

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

FINISH_REASONS = {"end_turn": "stop", "stop_sequence": "stop", "max_tokens": "length", "tool_use": "tool_calls",
                  "guardrail_intervened": "content_filter", "content_filtered": "content_filter",
                  "model_context_window_exceeded": "length"}
IMAGE_FORMATS = {"image/png": "png", "image/jpeg": "jpeg", "image/gif": "gif", "image/webp": "webp"}


class BedrockDialect:
    format = "bedrock"

    def native(self, provider: Provider, endpoint: str, body: dict[str, Any], raw: bytes, model: str,
               stream: bool) -> Outgoing:
        raise AssertionError("no client API is Bedrock's own")

    def native_usage(self, answer: dict[str, Any]) -> tuple[int, int]:
        return usage_of(answer.get("usage") or {})

    def native_stream(self, response: ProviderResponse, body: dict[str, Any],
                      note: NoteUsage) -> AsyncIterator[bytes]:
        raise AssertionError("no client API is Bedrock's own")

    def convert(self, provider: Provider, hub: dict[str, Any], model: str, stream: bool) -> Outgoing:
        return _outgoing(provider, model, "converse-stream" if stream else "converse", request(hub), stream)

    def count_request(self, provider: Provider, hub: dict[str, Any], model: str) -> Outgoing | None:
        converse = request(hub)
        converse.pop("inferenceConfig", None)
        return _outgoing(provider, model, "count-tokens", {"input": {"converse": converse}}, False)

    def counted(self, answer: dict[str, Any]) -> int:
        return int(answer.get("inputTokens") or 0)

    def answer(self, answer: dict[str, Any], model: str) -> dict[str, Any]:
        content = ((answer.get("output") or {}).get("message") or {}).get("content") or []
        text = "".join(b["text"] for b in content if "text" in b)
        calls = [tool_call(b["toolUse"]["toolUseId"], b["toolUse"]["name"], b["toolUse"].get("input") or {})
                 for b in content if "toolUse" in b]
        return completion("bedrock", model, text, calls, FINISH_REASONS.get(answer.get("stopReason", ""), "stop"),
                          *self.native_usage(answer))

    async def chunks(self, response: ProviderResponse, model: str) -> AsyncIterator[dict[str, Any]]:
        from botocore.eventstream import EventStreamBuffer  # imported only where Bedrock is used

        frames = EventStreamBuffer()
        writer = ChunkWriter("bedrock", model)
        tools: dict[int, int] = {}  # Converse content block index -> tool call index
        counted = (0, 0)
        async for data in response.chunks():
            frames.add_data(data)
            for frame in frames:
                headers = frame.headers
                payload = json.loads(frame.payload or b"{}")
                if headers.get(":message-type") != "event":
                    raise StreamFailed(str(payload.get("message") or headers.get(":exception-type")
                                           or "the provider failed"))
                kind = headers.get(":event-type")
                index = int(payload.get("contentBlockIndex", 0))
                if kind == "contentBlockStart" and "toolUse" in (payload.get("start") or {}):
                    use = payload["start"]["toolUse"]
                    tools[index] = len(tools)
                    for chunk in writer.delta({"tool_calls": [{"index": tools[index], "id": use.get("toolUseId"),
                                                               "type": "function", "function": {
                                                                   "name": use.get("name"), "arguments": ""}}]}):
                        yield chunk
                elif kind == "contentBlockDelta":
                    delta = payload.get("delta") or {}
                    if delta.get("text"):
                        for chunk in writer.delta({"content": delta["text"]}):
                            yield chunk
                    elif "toolUse" in delta and index in tools and delta["toolUse"].get("input"):
                        for chunk in writer.delta({"tool_calls": [{"index": tools[index], "function": {
                                "arguments": delta["toolUse"]["input"]}}]}):
                            yield chunk
                elif kind == "messageStop":
                    for chunk in writer.delta({}, FINISH_REASONS.get(payload.get("stopReason", ""), "stop")):
                        yield chunk
                elif kind == "metadata":
                    counted = usage_of(payload.get("usage") or {})
        yield writer.usage(*counted)

    def error_message(self, answer: dict[str, Any]) -> str | None:
        message = answer.get("message") or answer.get("Message")
        return str(message) if message else None


def usage_of(usage: dict[str, Any]) -> tuple[int, int]:
    return count(usage.get("inputTokens")) + count(usage.get("cacheReadInputTokens")) \
        + count(usage.get("cacheWriteInputTokens")), count(usage.get("outputTokens"))


def _outgoing(provider: Provider, model: str, method: str, value: dict[str, Any], stream: bool) -> Outgoing:
    url = f"{provider.base_url}/model/{quote(model, safe='')}/{method}"
    body = json_bytes(value)
    headers = {"content-type": "application/json",
               "accept": "application/vnd.amazon.eventstream" if stream else "application/json"}
    return Outgoing(url, _signed(provider, url, headers, body), body)


def _signed(provider: Provider, url: str, headers: dict[str, str], body: bytes) -> dict[str, str]:
    if not provider.aws_access_key_id:
        return {**headers, "authorization": f"Bearer {provider.api_key}"} if provider.api_key else headers
    from broker.sigv4 import sigv4_headers  # botocore is imported only where it is used

    return sigv4_headers("POST", url, headers, body, provider.aws_access_key_id, provider.api_key or "", "bedrock",
                         provider.region or "us-east-1")


def request(hub: dict[str, Any]) -> dict[str, Any]:
    """A Chat Completions request as a Converse request."""
    system: list[dict[str, Any]] = []
    messages: list[dict[str, Any]] = []
    for message in hub["messages"]:
        role = message.get("role")
        if role in ("system", "developer"):
            system.append({"text": text_of(message.get("content"))})
        elif role == "assistant":
            blocks: list[dict[str, Any]] = [{"text": t} for t in [text_of(message.get("content"))] if t]
            blocks += [{"toolUse": {"toolUseId": c["id"], "name": c["function"]["name"],
                                    "input": arguments(c["function"].get("arguments"))}}
                       for c in message.get("tool_calls") or []]
            add_turn(messages, "assistant", blocks)
        elif role == "tool":
            add_turn(messages, "user", [{"toolResult": {"toolUseId": message.get("tool_call_id"),
                                                       "content": [{"text": text_of(message.get("content"))}]}}])
        else:
            add_turn(messages, "user", [_block(p) for p in parts_of(message.get("content"))])
    body: dict[str, Any] = {"messages": messages}
    if system:
        body["system"] = system
    config: dict[str, Any] = {}
    for ours, theirs in (("max_completion_tokens", "maxTokens"), ("max_tokens", "maxTokens"),
                         ("temperature", "temperature"), ("top_p", "topP")):
        if hub.get(ours) is not None:
            config.setdefault(theirs, hub[ours])
    stop = hub.get("stop")
    if stop:
        config["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
    if config:
        body["inferenceConfig"] = config
    functions = [t["function"] for t in hub.get("tools") or [] if t.get("type") == "function"]
    if functions:
        tool_config: dict[str, Any] = {"tools": [{"toolSpec": {
            "name": f["name"], "description": f.get("description") or f["name"],
            "inputSchema": {"json": f.get("parameters") or {"type": "object"}}}} for f in functions]}
        choice = hub.get("tool_choice")
        if isinstance(choice, dict):
            tool_config["toolChoice"] = {"tool": {"name": (choice.get("function") or {}).get("name")}}
        elif choice == "required":
            tool_config["toolChoice"] = {"any": {}}
        body["toolConfig"] = tool_config
    return body



def _block(part: dict[str, Any]) -> dict[str, Any]:
    if part.get("type") == "text":
        return {"text": part.get("text", "")}
    if part.get("type") == "image_url":
        inline = data_url(str((part.get("image_url") or {}).get("url", "")))
        if inline and inline[0] in IMAGE_FORMATS:
            return {"image": {"format": IMAGE_FORMATS[inline[0]], "source": {"bytes": inline[1]}}}
        raise ProxyError(400, "invalid_request_error", "Bedrock models take images inline only (a data: URL of a"
                         " PNG, JPEG, GIF or WebP image)", param="messages")
    raise ProxyError(400, "invalid_request_error", f"content parts of type {part.get('type')!r} cannot be sent to"
                     " a Bedrock model", param="messages")
