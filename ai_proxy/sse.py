"""Server-sent events as providers send them: complete events as they arrive, their ``data`` and ``event``."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import orjson

from ai_proxy.provider_http import ProviderResponse


async def events(response: ProviderResponse) -> AsyncIterator[bytes]:
    """The provider's SSE stream, one complete event (ending in a blank line) at a time, as it arrives."""
    pending = b""
    async for chunk in response.chunks():
        pending += chunk
        while True:
            end = _event_end(pending)
            if end < 0:
                break
            yield pending[:end]
            pending = pending[end:]
    if pending.strip():
        yield pending if pending.endswith(b"\n\n") else pending.rstrip(b"\r\n") + b"\n\n"


def _event_end(buffer: bytes) -> int:
    """Where the first complete event ends (after its blank line), or -1."""
    ends = [found + len(separator) for separator in (b"\n\n", b"\r\n\r\n")
            if (found := buffer.find(separator)) >= 0]
    return min(ends) if ends else -1


def data_of(event: bytes) -> bytes | None:
    lines = [line[5:].strip() for line in event.splitlines() if line.startswith(b"data:")]
    return b"\n".join(lines) if lines else None


async def json_data(response: ProviderResponse) -> AsyncIterator[dict[str, Any]]:
    """Each event's data as a JSON object (events without data, ``[DONE]`` and non-objects skipped)."""
    async for event in events(response):
        data = data_of(event)
        if data and data != b"[DONE]" and isinstance(value := json_object(data), dict) and value:
            yield value


def json_object(raw: bytes) -> dict[str, Any]:
    try:
        value = orjson.loads(raw)
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def encode(data: dict[str, Any], kind: str | None = None) -> bytes:
    """One event, compactly serialised (with an ``event:`` line when the API names its events)."""
    head = f"event: {kind}\n".encode() if kind else b""
    return head + b"data: " + orjson.dumps(data) + b"\n\n"
