"""The fake OpenAI provider, speaking Chat Completions' exact wire format, for the proxy's tests.

Answers with text, or with a tool call when the request offers tools (and a final answer once a tool result
is in the messages); streams as OpenAI does (role chunk, content or tool-call argument deltas, finish chunk, a
usage chunk with empty ``choices`` only when ``stream_options.include_usage`` is set, ``[DONE]``). Requires
``Authorization: Bearer sk-fake``. ``/record`` returns the bodies received. Special models: ``gpt-fail``
answers 500, ``gpt-slow`` waits 5 s, ``gpt-refuse`` answers OpenAI's 400 error, ``gpt-endless`` streams
until its reader goes away (noted in ``/record``), ``gpt-breaks`` streams two chunks and then drops the
connection. ``/fail/v1/chat/completions`` always answers 500 (a peer that is down), counting its calls.

Azure OpenAI's form is served too: ``/azure/openai/deployments/<deployment>/chat/completions?api-version=...``
with ``api-key: az-fake`` (the deployment answers as the model).
"""

from __future__ import annotations

import base64
import json
import struct
from collections.abc import AsyncIterator
from typing import Any

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from tests.ai.fake_state import INPUT_TOKENS, OUTPUT_TOKENS, TEXT, abandoned, failing_calls, received, traceparents

KEY = "sk-fake"
AZURE_KEY = "az-fake"
USAGE = {"prompt_tokens": INPUT_TOKENS, "completion_tokens": OUTPUT_TOKENS,
         "total_tokens": INPUT_TOKENS + OUTPUT_TOKENS}


def _tool_call(body: dict[str, Any]) -> dict[str, Any] | None:
    """The call the fake makes: the first offered tool, unless a tool result already came back."""
    if not body.get("tools") or any(m.get("role") == "tool" for m in body["messages"]):
        return None
    name = body["tools"][0]["function"]["name"]
    return {"id": "call_fake1", "type": "function", "function": {"name": name, "arguments": '{"city":"Paris"}'}}


def _unauthorized(request: Request) -> Response | None:
    if request.headers.get("authorization") == f"Bearer {KEY}":
        return None
    return JSONResponse({"error": {"message": "Incorrect API key provided", "type": "invalid_request_error",
                                   "param": None, "code": "invalid_api_key"}}, 401)


async def completions(request: Request) -> Response:
    if (refused := _unauthorized(request)) is not None:
        return refused
    traceparents.append(request.headers.get("traceparent", ""))
    return await _answer(await request.json())


async def azure_completions(request: Request) -> Response:
    if request.headers.get("api-key") != AZURE_KEY:
        return JSONResponse({"error": {"code": "401", "message": "Access denied due to invalid subscription key"}},
                            401)
    if not request.query_params.get("api-version"):
        return JSONResponse({"error": {"code": "404", "message": "Resource not found"}}, 404)
    return await _answer({**await request.json(), "model": request.path_params["deployment"]})


async def _answer(body: dict[str, Any]) -> Response:
    received.append(body)
    model = body["model"]
    if model == "gpt-fail":
        return JSONResponse({"error": {"message": "The server had an error", "type": "server_error", "param": None,
                                       "code": None}}, 500)
    if model == "gpt-refuse":
        return JSONResponse({"error": {"message": "max_tokens is too large", "type": "invalid_request_error",
                                       "param": "max_tokens", "code": None}}, 400)
    if model == "gpt-slow":
        await anyio.sleep(5)
    call = _tool_call(body)
    if body.get("stream"):
        return StreamingResponse(_stream(body, call), media_type="text/event-stream")
    message: dict[str, Any] = {"role": "assistant", "content": None if call else "".join(TEXT), "refusal": None}
    if call:
        message["tool_calls"] = [call]
    return JSONResponse({
        "id": "chatcmpl-fake1", "object": "chat.completion", "created": 1_700_000_000, "model": model,
        "system_fingerprint": "fp_fake", "choices": [{"index": 0, "message": message, "logprobs": None,
                                                      "finish_reason": "tool_calls" if call else "stop"}],
        "usage": USAGE})


async def _stream(body: dict[str, Any], call: dict[str, Any] | None) -> AsyncIterator[bytes]:
    base = {"id": "chatcmpl-fake1", "object": "chat.completion.chunk", "created": 1_700_000_000,
            "model": body["model"], "system_fingerprint": "fp_fake"}
    usage_asked = bool((body.get("stream_options") or {}).get("include_usage"))

    def chunk(delta: dict[str, Any], finish: str | None = None) -> bytes:
        payload = {**base, "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}]}
        if usage_asked:
            payload["usage"] = None
        return b"data: " + json.dumps(payload).encode() + b"\n\n"

    yield chunk({"role": "assistant", "content": "" if call is None else None, "refusal": None})
    if body["model"] == "gpt-breaks":
        yield chunk({"content": "half"})
        yield chunk({"content": " an answer"})
        raise RuntimeError("the provider fell over mid-stream")
    if body["model"] == "gpt-endless":
        try:
            while True:
                await anyio.sleep(0.05)
                yield chunk({"content": "more"})
        finally:
            abandoned.append(body["model"])
    if call is None:
        for word in TEXT:
            await anyio.sleep(0.01)
            yield chunk({"content": word})
    else:
        yield chunk({"tool_calls": [{"index": 0, "id": call["id"], "type": "function",
                                     "function": {"name": call["function"]["name"], "arguments": ""}}]})
        for part in ('{"city"', ':"Paris"}'):
            yield chunk({"tool_calls": [{"index": 0, "function": {"arguments": part}}]})
    yield chunk({}, "tool_calls" if call else "stop")
    if usage_asked:
        yield b"data: " + json.dumps({**base, "choices": [], "usage": USAGE}).encode() + b"\n\n"
    yield b"data: [DONE]\n\n"


async def embeddings(request: Request) -> Response:
    if (refused := _unauthorized(request)) is not None:
        return refused
    body = await request.json()
    received.append(body)
    inputs = body["input"] if isinstance(body["input"], list) else [body["input"]]
    vector = [0.25, -0.5, 0.125, 1.0]
    base64_asked = body.get("encoding_format") == "base64"  # the openai SDK asks for it by default
    encoded: Any = base64.b64encode(struct.pack(f"<{len(vector)}f", *vector)).decode() if base64_asked else vector
    return JSONResponse({"object": "list", "model": body["model"], "usage": {"prompt_tokens": 5 * len(inputs),
                                                                              "total_tokens": 5 * len(inputs)},
                         "data": [{"object": "embedding", "index": i, "embedding": encoded}
                                  for i in range(len(inputs))]})


async def failing(request: Request) -> JSONResponse:
    failing_calls.append((await request.json())["model"])
    return JSONResponse({"error": {"message": "The server is overloaded", "type": "server_error", "param": None,
                                   "code": None}}, 500)


routes = [Route("/v1/chat/completions", completions, methods=["POST"]),
          Route("/azure/openai/deployments/{deployment}/chat/completions", azure_completions, methods=["POST"]),
          Route("/fail/v1/chat/completions", failing, methods=["POST"]),
          Route("/v1/embeddings", embeddings, methods=["POST"])]
