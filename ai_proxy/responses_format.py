"""OpenAI Responses <-> Chat Completions, both directions, streaming included.

Requests: ``instructions`` become a system message; ``input`` (a string, or items: messages with text and image
parts, ``function_call`` and ``function_call_output`` items) becomes chat messages; function tools, tool
choice, ``max_output_tokens`` and sampling settings map one to one. Answers: text becomes a ``message`` output
item, tool calls ``function_call`` items, usage input/output tokens. A stream of chunks becomes the Responses
event sequence (``response.created``, per item ``response.output_item.added``, text deltas or function-call
argument deltas, ``...done`` events, ``response.completed``), each event numbered.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator
from typing import Any

import orjson

from ai_proxy.chat_usage import tokens
from ai_proxy.errors import ProxyError


def check(body: dict[str, Any]) -> None:
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise ProxyError(400, "invalid_request_error", "'model' is required (a string)", param="model")
    if not isinstance(body.get("input"), str | list) or not body["input"]:
        raise ProxyError(400, "invalid_request_error", "'input' is required (a string or an array of items)",
                         param="input")


def to_openai(body: dict[str, Any]) -> dict[str, Any]:
    messages: list[dict[str, Any]] = []
    if body.get("instructions"):
        messages.append({"role": "system", "content": body["instructions"]})
    items = body["input"] if isinstance(body["input"], list) else [{"role": "user", "content": body["input"]}]
    for item in items:
        kind = item.get("type", "message")
        if kind == "function_call":
            messages.append({"role": "assistant", "content": None, "tool_calls": [{
                "id": item["call_id"], "type": "function",
                "function": {"name": item["name"], "arguments": item.get("arguments", "{}")}}]})
        elif kind == "function_call_output":
            output = item.get("output")
            messages.append({"role": "tool", "tool_call_id": item["call_id"],
                             "content": output if isinstance(output, str) else json.dumps(output)})
        elif kind == "message":
            messages.append({"role": "system" if item.get("role") == "developer" else item.get("role", "user"),
                             "content": _content(item.get("content"))})
    request: dict[str, Any] = {"model": body["model"], "messages": messages}
    if body.get("max_output_tokens"):
        request["max_tokens"] = body["max_output_tokens"]
    for name in ("temperature", "top_p", "stream", "parallel_tool_calls"):
        if name in body:
            request[name] = body[name]
    tools = [t for t in body.get("tools") or [] if t.get("type") == "function"]
    if tools:
        request["tools"] = [{"type": "function", "function": {
            "name": t["name"], "description": t.get("description") or "",
            "parameters": t.get("parameters") or {"type": "object"}}} for t in tools]
    choice = body.get("tool_choice")
    if isinstance(choice, str):
        request["tool_choice"] = choice
    elif isinstance(choice, dict) and choice.get("type") == "function":
        request["tool_choice"] = {"type": "function", "function": {"name": choice.get("name")}}
    if body.get("stream"):
        request["stream_options"] = {"include_usage": True}
    return request


def _content(content: Any) -> Any:
    if isinstance(content, str) or content is None:
        return content or ""
    parts = []
    for part in content:
        if part.get("type") in ("input_text", "output_text", "text"):
            parts.append({"type": "text", "text": part.get("text", "")})
        elif part.get("type") == "input_image" and part.get("image_url"):
            parts.append({"type": "image_url", "image_url": {"url": part["image_url"]}})
    return parts


def from_openai(answer: dict[str, Any], model: str) -> dict[str, Any]:
    choice = (answer.get("choices") or [{}])[0]
    message = choice.get("message") or {}
    ident = str(answer.get("id", "")).removeprefix("chatcmpl-")
    output: list[dict[str, Any]] = []
    if message.get("content"):
        output.append(_message_item(ident, message["content"]))
    for call in message.get("tool_calls") or []:
        output.append(_call_item(call["id"], call["function"]["name"], call["function"].get("arguments", "")))
    return _response(ident, model, "completed", output, *tokens(answer.get("usage") or {}))


def _message_item(ident: str, text: str, status: str = "completed") -> dict[str, Any]:
    return {"type": "message", "id": f"msg_{ident}", "status": status, "role": "assistant",
            "content": [{"type": "output_text", "text": text, "annotations": []}]}


def _call_item(call_id: str, name: str, arguments: str, status: str = "completed") -> dict[str, Any]:
    return {"type": "function_call", "id": f"fc_{call_id}", "call_id": call_id, "name": name,
            "arguments": arguments, "status": status}


def _response(ident: str, model: str, status: str, output: list[dict[str, Any]], input_tokens: int,
              output_tokens: int) -> dict[str, Any]:
    return {"id": f"resp_{ident}", "object": "response", "created_at": int(time.time()), "status": status,
            "model": model, "output": output, "parallel_tool_calls": True, "tool_choice": "auto", "tools": [],
            "usage": {"input_tokens": input_tokens, "output_tokens": output_tokens,
                      "total_tokens": input_tokens + output_tokens}}


def stream_error(error: ProxyError) -> bytes:
    return _event("error", {"code": error.code, "message": error.message, "param": error.param}, 0)


def _event(kind: str, data: dict[str, Any], sequence: int) -> bytes:
    body = {"type": kind, "sequence_number": sequence, **data}
    return f"event: {kind}\ndata: ".encode() + orjson.dumps(body) + b"\n\n"


async def stream_from_openai(chunks: AsyncIterator[dict[str, Any]], model: str) -> AsyncIterator[bytes]:
    """Responses events from Chat Completions chunks, as they come."""
    sequence = 0
    ident = "warden"
    text = ""
    text_index: int | None = None
    calls: dict[int, dict[str, Any]] = {}  # chat tool-call index -> {output_index, call_id, name, arguments}
    output: list[dict[str, Any]] = []
    input_tokens = output_tokens = 0
    started = False

    def event(kind: str, data: dict[str, Any]) -> bytes:
        nonlocal sequence
        sequence += 1
        return _event(kind, data, sequence - 1)

    async for chunk in chunks:
        if not started:
            started = True
            ident = str(chunk.get("id", "warden")).removeprefix("chatcmpl-")
            created = _response(ident, model, "in_progress", [], 0, 0)
            yield event("response.created", {"response": created})
            yield event("response.in_progress", {"response": created})
        if chunk.get("usage"):
            input_tokens, output_tokens = tokens(chunk["usage"])
        for choice in chunk.get("choices") or []:
            delta = choice.get("delta") or {}
            if delta.get("content"):
                if text_index is None:
                    text_index = len(output)
                    output.append(_message_item(ident, "", "in_progress"))
                    yield event("response.output_item.added", {"output_index": text_index,
                                                               "item": {**output[text_index], "content": []}})
                    yield event("response.content_part.added", {
                        "item_id": f"msg_{ident}", "output_index": text_index, "content_index": 0,
                        "part": {"type": "output_text", "text": "", "annotations": []}})
                text += delta["content"]
                yield event("response.output_text.delta", {"item_id": f"msg_{ident}", "output_index": text_index,
                                                           "content_index": 0, "delta": delta["content"]})
            for call in delta.get("tool_calls") or []:
                position = int(call.get("index", 0))
                function = call.get("function") or {}
                if position not in calls:
                    calls[position] = {"output_index": len(output), "call_id": call.get("id", f"call_{position}"),
                                       "name": function.get("name", ""), "arguments": ""}
                    output.append(_call_item(calls[position]["call_id"], calls[position]["name"], "", "in_progress"))
                    yield event("response.output_item.added", {"output_index": calls[position]["output_index"],
                                                               "item": output[-1]})
                if function.get("arguments"):
                    calls[position]["arguments"] += function["arguments"]
                    yield event("response.function_call_arguments.delta", {
                        "item_id": f"fc_{calls[position]['call_id']}",
                        "output_index": calls[position]["output_index"], "delta": function["arguments"]})
    if not started:
        created = _response(ident, model, "in_progress", [], 0, 0)
        yield event("response.created", {"response": created})
    if text_index is not None:
        output[text_index] = _message_item(ident, text)
        yield event("response.output_text.done", {"item_id": f"msg_{ident}", "output_index": text_index,
                                                  "content_index": 0, "text": text})
        yield event("response.content_part.done", {"item_id": f"msg_{ident}", "output_index": text_index,
                                                   "content_index": 0, "part": output[text_index]["content"][0]})
        yield event("response.output_item.done", {"output_index": text_index, "item": output[text_index]})
    for call in calls.values():
        item = _call_item(call["call_id"], call["name"], call["arguments"])
        output[call["output_index"]] = item
        yield event("response.function_call_arguments.done", {"item_id": item["id"],
                                                              "output_index": call["output_index"],
                                                              "arguments": call["arguments"]})
        yield event("response.output_item.done", {"output_index": call["output_index"], "item": item})
    yield event("response.completed", {"response": _response(ident, model, "completed", output, input_tokens,
                                                             output_tokens)})
