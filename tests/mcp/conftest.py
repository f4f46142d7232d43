"""Fixtures for driving ``/mcp`` through the official SDK client against real upstream processes."""

from __future__ import annotations

import sys
from collections.abc import AsyncIterator, Iterator
from contextlib import asynccontextmanager, contextmanager
from typing import Any

import httpx2
import pytest
from mcp import ClientSession
from mcp.client.streamable_http import streamable_http_client

from tests.interaction.process import REPO, python_module_serving

PYTHON = sys.executable


def stdio_server(name: str = "demo") -> dict[str, Any]:
    return {"name": name, "transport": "stdio", "command": PYTHON, "args": ["-m", "tests.mcp.demo_upstream"],
            "env": {"PYTHONPATH": str(REPO), "DEMO_NAME": name}, "timeout_seconds": 5}


@pytest.fixture
def http_upstream() -> Iterator[str]:
    """The demo upstream served over Streamable HTTP by its own process."""
    yield from _served_demo()


@pytest.fixture(scope="module")
def upstream_url() -> Iterator[str]:
    """The same, shared by a test module (with a module-scoped Warden in front of it)."""
    yield from _served_demo()


def _served_demo() -> Iterator[str]:
    with python_module_serving("tests.mcp.demo_upstream", "streamable-http", "{port}") as port:
        yield f"http://127.0.0.1:{port}/mcp"


@contextmanager
def served_plain_upstream(mode: str = "json") -> Iterator[str]:
    """tests.mcp.plain_upstream over Streamable HTTP (``json`` answers or ``sse``) in its own process."""
    with python_module_serving("tests.mcp.plain_upstream", "{port}", mode) as port:
        yield f"http://127.0.0.1:{port}/mcp"


@asynccontextmanager
async def mcp_client(url: str, secret: str | None, extra_headers: dict[str, str] | None = None,
                     message_handler: Any = None, **callbacks: Any) -> AsyncIterator[ClientSession]:
    """A handshake-era client; ``callbacks`` are ClientSession's (``sampling_callback``, ``logging_callback``...)."""
    headers = {"authorization": f"Bearer {secret}"} if secret else {}
    headers.update(extra_headers or {})
    async with httpx2.AsyncClient(headers=headers, timeout=30) as http, \
            streamable_http_client(url, http_client=http) as streams, \
            ClientSession(streams[0], streams[1], message_handler=message_handler, **callbacks) as session:
        await session.initialize()
        yield session


@asynccontextmanager
async def modern_client(url: str, secret: str, **callbacks: Any) -> AsyncIterator[ClientSession]:
    """A 2026-07-28 client: no initialize handshake, no session; ``server/discover`` instead. ``callbacks``
    declare capabilities (``sampling_callback``...), which 2026-07-28 answers through input_required."""
    async with httpx2.AsyncClient(headers={"authorization": f"Bearer {secret}"}, timeout=30) as http, \
            streamable_http_client(url, http_client=http) as streams, \
            ClientSession(streams[0], streams[1], **callbacks) as session:
        await session.discover()
        yield session
