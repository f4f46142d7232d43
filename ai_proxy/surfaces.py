"""The client-facing APIs on the shared pipeline: how each checks its requests, converts them to the hub form
(Chat Completions) when the provider does not speak it, converts answers and streams back, and shapes errors."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any

from starlette.responses import JSONResponse, Response

from ai_proxy import anthropic_format, responses_format
from ai_proxy.errors import ProxyError, error_headers, openai_error
from ai_proxy.sse import encode

Chunks = AsyncIterator[dict[str, Any]]


@dataclass(frozen=True, slots=True)
class Surface:
    """One client API. ``native`` is the provider format that takes its requests as they are (None: none does);
    ``endpoint`` is where such a provider serves it, below its base URL. ``to_hub``/``answer``/``stream``
    convert for every other provider."""

    action: str
    check: Callable[[dict[str, Any]], None]
    error: Callable[[ProxyError], Response]
    stream_error: Callable[[ProxyError], bytes]  # the event that tells a client its stream failed midway
    to_hub: Callable[[dict[str, Any]], dict[str, Any]]
    answer: Callable[[dict[str, Any], dict[str, Any]], dict[str, Any]]  # hub answer, client request -> answer
    stream: Callable[[Chunks, dict[str, Any]], AsyncIterator[bytes]]  # hub chunks, client request -> events
    native: str | None = "openai"
    endpoint: str = "/chat/completions"
    streams: bool = True  # whether "stream": true means anything on this surface
    converts: bool = True  # whether providers of other formats can serve it


def _check_chat(body: dict[str, Any]) -> None:
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise ProxyError(400, "invalid_request_error", "'model' is required (a string)", param="model")
    if not isinstance(body.get("messages"), list) or not body["messages"]:
        raise ProxyError(400, "invalid_request_error", "'messages' is required (a non-empty array)",
                         param="messages")


def _check_embeddings(body: dict[str, Any]) -> None:
    if not isinstance(body.get("model"), str) or not body["model"]:
        raise ProxyError(400, "invalid_request_error", "'model' is required (a string)", param="model")
    if not isinstance(body.get("input"), str | list) or not body["input"]:
        raise ProxyError(400, "invalid_request_error", "'input' is required (a string or an array)", param="input")


def _openai_stream_error(error: ProxyError) -> bytes:
    # The openai SDKs raise on a stream event that carries an "error" object.
    return encode({"error": {"message": error.message, "type": error.kind, "param": None, "code": error.code}})


async def _chat_stream(chunks: Chunks, body: dict[str, Any]) -> AsyncIterator[bytes]:
    """Hub chunks as a Chat Completions stream; the usage chunk only when the client asked for it."""
    wants_usage = bool((body.get("stream_options") or {}).get("include_usage"))
    async for chunk in chunks:
        if chunk.get("choices") or wants_usage:
            yield encode({**chunk, "model": body["model"]})
    yield b"data: [DONE]\n\n"


def _anthropic_error(error: ProxyError) -> Response:
    return JSONResponse(anthropic_format.error_body(error), error.status, headers=error_headers(error))


def _same(body: dict[str, Any]) -> dict[str, Any]:
    return body


def _renamed(answer: dict[str, Any], body: dict[str, Any]) -> dict[str, Any]:
    return {**answer, "model": body["model"]}


OPENAI_CHAT = Surface("chat.completions", _check_chat, openai_error, _openai_stream_error, _same, _renamed,
                      _chat_stream)
OPENAI_EMBEDDINGS = Surface("embeddings", _check_embeddings, openai_error, _openai_stream_error, _same, _renamed,
                            _chat_stream, endpoint="/embeddings", streams=False, converts=False)
OPENAI_RESPONSES = Surface(
    "responses", responses_format.check, openai_error, responses_format.stream_error, responses_format.to_openai,
    lambda answer, body: responses_format.from_openai(answer, body["model"]),
    lambda chunks, body: responses_format.stream_from_openai(chunks, body["model"]), native=None)
ANTHROPIC_MESSAGES = Surface(
    "messages", anthropic_format.check, _anthropic_error, anthropic_format.stream_error, anthropic_format.to_openai,
    lambda answer, body: anthropic_format.from_openai(answer, body["model"]),
    lambda chunks, body: anthropic_format.stream_from_openai(chunks, body["model"]), native="anthropic",
    endpoint="/messages")


ANTHROPIC_COUNT = Surface(
    "messages.count_tokens", anthropic_format.check_count, _anthropic_error, anthropic_format.stream_error,
    anthropic_format.to_openai, _renamed, _chat_stream, native="anthropic", endpoint="/messages/count_tokens",
    streams=False)
