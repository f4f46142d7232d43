"""Google Gemini (the Generative Language API's ``generateContent`` and ``streamGenerateContent``). Chat
Completions requests are converted: system messages become ``systemInstruction``, the assistant is the ``model``
role, tool calls ``functionCall`` parts and tool results ``functionResponse`` parts (named after the call they
answer), images inline data or file URIs, sampling settings ``generationConfig``. Answers and the stream (SSE,
one partial answer per event) are converted back; usage comes from ``usageMetadata``."""

from __future__ import annotations

import mimetypes
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import quote

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

FINISH_REASONS = {"STOP": "stop", "MAX_TOKENS": "length", "SAFETY": "content_filter", "RECITATION": "content_filter",
                  "BLOCKLIST": "content_filter", "PROHIBITED_CONTENT": "content_filter", "SPII": "content_filter",
                  "IMAGE_SAFETY": "content_filter"}
# JSON Schema keywords Gemini's function parameters (an OpenAPI subset) refuse.
_UNSUPPORTED_SCHEMA = frozenset({"$schema", "$id", "additionalProperties", "strict", "$defs", "definitions"})


class GeminiDialect:
    format = "gemini"

    def native(self, provider: Provider, endpoint: str, body: dict[str, Any], raw: bytes, model: str,
               stream: bool) -> Outgoing:
        raise AssertionError("no client API is Gemini's own")

    def native_usage(self, answer: dict[str, Any]) -> tuple[int, int]:
        return usage_of(answer)

    def native_stream(self, response: ProviderResponse, body: dict[str, Any],
                      note: NoteUsage) -> AsyncIterator[bytes]:
        raise AssertionError("no client API is Gemini's own")

    def convert(self, provider: Provider, hub: dict[str, Any], model: str, stream: bool) -> Outgoing:
        method = "streamGenerateContent?alt=sse" if stream else "generateContent"
        return self._outgoing(provider, model, method, request(hub))

    def _outgoing(self, provider: Provider, model: str, method: str, body: dict[str, Any]) -> Outgoing:
        headers = {"content-type": "application/json"}
        if provider.api_key:
            headers["x-goog-api-key"] = provider.api_key
        return Outgoing(f"{provider.base_url}/v1beta/models/{quote(model, safe='')}:{method}", headers,
                        json_bytes(body))

    def count_request(self, provider: Provider, hub: dict[str, Any], model: str) -> Outgoing | None:
        counted = {"model": f"models/{model}", **request(hub)}
        counted.pop("generationConfig", None)
        return self._outgoing(provider, model, "countTokens", {"generateContentRequest": counted})

    def counted(self, answer: dict[str, Any]) -> int:
        return int(answer.get("totalTokens") or 0)

    def answer(self, answer: dict[str, Any], model: str) -> dict[str, Any]:
        parts = _parts(answer)
        text = "".join(p["text"] for p in parts if "text" in p and not p.get("thought"))
        calls = [_call(p["functionCall"], n) for n, p in enumerate(p for p in parts if "functionCall" in p)]
        return completion(str(answer.get("responseId") or "gemini"), model, text, calls,
                          _finish(answer, bool(calls)) or "stop", *usage_of(answer))

    async def chunks(self, response: ProviderResponse, model: str) -> AsyncIterator[dict[str, Any]]:
        writer: ChunkWriter | None = None
        calls = 0
        counted = (0, 0)
        async for event in sse.json_data(response):
            if isinstance(event.get("error"), dict):
                raise StreamFailed(self.error_message(event) or "the provider failed")
            if writer is None:
                writer = ChunkWriter(str(event.get("responseId") or "gemini"), model)
            for part in _parts(event):
                if "text" in part and part["text"] and not part.get("thought"):
                    for chunk in writer.delta({"content": part["text"]}):
                        yield chunk
                elif "functionCall" in part:
                    call = _call(part["functionCall"], calls)
                    for chunk in writer.delta({"tool_calls": [{"index": calls, **call}]}):
                        yield chunk
                    calls += 1
            if event.get("usageMetadata"):
                counted = usage_of(event)
            finish = _finish(event, calls > 0)
            if finish:
                for chunk in writer.delta({}, finish):
                    yield chunk
        if writer is not None:
            yield writer.usage(*counted)

    def error_message(self, answer: dict[str, Any]) -> str | None:
        error = answer.get("error")
        return str(error.get("message")) if isinstance(error, dict) and error.get("message") else None


def usage_of(answer: dict[str, Any]) -> tuple[int, int]:
    meta = answer.get("usageMetadata") or {}
    return count(meta.get("promptTokenCount")), \
        count(meta.get("candidatesTokenCount")) + count(meta.get("thoughtsTokenCount"))


