"""Anthropic Messages <-> OpenAI Chat Completions, both directions, streaming included.

Requests: the system prompt becomes a system message; text and image blocks become content parts; an
assistant's ``tool_use`` blocks become ``tool_calls`` and a user's ``tool_result`` blocks become ``tool``
messages; tools, tool choice, stop sequences and sampling settings map one to one. Answers: text and tool calls
become content blocks, finish reasons become stop reasons, usage becomes input/output tokens. A stream of
Chat Completions chunks becomes the Messages event sequence (``message_start``, per block ``content_block_start``
/ ``_delta`` / ``_stop``, ``message_delta`` with the stop reason and usage, ``message_stop``).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import orjson

from ai_proxy.chat_usage import tokens
from ai_proxy.errors import ProxyError

STOP_REASONS = {"stop": "end_turn", "length": "max_tokens", "tool_calls": "tool_use", "function_call": "tool_use",
                "content_filter": "refusal"}
ERROR_TYPES = {400: "invalid_request_error", 401: "authentication_error", 403: "permission_error",
               404: "not_found_error", 413: "request_too_large", 429: "rate_limit_error", 504: "timeout_error"}


def check(body: dict[str, Any]) -> None:
    """What the Messages API requires, refused with the field named."""
    check_count(body)
    if not isinstance(body.get("max_tokens"), int) or body["max_tokens"] < 1:
        raise ProxyError(400, "invalid_request_error", "max_tokens: Field required (a positive integer)",
                         param="max_tokens")


def check_count(body: dict[str, Any]) -> None:
    """What counting a message's tokens requires (``max_tokens`` is not)."""
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise ProxyError(400, "invalid_request_error", "model: Field required", param="model")
    if not isinstance(body.get("messages"), list) or not body["messages"]:
        raise ProxyError(400, "invalid_request_error", "messages: Field required (a non-empty array)",
                         param="messages")


def to_openai(body: dict[str, Any]) -> dict[str, Any]:
    messages: list[dict[str, Any]] = []
    system = body.get("system")
    if system:
        messages.append({"role": "system", "content": _text_of(system)})
    for message in body["messages"]:
        messages += _message(message)
    request: dict[str, Any] = {"model": body["model"], "messages": messages}
    if "max_tokens" in body:
        request["max_tokens"] = body["max_tokens"]
    for name in ("temperature", "top_p", "stream"):
        if name in body:
            request[name] = body[name]
    if body.get("stop_sequences"):
        request["stop"] = body["stop_sequences"]
    if body.get("tools"):
        request["tools"] = [{"type": "function", "function": {
            "name": t["name"], "description": t.get("description", ""),
            "parameters": t.get("input_schema") or {"type": "object"}}} for t in body["tools"]]
    choice = body.get("tool_choice")
    if isinstance(choice, dict):
        kind = choice.get("type")
        request["tool_choice"] = ({"type": "function", "function": {"name": choice.get("name")}} if kind == "tool"
                                  else {"auto": "auto", "any": "required", "none": "none"}.get(str(kind), "auto"))
    if body.get("stream"):
        request["stream_options"] = {"include_usage": True}
    return request


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(block.get("text", "") for block in content if isinstance(block, dict)
                   and block.get("type") == "text")


def _message(message: dict[str, Any]) -> list[dict[str, Any]]:
    role, content = message.get("role"), message.get("content")
    if isinstance(content, str):
        return [{"role": role, "content": content}]
    if not isinstance(content, list):
        raise ProxyError(400, "invalid_request_error", "messages: each content is a string or a list of blocks",
                         param="messages")
    if role == "assistant":
        text = _text_of(content)
        calls = [{"id": b["id"], "type": "function", "function": {"name": b["name"], "arguments": json.dumps(
            b.get("input") or {})}} for b in content if b.get("type") == "tool_use"]
        out: dict[str, Any] = {"role": "assistant", "content": text or None}
        if calls:
            out["tool_calls"] = calls
        return [out]
    results = [{"role": "tool", "tool_call_id": b["tool_use_id"], "content": _text_of(b.get("content") or "")}
               for b in content if b.get("type") == "tool_result"]
    parts = [_part(b) for b in content if b.get("type") in ("text", "image")]
    return results + ([{"role": "user", "content": parts}] if parts else [])


