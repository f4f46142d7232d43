"""The aiohttp transport under the SDK's httpx2 client: requests, streaming, and failures as httpx2 errors."""

from __future__ import annotations

import socket

import anyio
import httpx2
import pytest

from broker.mcp.http_transport import AiohttpTransport
from broker.outbound import Outbound, OutboundPolicy
from tests.interaction.process import free_port

LOOPBACK = Outbound(OutboundPolicy.from_entries(["127.0.0.1"]))


async def test_a_request_and_its_streamed_answer(http_upstream: str) -> None:
    init = {"jsonrpc": "2.0", "id": 1, "method": "initialize", "params": {
        "protocolVersion": "2025-11-25", "capabilities": {}, "clientInfo": {"name": "t", "version": "1"}}}
    async with httpx2.AsyncClient(transport=AiohttpTransport(LOOPBACK), timeout=10) as http:
        async with http.stream("POST", http_upstream, json=init,
                               headers={"accept": "application/json, text/event-stream"}) as response:
            body = b"".join([chunk async for chunk in response.aiter_bytes()])
        refused = await http.get(http_upstream, headers={"accept": "application/json"})
    assert response.status_code == 200 and response.headers["mcp-session-id"]
    assert b'"protocolVersion"' in body
    assert refused.status_code in (400, 405, 406)


async def test_an_unreachable_upstream_is_a_connect_error() -> None:
    async with httpx2.AsyncClient(transport=AiohttpTransport(LOOPBACK), timeout=2) as http:
        with pytest.raises(httpx2.ConnectError):
            await http.get(f"http://127.0.0.1:{free_port()}/mcp")


async def test_a_connection_cut_mid_body_is_a_protocol_error() -> None:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen()
    port = listener.getsockname()[1]

    def serve_half() -> None:
        connection, _ = listener.accept()
        connection.recv(65536)
        connection.sendall(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nonly part")
        connection.close()

    async with anyio.create_task_group() as group:
        group.start_soon(anyio.to_thread.run_sync, serve_half)
        async with httpx2.AsyncClient(transport=AiohttpTransport(LOOPBACK), timeout=5) as http:
            with pytest.raises(httpx2.TransportError):
                await http.get(f"http://127.0.0.1:{port}/")
    listener.close()
