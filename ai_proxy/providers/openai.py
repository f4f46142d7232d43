"""OpenAI, Azure OpenAI and OpenAI-compatible endpoints (vLLM, Ollama, llama.cpp): Chat Completions is their own
API, so requests go on as they are, apart from asking for a stream's usage (``stream_options.include_usage``,
its extra chunk dropped again when the client did not ask for it). Azure names the deployment in the path, takes
an ``api-version`` and its key in ``api-key``."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from typing import Any

from ai_proxy import sse
from ai_proxy.chat_usage import tokens
from ai_proxy.provider_http import ProviderResponse
from ai_proxy.providers.base import NoteUsage, Outgoing, StreamFailed, json_bytes
from ai_proxy.routing import Provider

_CARRIES_USAGE = re.compile(rb'"usage"\s*:\s*\{')  # a chunk with usage (not the "usage": null of the others)


class OpenAIDialect:
    format = "openai"

    def __init__(self, azure: bool = False) -> None:
        self._azure = azure

    def _outgoing(self, provider: Provider, endpoint: str, model: str, body: bytes) -> Outgoing:
        headers = {"content-type": "application/json"}
        if self._azure:
            url = f"{provider.base_url}/openai/deployments/{model}{endpoint}?api-version={provider.api_version}"
            if provider.api_key:
                headers["api-key"] = provider.api_key
        else:
            url = f"{provider.base_url}{endpoint}"
            if provider.api_key:
                headers["authorization"] = f"Bearer {provider.api_key}"
        return Outgoing(url, headers, body)

    def native(self, provider: Provider, endpoint: str, body: dict[str, Any], raw: bytes, model: str,
               stream: bool) -> Outgoing:
        if stream:
            # Usage is what quotas and cost are counted from: asked for, and dropped on the way back unless asked.
            # Most requests carry no stream_options at all: the member is then put in front, bytes untouched.
            body_start = raw.lstrip()
            if model == body["model"] and b'"stream_options"' not in raw and body_start.startswith(b"{"):
                raw = b'{"stream_options":{"include_usage":true},' + body_start[1:]
            else:
                options = body.get("stream_options") or {}
                raw = json_bytes({**body, "model": model, "stream_options": {**options, "include_usage": True}})
        elif model != body["model"]:
            raw = json_bytes({**body, "model": model})
        return self._outgoing(provider, endpoint, model, raw)

    def native_usage(self, answer: dict[str, Any]) -> tuple[int, int]:
        return tokens(answer.get("usage") or {})

    async def native_stream(self, response: ProviderResponse, body: dict[str, Any],
                            note: NoteUsage) -> AsyncIterator[bytes]:
        wants_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        async for event in sse.events(response):
            if _CARRIES_USAGE.search(event):  # only such chunks are decoded; the rest pass as they are
                chunk = sse.json_object(sse.data_of(event) or b"")
                if chunk.get("usage"):
                    note(*tokens(chunk["usage"]))
                    if not wants_usage and not chunk.get("choices"):
                        continue
            yield event

    def convert(self, provider: Provider, hub: dict[str, Any], model: str, stream: bool) -> Outgoing:
        body = {**hub, "model": model}
        if stream:
            body["stream_options"] = {"include_usage": True}
        return self._outgoing(provider, "/chat/completions", model, json_bytes(body))

    def answer(self, answer: dict[str, Any], model: str) -> dict[str, Any]:
        return answer

    async def chunks(self, response: ProviderResponse, model: str) -> AsyncIterator[dict[str, Any]]:
        async for chunk in sse.json_data(response):
            if isinstance(chunk.get("error"), dict) and "choices" not in chunk:
                raise StreamFailed(self.error_message(chunk) or "the provider's stream failed")
            yield chunk

    def error_message(self, answer: dict[str, Any]) -> str | None:
        error = answer.get("error")
        return str(error.get("message")) if isinstance(error, dict) and error.get("message") else None

    def count_request(self, provider: Provider, hub: dict[str, Any], model: str) -> Outgoing | None:
        return None  # Chat Completions has no endpoint that counts

    def counted(self, answer: dict[str, Any]) -> int:
        return 0
