"""The provider hop's HTTP client against small servers that misbehave on purpose: keep-alive reuse, a pooled
connection the provider closed meanwhile, answers ended by closing, chunked streams read as they come, flow
control on a large answer, malformed answers, timeouts, TLS, and the outbound guard."""

from __future__ import annotations

import asyncio
import ssl
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest

from ai_proxy.provider_http import HIGH_WATER, ProviderHttp, UpstreamError
from broker.outbound import Outbound, OutboundPolicy, OutboundRefused
from tests.interaction.test_tls_and_shutdown import self_signed

LOOPBACK = Outbound(OutboundPolicy.from_entries(["127.0.0.1"]))
Handler = Callable[[asyncio.StreamReader, asyncio.StreamWriter], Awaitable[None]]


async def _request(reader: asyncio.StreamReader) -> bytes:
    head = await reader.readuntil(b"\r\n\r\n")
    length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                  if line.lower().startswith(b"content-length"))
    return head + await reader.readexactly(length)


@pytest.fixture
async def serve() -> AsyncIterator[Callable[..., Awaitable[str]]]:
    servers: list[asyncio.Server] = []
    writers: list[asyncio.StreamWriter] = []

    async def start(handler: Handler, tls: ssl.SSLContext | None = None) -> str:
        async def handled(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            writers.append(writer)
            try:
                await handler(reader, writer)
            except (ConnectionError, ssl.SSLError, asyncio.IncompleteReadError):
                pass  # the client went away, or refused the certificate
            finally:
                writer.close()

        server = await asyncio.start_server(handled, "127.0.0.1", 0, ssl=tls)
        servers.append(server)
        port = server.sockets[0].getsockname()[1]
        return f"{'https' if tls else 'http'}://127.0.0.1:{port}"

    yield start
    for server in servers:
        server.close()
        await server.wait_closed()
    for writer in writers:
        writer.close()
    await asyncio.sleep(0.05)


async def test_connections_are_kept_alive_and_a_stale_one_is_replaced(serve: Callable[..., Awaitable[str]]) -> None:
    connections: list[int] = []

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(len(connections))
        answered = 0
        while True:
            try:
                await _request(reader)
            except asyncio.IncompleteReadError:
                break
            writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 2\r\n\r\nok")
            answered += 1
            if answered == 2:  # then closes while the client holds it idle
                writer.close()
                break

    url = await serve(handler)
    client = ProviderHttp(LOOPBACK)
    for _ in range(3):
        response = await client.post(url + "/v1/x", b"{}", {"content-type": "application/json"}, 5)
        assert (response.status, await response.read()) == (200, b"ok")
        response.release()
        await asyncio.sleep(0.05)
    assert len(connections) == 2  # two answers on the first connection, the third on a new one
    await client.close()


async def test_an_answer_ended_by_closing_and_a_chunked_stream(serve: Callable[..., Awaitable[str]]) -> None:
    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        request = await _request(reader)
        if b"/eof" in request:
            writer.write(b"HTTP/1.1 200 OK\r\nconnection: close\r\n\r\nuntil the end")
            writer.close()
            return
        writer.write(b"HTTP/1.1 200 OK\r\ntransfer-encoding: chunked\r\ncontent-type: text/event-stream\r\n\r\n")
        for word in (b"data: one\n\n", b"data: two\n\n"):
            writer.write(b"%x\r\n%s\r\n" % (len(word), word))
            await writer.drain()
            await asyncio.sleep(0.05)
        writer.write(b"0\r\n\r\n")

    url = await serve(handler)
    client = ProviderHttp(LOOPBACK)
    ended = await client.post(url + "/eof", b"{}", {}, 5)
    assert await ended.read() == b"until the end"
    ended.release()
    streamed = await client.post(url + "/stream", b"{}", {}, 5)
    assert streamed.headers["content-type"] == "text/event-stream"
    pieces = [piece async for piece in streamed.chunks()]
    assert pieces == [b"data: one\n\n", b"data: two\n\n"]  # each as it arrived
    streamed.close()
    await client.close()


async def test_a_large_answer_is_paused_and_resumed(serve: Callable[..., Awaitable[str]]) -> None:
    size = 4 * HIGH_WATER

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: %d\r\n\r\n" % size + b"x" * size)
        await writer.drain()

    client = ProviderHttp(LOOPBACK)
    response = await client.post(await serve(handler), b"", {}, 10)
    await asyncio.sleep(0.2)  # the answer arrives while nobody reads
    assert len(await response.read()) == size
    response.release()
    await client.close()


async def test_failures_are_clear(serve: Callable[..., Awaitable[str]]) -> None:
    async def garbage(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _request(reader)
        writer.write(b"NOT HTTP AT ALL\r\n\r\n")

    async def silent(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _request(reader)
        await reader.read()  # answers nothing; ends when the client gives up and closes

    async def breaks(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 100\r\n\r\nhalf")
        await writer.drain()
        writer.transport.abort()

    client = ProviderHttp(LOOPBACK)
    with pytest.raises(UpstreamError):
        await client.post(await serve(garbage), b"", {}, 5)
    with pytest.raises(TimeoutError):
        await client.post(await serve(silent), b"", {}, 0.3)
    broken = await client.post(await serve(breaks), b"", {}, 5)
    with pytest.raises(UpstreamError):
        await broken.read()
    broken.close()
    with pytest.raises(UpstreamError):
        await client.post("http://127.0.0.1:9/v1", b"", {}, 5)  # nothing listens
    with pytest.raises(OutboundRefused):
        await ProviderHttp(Outbound()).post("http://127.0.0.1:9/v1", b"", {}, 5)  # loopback not allowed
    with pytest.raises(OutboundRefused):
        await ProviderHttp(Outbound()).post("http://localhost:9/v1", b"", {}, 5)  # nor by name
    with pytest.raises(ValueError):
        await client.post("http://127.0.0.1:9/v1", b"", {"x-key": "a\r\nx-injected: 1"}, 5)
    await client.close()


async def test_tls_is_verified(serve: Callable[..., Awaitable[str]], tmp_path: Path) -> None:
    cert, key = self_signed(tmp_path)
    server_tls = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    server_tls.load_cert_chain(cert, key)

    async def handler(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        await _request(reader)
        writer.write(b"HTTP/1.1 200 OK\r\ncontent-length: 6\r\n\r\nsecret")
        await writer.drain()

    url = await serve(handler, server_tls)
    trusting = ProviderHttp(LOOPBACK, ssl_context=ssl.create_default_context(cafile=str(cert)))
    response = await trusting.post(url, b"", {}, 5)
    assert await response.read() == b"secret"
    response.release()
    with pytest.raises(UpstreamError):  # the system's trust store does not know this certificate
        await ProviderHttp(LOOPBACK).post(url, b"", {}, 5)
    await trusting.close()
