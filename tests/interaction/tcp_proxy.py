"""A TCP proxy in front of a server (PostgreSQL, say) that a test can cut off and bring back: ``cut`` resets every
connection through it and refuses new ones until ``restore``, as when the server's host goes away."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from contextlib import contextmanager


class TcpProxy:
    def __init__(self, target: tuple[str, int]) -> None:
        self._target = target
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._down = False
        self.port = 0

    def cut(self) -> None:
        assert self._loop is not None
        asyncio.run_coroutine_threadsafe(self._cut(), self._loop).result(5)

    def restore(self) -> None:
        assert self._loop is not None
        self._loop.call_soon_threadsafe(setattr, self, "_down", False)

    def stop(self) -> None:
        assert self._loop is not None and self._stop is not None
        self._loop.call_soon_threadsafe(self._stop.set)

    async def _cut(self) -> None:
        self._down = True
        for writer in list(self._writers):
            writer.transport.abort()  # a reset, not a polite close: the peer finds out on its next read or write

    async def _serve(self, started: threading.Event) -> None:
        self._loop, self._stop = asyncio.get_running_loop(), asyncio.Event()
        server = await asyncio.start_server(self._connected, "127.0.0.1", 0)
        self.port = server.sockets[0].getsockname()[1]
        started.set()
        async with server:
            await self._stop.wait()
        await self._cut()

    async def _connected(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._down:
            writer.transport.abort()
            return
        try:
            upstream_reader, upstream_writer = await asyncio.open_connection(*self._target)
        except OSError:
            writer.transport.abort()
            return
        self._writers |= {writer, upstream_writer}
        try:
            await asyncio.gather(_pipe(reader, upstream_writer), _pipe(upstream_reader, writer))
        finally:
            self._writers -= {writer, upstream_writer}
            for each in (writer, upstream_writer):
                each.transport.abort()


async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
    try:
        while data := await reader.read(65536):
            writer.write(data)
            await writer.drain()
    except OSError:
        pass
    finally:
        writer.transport.abort()


@contextmanager
def tcp_proxy(target: tuple[str, int]) -> Iterator[TcpProxy]:
    proxy = TcpProxy(target)
    started = threading.Event()
    thread = threading.Thread(target=asyncio.run, args=(proxy._serve(started),), daemon=True)
    thread.start()
    assert started.wait(5)
    try:
        yield proxy
    finally:
        proxy.stop()
        thread.join(5)