def _parts(answer: dict[str, Any]) -> list[dict[str, Any]]:
    candidates = answer.get("candidates") or [{}]
    return list(((candidates[0].get("content") or {}).get("parts")) or [])


def _finish(answer: dict[str, Any], called: bool) -> str | None:
    reason = (answer.get("candidates") or [{}])[0].get("finishReason")
    if not reason or reason == "FINISH_REASON_UNSPECIFIED":
        return None
    return "tool_calls" if called and reason == "STOP" else FINISH_REASONS.get(reason, "stop")


def _call(call: dict[str, Any], position: int) -> dict[str, Any]:
    # Gemini's calls carry an id only in some versions; a tool result is matched back to its call by name.
    return tool_call(str(call.get("id") or f"call_{position}_{call.get('name', '')}"), str(call.get("name", "")),
                     call.get("args") or {})


def request(hub: dict[str, Any]) -> dict[str, Any]:
    """A Chat Completions request as a generateContent request."""
    system: list[str] = []
    contents: list[dict[str, Any]] = []
    names: dict[str, str] = {}  # tool call id -> function name, for the results
    for message in hub["messages"]:
        role = message.get("role")
        if role in ("system", "developer"):
            system.append(text_of(message.get("content")))
        elif role == "assistant":
            parts: list[dict[str, Any]] = [{"text": t} for t in [text_of(message.get("content"))] if t]
            for call in message.get("tool_calls") or []:
                names[call["id"]] = call["function"]["name"]
                parts.append({"functionCall": {"name": call["function"]["name"],
                                               "args": arguments(call["function"].get("arguments"))}})
            add_turn(contents, "model", parts, "parts")
        elif role == "tool":
            call_id = str(message.get("tool_call_id"))
            result = arguments(text_of(message.get("content")))
            response = result if "_raw" not in result else {"content": text_of(message.get("content"))}
            add_turn(contents, "user", [{"functionResponse": {"name": names.get(call_id, call_id),
                                                             "response": response}}], "parts")
        else:
            add_turn(contents, "user", [_part(p) for p in parts_of(message.get("content"))], "parts")
    body: dict[str, Any] = {"contents": contents}
    if system:
        body["systemInstruction"] = {"parts": [{"text": "\n\n".join(system)}]}
    config: dict[str, Any] = {}
    for ours, theirs in (("max_completion_tokens", "maxOutputTokens"), ("max_tokens", "maxOutputTokens"),
                         ("temperature", "temperature"), ("top_p", "topP"), ("seed", "seed")):
        if hub.get(ours) is not None:
            config.setdefault(theirs, hub[ours])
    stop = hub.get("stop")
    if stop:
        config["stopSequences"] = [stop] if isinstance(stop, str) else list(stop)
    if (hub.get("response_format") or {}).get("type") in ("json_object", "json_schema"):
        config["responseMimeType"] = "application/json"
    if config:
        body["generationConfig"] = config
    functions = [t["function"] for t in hub.get("tools") or [] if t.get("type") == "function"]
    if functions:
        body["tools"] = [{"functionDeclarations": [
            {"name": f["name"], "description": f.get("description") or "",
             **({"parameters": _schema(f["parameters"])} if f.get("parameters") else {})} for f in functions]}]
        choice = hub.get("tool_choice")
        if isinstance(choice, dict):
            body["toolConfig"] = {"functionCallingConfig": {
                "mode": "ANY", "allowedFunctionNames": [(choice.get("function") or {}).get("name")]}}
        elif choice in ("required", "none"):
            body["toolConfig"] = {"functionCallingConfig": {"mode": "ANY" if choice == "required" else "NONE"}}
    return body


def _schema(schema: Any) -> Any:
    if isinstance(schema, dict):
        return {k: _schema(v) for k, v in schema.items() if k not in _UNSUPPORTED_SCHEMA}
    if isinstance(schema, list):
        return [_schema(v) for v in schema]
    return schema



def _part(part: dict[str, Any]) -> dict[str, Any]:
    if part.get("type") == "text":
        return {"text": part.get("text", "")}
    if part.get("type") == "image_url":
        url = str((part.get("image_url") or {}).get("url", ""))
        inline = data_url(url)
        if inline:
            return {"inlineData": {"mimeType": inline[0], "data": inline[1]}}
        return {"fileData": {"fileUri": url, "mimeType": mimetypes.guess_type(url)[0] or "image/jpeg"}}
    raise ProxyError(400, "invalid_request_error", f"content parts of type {part.get('type')!r} cannot be sent to"
                     " a Gemini model", param="messages")