def _part(block: dict[str, Any]) -> dict[str, Any]:
    if block["type"] == "text":
        return {"type": "text", "text": block.get("text", "")}
    source = block.get("source") or {}
    url = source.get("url") if source.get("type") == "url" else \
        f"data:{source.get('media_type')};base64,{source.get('data')}"
    return {"type": "image_url", "image_url": {"url": url}}


def from_openai(answer: dict[str, Any], model: str) -> dict[str, Any]:
    choice = (answer.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    content: list[dict[str, Any]] = []
    if message.get("content"):
        content.append({"type": "text", "text": message["content"]})
    for call in message.get("tool_calls") or []:
        content.append({"type": "tool_use", "id": call["id"], "name": call["function"]["name"],
                        "input": _arguments(call["function"].get("arguments"))})
    input_tokens, output_tokens = tokens(answer.get("usage") or {})
    return {"id": "msg_" + str(answer.get("id", "")).removeprefix("chatcmpl-"), "type": "message",
            "role": "assistant", "model": model, "content": content,
            "stop_reason": STOP_REASONS.get(choice.get("finish_reason") or "stop", "end_turn"),
            "stop_sequence": None, "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens}}


def _arguments(raw: Any) -> Any:
    try:
        return json.loads(raw) if raw else {}
    except ValueError:
        return {"_raw": raw}


def error_body(error: ProxyError) -> dict[str, Any]:
    kind = ERROR_TYPES.get(error.status, "api_error")
    return {"type": "error", "error": {**error.details, "type": kind, "message": error.message}}


def stream_error(error: ProxyError) -> bytes:
    return _event("error", {"error": error_body(error)["error"]})


def _event(kind: str, data: dict[str, Any]) -> bytes:
    return f"event: {kind}\ndata: ".encode() + orjson.dumps({"type": kind, **data}) \
        + b"\n\n"


async def stream_from_openai(chunks: AsyncIterator[dict[str, Any]], model: str) -> AsyncIterator[bytes]:
    """Messages events from Chat Completions chunks, as they come."""
    started = False
    index = -1
    open_kind: str | None = None  # the type of the content block being streamed, if any
    tool_indices: dict[int, int] = {}  # OpenAI tool call index -> content block index
    stop_reason, output_tokens, input_tokens = "end_turn", 0, 0
    message_id = "msg_warden"

    def close() -> bytes:
        return _event("content_block_stop", {"index": index})

    async for chunk in chunks:
        if not started:
            message_id = "msg_" + str(chunk.get("id", "warden")).removeprefix("chatcmpl-")
            started = True
            yield _event("message_start", {"message": {
                "id": message_id, "type": "message", "role": "assistant", "model": model, "content": [],
                "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 0, "output_tokens": 0}}})
        if chunk.get("usage"):
            input_tokens, output_tokens = tokens(chunk["usage"])
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            if delta.get("content"):
                if open_kind != "text":
                    if open_kind is not None:
                        yield close()
                    index += 1
                    open_kind = "text"
                    yield _event("content_block_start", {"index": index, "content_block": {"type": "text",
                                                                                           "text": ""}})
                yield _event("content_block_delta", {"index": index, "delta": {"type": "text_delta",
                                                                               "text": delta["content"]}})
            for call in delta.get("tool_calls") or []:
                position = int(call.get("index", 0))
                if position not in tool_indices:
                    if open_kind is not None:
                        yield close()
                    index += 1
                    open_kind = "tool_use"
                    tool_indices[position] = index
                    function = call.get("function") or {}
                    yield _event("content_block_start", {"index": index, "content_block": {
                        "type": "tool_use", "id": call.get("id", f"toolu_{index}"), "name": function.get("name", ""),
                        "input": {}}})
                arguments = (call.get("function") or {}).get("arguments")
                if arguments:
                    yield _event("content_block_delta", {"index": tool_indices[position], "delta": {
                        "type": "input_json_delta", "partial_json": arguments}})
            if choice.get("finish_reason"):
                stop_reason = STOP_REASONS.get(choice["finish_reason"], "end_turn")
    if not started:
        yield _event("message_start", {"message": {
            "id": message_id, "type": "message", "role": "assistant", "model": model, "content": [],
            "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": 0, "output_tokens": 0}}})
    if open_kind is not None:
        yield close()
    yield _event("message_delta", {"delta": {"stop_reason": stop_reason, "stop_sequence": None},
                                   "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens}})
    yield _event("message_stop", {})
