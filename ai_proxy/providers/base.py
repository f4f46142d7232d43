"""What every provider dialect offers the pipeline, and the hub (Chat Completions) shapes they produce."""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass
from typing import Any, Protocol

import orjson

from ai_proxy.provider_http import ProviderResponse
from ai_proxy.routing import Provider

NoteUsage = Callable[[int, int], None]  # input tokens, output tokens: the latest known totals


@dataclass(frozen=True, slots=True)
class Outgoing:
    """One request to a provider: where it goes, its headers and its body, ready to send."""

    url: str
    headers: dict[str, str]
    body: bytes


class StreamFailed(Exception):
    """The provider reported an error inside a stream it had started."""


class Dialect(Protocol):
    format: str  # the client API this dialect takes natively ("openai", "anthropic"), or its own name

    def native(self, provider: Provider, endpoint: str, body: dict[str, Any], raw: bytes, model: str,
               stream: bool) -> Outgoing:
        """The client's own request, for a provider of the client's API (``endpoint`` below the base URL)."""

    def native_usage(self, answer: dict[str, Any]) -> tuple[int, int]:
        """Input and output tokens of a native answer."""

    def native_stream(self, response: ProviderResponse, body: dict[str, Any],
                      note: NoteUsage) -> AsyncIterator[bytes]:
        """The provider's stream passed on event by event, its usage noted (and dropped where the client did
        not ask for it)."""

    def convert(self, provider: Provider, hub: dict[str, Any], model: str, stream: bool) -> Outgoing:
        """A Chat Completions request as this provider's request."""

    def answer(self, answer: dict[str, Any], model: str) -> dict[str, Any]:
        """The provider's answer as a Chat Completions answer."""

    def chunks(self, response: ProviderResponse, model: str) -> AsyncIterator[dict[str, Any]]:
        """The provider's stream as Chat Completions chunks, usage last in a chunk without choices."""

    def error_message(self, answer: dict[str, Any]) -> str | None:
        """The message of the provider's error body, if it is one."""

    def count_request(self, provider: Provider, hub: dict[str, Any], model: str) -> Outgoing | None:
        """A request counting a Chat Completions request's input tokens, where the provider can count."""

    def counted(self, answer: dict[str, Any]) -> int:
        """The input tokens in the answer to ``count_request``."""


def json_bytes(value: Any) -> bytes:
    return orjson.dumps(value)


def text_of(content: Any) -> str:
    """The text of a Chat Completions content (a string, or parts of which the text ones count)."""
    if content is None:
        return ""
    if isinstance(content, str):
        return content
    return "".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")


def parts_of(content: Any) -> list[dict[str, Any]]:
    """A Chat Completions content as a list of parts (a string is one text part)."""
    if content is None or content == "":
        return []
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    return [p for p in content if isinstance(p, dict)]


def data_url(url: str) -> tuple[str, str] | None:
    """The media type and base64 data of a ``data:`` URL, or None for any other URL."""
    if not url.startswith("data:") or ";base64," not in url:
        return None
    head, data = url[5:].split(";base64,", 1)
    return head or "application/octet-stream", data


def arguments(raw: Any) -> Any:
    """A tool call's JSON arguments as a value (a model's broken JSON kept as a string under ``_raw``)."""
    if isinstance(raw, dict):
        return raw
    try:
        value = json.loads(raw) if raw else {}
    except ValueError:
        return {"_raw": raw}
    return value if isinstance(value, dict) else {"value": value}


def tool_call(call_id: str, name: str, args: Any) -> dict[str, Any]:
    return {"id": call_id, "type": "function",
            "function": {"name": name, "arguments": args if isinstance(args, str) else json.dumps(args)}}


def completion(ident: str, model: str, text: str, calls: list[dict[str, Any]], finish: str, input_tokens: int,
               output_tokens: int) -> dict[str, Any]:
    message: dict[str, Any] = {"role": "assistant", "content": text or None}
    if calls:
        message["tool_calls"] = calls
    return {"id": f"chatcmpl-{ident}", "object": "chat.completion", "created": int(time.time()), "model": model,
            "choices": [{"index": 0, "message": message, "finish_reason": finish}],
            "usage": usage(input_tokens, output_tokens)}


def usage(input_tokens: int, output_tokens: int) -> dict[str, int]:
    return {"prompt_tokens": input_tokens, "completion_tokens": output_tokens,
            "total_tokens": input_tokens + output_tokens}


class ChunkWriter:
    """Chat Completions chunks for one streamed answer: the role first, then deltas, the finish, usage last."""

    def __init__(self, ident: str, model: str) -> None:
        self._base = {"id": f"chatcmpl-{ident}", "object": "chat.completion.chunk", "created": int(time.time()),
                      "model": model}
        self._started = False

    def delta(self, delta: dict[str, Any], finish: str | None = None) -> list[dict[str, Any]]:
        out = []
        if not self._started:
            self._started = True
            out.append(self._chunk({"role": "assistant", "content": ""}, None))
        out.append(self._chunk(delta, finish))
        return out

    def _chunk(self, delta: dict[str, Any], finish: str | None) -> dict[str, Any]:
        return {**self._base, "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}

    def usage(self, input_tokens: int, output_tokens: int) -> dict[str, Any]:
        return {**self._base, "choices": [], "usage": usage(input_tokens, output_tokens)}


def add_turn(turns: list[dict[str, Any]], role: str, items: list[dict[str, Any]], key: str = "content") -> None:
    """Adds content to a conversation whose roles must alternate: merged into the last turn when it is the same
    role's."""
    if not items:
        return
    if turns and turns[-1]["role"] == role:
        turns[-1][key] += items
    else:
        turns.append({"role": role, key: items})
