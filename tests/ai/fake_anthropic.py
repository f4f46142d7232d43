"""The fake Anthropic provider, speaking the Messages API's exact wire format (``/anthropic/v1/messages``).

Checks what the real API checks and Warden's conversions could get wrong: ``x-api-key: sk-ant-fake`` and an
``anthropic-version`` header; ``max_tokens``; roles alternating from ``user``, no empty content; every
``tool_result`` answering a ``tool_use`` of the turn before. Answers with text, or with a ``tool_use`` block when
tools are offered and no result came back yet; streams the Messages event sequence with a ``ping``; reports 21
input and 6 output tokens. ``claude-fail`` answers 529 (overloaded). ``/anthropic/v1/messages/count_tokens``
counts a request's input (4 bytes of JSON a token).
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.ai.fake_state import CITY, INPUT_TOKENS, OUTPUT_TOKENS, TEXT, received

KEY = "sk-ant-fake"


def _error(status: int, kind: str, message: str) -> JSONResponse:
    return JSONResponse({"type": "error", "error": {"type": kind, "message": message},
                         "request_id": "req_fake"}, status)


def _refusal(request: Request, body: dict[str, Any]) -> Response | None:
    if request.headers.get("x-api-key") != KEY:
        return _error(401, "authentication_error", "invalid x-api-key")
    if not request.headers.get("anthropic-version"):
        return _error(400, "invalid_request_error", "anthropic-version: header is required")
    messages = body.get("messages") or []
    if not messages or messages[0].get("role") != "user":
        return _error(400, "invalid_request_error", "messages: the first message must use the user role")
    previous_uses: set[str] = set()
    for number, message in enumerate(messages):
        if number and message.get("role") == messages[number - 1].get("role"):
            return _error(400, "invalid_request_error", f"messages.{number}: roles must alternate")
        content = message.get("content")
        if not content:
            return _error(400, "invalid_request_error", f"messages.{number}: content must not be empty")
        blocks = content if isinstance(content, list) else []
        for block in blocks:
            if block.get("type") == "tool_result" and block.get("tool_use_id") not in previous_uses:
                return _error(400, "invalid_request_error", f"messages.{number}: unexpected tool_use_id")
            if block.get("type") == "text" and not block.get("text"):
                return _error(400, "invalid_request_error", f"messages.{number}: text blocks must be non-empty")
        previous_uses = {b["id"] for b in blocks if b.get("type") == "tool_use"}
    return None


def _wants_tool(body: dict[str, Any]) -> str | None:
    last = body["messages"][-1].get("content")
    answered = isinstance(last, list) and any(b.get("type") == "tool_result" for b in last)
    return body["tools"][0]["name"] if body.get("tools") and not answered else None


async def messages(request: Request) -> Response:
    body = await request.json()
    received.append(body)
    if (refused := _refusal(request, body)) is not None:
        return refused
    if not isinstance(body.get("max_tokens"), int):
        return _error(400, "invalid_request_error", "max_tokens: Field required")
    if body["model"] == "claude-fail":
        return _error(529, "overloaded_error", "Overloaded")
    tool = _wants_tool(body)
    if body.get("stream"):
        return StreamingResponse(_stream(body, tool), media_type="text/event-stream")
    content = [{"type": "tool_use", "id": "toolu_fake1", "name": tool, "input": CITY}] if tool \
        else [{"type": "text", "text": "".join(TEXT)}]
    return JSONResponse({"id": "msg_fake1", "type": "message", "role": "assistant", "model": body["model"],
                         "content": content, "stop_reason": "tool_use" if tool else "end_turn",
                         "stop_sequence": None, "usage": {"input_tokens": INPUT_TOKENS,
                                                          "output_tokens": OUTPUT_TOKENS}})


def _event(kind: str, data: dict[str, Any]) -> bytes:
    return f"event: {kind}\ndata: {json.dumps({'type': kind, **data})}\n\n".encode()


async def _stream(body: dict[str, Any], tool: str | None) -> AsyncIterator[bytes]:
    yield _event("message_start", {"message": {
        "id": "msg_fake1", "type": "message", "role": "assistant", "model": body["model"], "content": [],
        "stop_reason": None, "stop_sequence": None, "usage": {"input_tokens": INPUT_TOKENS, "output_tokens": 1}}})
    if tool:
        yield _event("content_block_start", {"index": 0, "content_block": {
            "type": "tool_use", "id": "toolu_fake1", "name": tool, "input": {}}})
        for part in ('{"city"', ': "Paris"}'):
            yield _event("content_block_delta", {"index": 0, "delta": {"type": "input_json_delta",
                                                                       "partial_json": part}})
    else:
        yield _event("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}})
        yield _event("ping", {})
        for word in TEXT:
            await anyio.sleep(0.01)
            yield _event("content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": word}})
    yield _event("content_block_stop", {"index": 0})
    yield _event("message_delta", {"delta": {"stop_reason": "tool_use" if tool else "end_turn",
                                             "stop_sequence": None}, "usage": {"output_tokens": OUTPUT_TOKENS}})
    yield _event("message_stop", {})


async def count_tokens(request: Request) -> Response:
    body = await request.json()
    received.append(body)
    if (refused := _refusal(request, body)) is not None:
        return refused
    return JSONResponse({"input_tokens": len(json.dumps(body["messages"])) // 4})


routes = [Route("/anthropic/v1/messages", messages, methods=["POST"]),
          Route("/anthropic/v1/messages/count_tokens", count_tokens, methods=["POST"])]
