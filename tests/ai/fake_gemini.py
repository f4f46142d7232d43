"""The fake Google Gemini provider, speaking the Generative Language API's exact wire format:
``/gemini/v1beta/models/<model>:generateContent``, ``:streamGenerateContent?alt=sse`` and ``:countTokens``
(4 bytes of ``contents`` JSON a token).

Checks ``x-goog-api-key: gm-fake``; roles ``user``/``model`` alternating; every ``functionResponse`` naming a
function the turn before called; function parameters free of the JSON Schema keywords Gemini refuses. Answers
with text, or a ``functionCall`` part when tools are offered and no response came back yet; a stream is SSE
(``\\r\\n`` line ends, as Google sends them), one partial answer per event, ``usageMetadata`` on the last.
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

KEY = "gm-fake"
REFUSED_SCHEMA_KEYS = ("additionalProperties", "$schema")


def _error(status: int, message: str, kind: str = "INVALID_ARGUMENT") -> JSONResponse:
    return JSONResponse({"error": {"code": status, "message": message, "status": kind}}, status)


def _refusal(body: dict[str, Any]) -> Response | None:
    contents = body.get("contents") or []
    if not contents:
        return _error(400, "* GenerateContentRequest.contents: contents is not specified")
    called: set[str] = set()
    for number, content in enumerate(contents):
        if content.get("role") not in ("user", "model"):
            return _error(400, f"contents[{number}].role: must be user or model")
        if number and content["role"] == contents[number - 1]["role"]:
            return _error(400, f"contents[{number}]: roles must alternate")
        parts = content.get("parts") or []
        if not parts:
            return _error(400, f"contents[{number}].parts: must not be empty")
        for part in parts:
            if "functionResponse" in part and part["functionResponse"].get("name") not in called:
                return _error(400, f"contents[{number}]: function response without a matching call")
        called = {p["functionCall"]["name"] for p in parts if "functionCall" in p}
    for tool in body.get("tools") or []:
        for declaration in tool.get("functionDeclarations") or []:
            text = json.dumps(declaration.get("parameters") or {})
            if any(f'"{key}"' in text for key in REFUSED_SCHEMA_KEYS):
                return _error(400, f"Invalid JSON payload: unknown field in {declaration['name']} parameters")
    return None


def _wants_tool(body: dict[str, Any]) -> str | None:
    answered = any("functionResponse" in part for part in body["contents"][-1]["parts"])
    declarations = [d for t in body.get("tools") or [] for d in t.get("functionDeclarations") or []]
    return declarations[0]["name"] if declarations and not answered else None


def _answer(parts: list[dict[str, Any]], model: str, finish: str | None, usage: bool) -> dict[str, Any]:
    candidate: dict[str, Any] = {"content": {"role": "model", "parts": parts}, "index": 0}
    if finish:
        candidate["finishReason"] = finish
    answer: dict[str, Any] = {"candidates": [candidate], "modelVersion": model, "responseId": "gm-fake1"}
    if usage:
        answer["usageMetadata"] = {"promptTokenCount": INPUT_TOKENS, "candidatesTokenCount": OUTPUT_TOKENS,
                                   "totalTokenCount": INPUT_TOKENS + OUTPUT_TOKENS}
    return answer


async def generate(request: Request) -> Response:
    model, _, method = request.path_params["target"].partition(":")
    if request.headers.get("x-goog-api-key") != KEY:
        return _error(403, "Method doesn't allow unregistered callers", "PERMISSION_DENIED")
    body = await request.json()
    received.append(body)
    if method == "countTokens":
        counted = body.get("generateContentRequest") or {}
        if counted.get("model") != f"models/{model}":
            return _error(400, "generateContentRequest.model: must name the model counted with")
        return _refusal(counted) or JSONResponse({"totalTokens": len(json.dumps(counted["contents"])) // 4})
    if (refused := _refusal(body)) is not None:
        return refused
    tool = _wants_tool(body)
    if method == "generateContent":
        parts = [{"functionCall": {"name": tool, "args": CITY}}] if tool else [{"text": "".join(TEXT)}]
        return JSONResponse(_answer(parts, model, "STOP", True))
    if method == "streamGenerateContent" and request.query_params.get("alt") == "sse":
        return StreamingResponse(_stream(model, tool), media_type="text/event-stream")
    return _error(404, f"method {method} not found", "NOT_FOUND")


async def _stream(model: str, tool: str | None) -> AsyncIterator[bytes]:
    def event(answer: dict[str, Any]) -> bytes:
        return b"data: " + json.dumps(answer).encode() + b"\r\n\r\n"

    if tool:
        yield event(_answer([{"functionCall": {"name": tool, "args": CITY}}], model, "STOP", True))
        return
    for number, word in enumerate(TEXT):
        await anyio.sleep(0.01)
        last = number == len(TEXT) - 1
        yield event(_answer([{"text": word}], model, "STOP" if last else None, last))


routes = [Route("/gemini/v1beta/models/{target}", generate, methods=["POST"])]
