"""The HTTP/1.1 client of the provider hop: pooled keep-alive connections, one write per request, responses
parsed by httptools and read as they arrive.

Why not aiohttp here: measured on this machine at the benchmark's pace (a request every ~50 ms, one core),
aiohttp spends about 0.45 ms between ``post()`` and the request leaving the socket, against 0.05 ms for a
plain write; on a stream that is most of the time Warden adds before the first token. This client does only
what the provider hop needs: POST with a complete body, status and headers, the body as a stream or whole,
connections kept alive per origin, TLS with the system's trust store. No redirects (provider APIs do not
redirect; a 3xx is the caller's to report), no cookies, no proxies, no compression (``identity`` is asked).

Every connection goes through the outbound guard: an address literal is checked as it is, a name is resolved
by the guarded resolver (every address checked) and the connection made to exactly those addresses.
"""

from __future__ import annotations

import asyncio
import collections
import socket
import ssl
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import urlsplit

import httptools

from broker.outbound import GuardedResolver, Outbound, OutboundRefused

HIGH_WATER = 1 << 20  # bytes buffered from a provider before its connection is paused
IDLE_PER_ORIGIN = 100  # idle keep-alive connections kept for each provider origin
KNOWN_URLS = 1000  # parsed provider URLs remembered (a model's URL repeats; Gemini's and Bedrock's name the model)


class UpstreamError(Exception):
    """The provider could not be reached, or its answer broke off or was malformed."""


Origin = tuple[str, str, int]  # scheme, host, port


class ProviderResponse:
    """A provider's answer: status and headers at once, the body as it arrives. ``release()`` (or ``close()``,
    the same) ends the exchange: the connection goes back for the next request when the body was read to its
    end, and is closed otherwise (the provider stops sending)."""

    def __init__(self, connection: _Connection, client: ProviderHttp, origin: Origin, deadline: float,
                 loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._connection = connection
        self._client = client
        self._origin = origin
        self._deadline = deadline
        self.status = 0
        self.headers: dict[str, str] = {}
        self._chunks: collections.deque[bytes] = collections.deque()
        self._buffered = 0
        self._complete = False
        self._error: Exception | None = None
        self._waiter: asyncio.Future[None] | None = None
        self._headers_seen: asyncio.Future[None] = loop.create_future()
        self._settled = False

    # Fed by the connection

    def _headers(self, status: int, headers: dict[str, str]) -> None:
        self.status, self.headers = status, headers
        if not self._headers_seen.done():
            self._headers_seen.set_result(None)

    def _feed(self, data: bytes) -> None:
        self._chunks.append(data)
        self._buffered += len(data)
        if self._buffered > HIGH_WATER:
            self._connection.pause()
        self._wake()

    def _finish(self) -> None:
        self._complete = True
        self._wake()

    def _fail(self, error: Exception) -> None:
        if self._complete:
            return
        self._error = error
        if not self._headers_seen.done():
            self._headers_seen.set_exception(error)
        self._wake()

    def _wake(self) -> None:
        if self._waiter is not None and not self._waiter.done():
            self._waiter.set_result(None)

    # Read by the caller

    async def _started(self) -> None:
        await self._until(self._headers_seen)

    async def _until(self, waiter: asyncio.Future[None]) -> None:
        """Wait for ``waiter``, at most until the deadline (a plain timer: cheaper than asyncio.timeout, which
        looks the loop up, a system call here, on every wait)."""
        timer = self._loop.call_at(self._deadline, _expire, waiter)
        try:
            await waiter
        finally:
            timer.cancel()

    async def chunks(self) -> AsyncIterator[bytes]:
        """The body, in whatever pieces arrive (each as soon as it arrives)."""
        while True:
            if self._chunks:
                data = b"".join(self._chunks) if len(self._chunks) > 1 else self._chunks[0]
                self._chunks.clear()
                self._buffered = 0
                self._connection.resume()
                yield data
            elif self._error is not None:
                raise self._error
            elif self._complete:
                return
            else:
                self._waiter = self._loop.create_future()
                await self._until(self._waiter)

    async def read(self) -> bytes:
        return b"".join([chunk async for chunk in self.chunks()])

    def release(self) -> None:
        """Done with this answer: the connection is kept for reuse if the answer was read to its end, else
        closed."""
        if self._settled:
            return
        self._settled = True
        if self._complete and not self._chunks and self._connection.reusable():
            self._client._idle(self._origin, self._connection)
        else:
            self._connection.close()
        self._client._slots.release()

    close = release


def _expire(waiter: asyncio.Future[None]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


class _Connection(asyncio.Protocol):
    """One keep-alive connection to a provider, answering one request at a time."""

    def __init__(self) -> None:
        self._transport: asyncio.Transport | None = None
        self._parser = httptools.HttpResponseParser(self)
        self._response: ProviderResponse | None = None
        self._header_list: list[tuple[bytes, bytes]] = []
        self._keep_alive = False
        self._until_eof = False  # an answer with neither a length nor chunks ends when the connection does
        self._paused = False
        self.closed = False
        self.used = False  # answered a request before (a stale keep-alive connection may be closed under us)
        self.answered_bytes = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self._transport = transport  # type: ignore[assignment] # uvloop's transports are not asyncio's classes
        sock = transport.get_extra_info("socket")
        if sock is not None and sock.family in (socket.AF_INET, socket.AF_INET6):
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # each request is one write: send it now

    def send(self, response: ProviderResponse, request: bytes) -> None:
        assert self._transport is not None
        self._response = response
        self._parser = httptools.HttpResponseParser(self)
        self._keep_alive = False
        self._until_eof = False
        self.answered_bytes = False
        self._transport.write(request)

    def data_received(self, data: bytes) -> None:
        self.answered_bytes = True
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._abort(UpstreamError(f"the provider's answer is not valid HTTP: {exc}"))

    def eof_received(self) -> bool:
        return False  # the transport closes; connection_lost follows

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self._response is not None and self._until_eof and exc is None:
            self._response._finish()
        elif self._response is not None:
            self._response._fail(UpstreamError("the provider closed the connection" + (f": {exc}" if exc else "")))

    # httptools callbacks

    def on_header(self, name: bytes, value: bytes) -> None:
        self._header_list.append((name, value))

    def on_headers_complete(self) -> None:
        headers = {name.decode("latin-1").lower(): value.decode("latin-1") for name, value in self._header_list}
        self._header_list = []
        self._until_eof = "content-length" not in headers and "chunked" not in headers.get("transfer-encoding", "")
        if self._response is not None:
            self._response._headers(self._parser.get_status_code(), headers)

    def on_body(self, body: bytes) -> None:
        if self._response is not None:
            self._response._feed(body)

    def on_message_complete(self) -> None:
        self._keep_alive = self._parser.should_keep_alive()
        if self._response is not None:
            self._response._finish()

    # Flow and lifetime

    def pause(self) -> None:
        if not self._paused and self._transport is not None:
            self._paused = True
            self._transport.pause_reading()

    def resume(self) -> None:
        if self._paused and self._transport is not None and not self.closed:
            self._paused = False
            self._transport.resume_reading()

    def reusable(self) -> bool:
        return self._keep_alive and not self.closed and not self._paused

    def idle(self) -> None:
        self._response = None
        self.used = True

    def _abort(self, error: Exception) -> None:
        if self._response is not None:
            self._response._fail(error)
        self.close()

    def close(self) -> None:
        self.closed = True
        if self._transport is not None:
            self._transport.close()


class ProviderHttp:
    """Keep-alive connections to providers, at most ``limit`` in use at once."""

    def __init__(self, outbound: Outbound, connect_timeout: float = 10.0, limit: int = 1000,
                 ssl_context: ssl.SSLContext | None = None) -> None:
        self._outbound = outbound
        self._resolver = GuardedResolver(outbound.policy, outbound.resolver)
        self._connect_timeout = connect_timeout
        self._ssl = ssl_context or ssl.create_default_context()
        self._pool: dict[Origin, list[_Connection]] = {}
        self._targets: dict[str, tuple[Origin, str, str]] = {}
        self._loop: asyncio.AbstractEventLoop | None = None  # the serving loop, learnt on first use
        self._slots = asyncio.Semaphore(limit)

    def _bind(self) -> asyncio.AbstractEventLoop:
        self._loop = asyncio.get_running_loop()
        return self._loop

    async def post(self, url: str, body: bytes, headers: dict[str, str], within: float) -> ProviderResponse:
        """Send ``body`` to ``url``; returns once the provider's status and headers arrived (raises
        ``TimeoutError`` past ``within`` seconds, which also bounds reading the body; ``UpstreamError`` when
        the provider cannot be reached; ``OutboundRefused`` for an internal address)."""
        loop = self._loop or self._bind()
        deadline = loop.time() + within
        origin, target, netloc = self._targets.get(url) or self._target(url)
        request = _request_bytes(target, netloc, headers, body)
        await self._slots.acquire()
        try:
            for _ in range(2):  # a second time only when a reused connection turned out closed under us
                connection = self._pooled(origin) or await self._connect(origin, deadline)
                response = ProviderResponse(connection, self, origin, deadline, loop)
                connection.send(response, request)
                try:
                    await response._started()
                except UpstreamError:
                    connection.close()
                    if connection.used and not connection.answered_bytes:
                        continue
                    raise
                except BaseException:  # a timeout, or the caller cancelled: the exchange is abandoned
                    connection.close()
                    raise
                return response
            raise UpstreamError("the provider closed the connection")  # pragma: no cover - loop returns or raises
        except BaseException:
            self._slots.release()
            raise

    def _target(self, url: str) -> tuple[Origin, str, str]:
        """Where a URL goes: its origin, the request target and the Host header (remembered: providers' URLs
        repeat)."""
        parts = urlsplit(url)
        scheme, host = parts.scheme, parts.hostname or ""
        target = ((scheme, host, parts.port or (443 if scheme == "https" else 80)),
                  (parts.path or "/") + (f"?{parts.query}" if parts.query else ""), parts.netloc)
        if len(self._targets) >= KNOWN_URLS:
            self._targets.clear()
        self._targets[url] = target
        return target

    def _pooled(self, origin: Origin) -> _Connection | None:
        idle = self._pool.get(origin)
        while idle:
            connection = idle.pop()
            if not connection.closed:
                return connection
        return None

    def _idle(self, origin: Origin, connection: _Connection) -> None:
        connection.idle()
        idle = self._pool.setdefault(origin, [])
        if len(idle) < IDLE_PER_ORIGIN:
            idle.append(connection)
        else:
            connection.close()

    async def _connect(self, origin: Origin, deadline: float) -> _Connection:
        scheme, host, port = origin
        self._outbound.policy.check_literal(f"{scheme}://{host}")
        try:
            socket.inet_pton(socket.AF_INET6 if ":" in host else socket.AF_INET, host)
            addresses = [host]
        except OSError:
            try:
                addresses = [r["host"] for r in await self._resolver.resolve(host, port, socket.AF_UNSPEC)]
            except OutboundRefused:
                raise
            except OSError as exc:
                raise UpstreamError(f"could not resolve {host}: {exc}") from exc
        loop = asyncio.get_running_loop()
        failure: Exception | None = None
        for address in addresses:
            try:
                async with asyncio.timeout_at(min(deadline, loop.time() + self._connect_timeout)):
                    _, connection = await loop.create_connection(
                        _Connection, address, port, ssl=self._ssl if scheme == "https" else None,
                        server_hostname=host if scheme == "https" else None)
                return connection
            except (OSError, ssl.SSLError) as exc:
                failure = exc
        raise UpstreamError(f"could not connect to {host}:{port}: {failure}")

    async def close(self) -> None:
        for idle in self._pool.values():
            for connection in idle:
                connection.close()
        self._pool.clear()


def _request_bytes(target: str, host: str, headers: dict[str, Any], body: bytes) -> bytes:
    lines = [f"POST {target} HTTP/1.1", f"host: {host}", f"content-length: {len(body)}", "accept-encoding: identity"]
    for name, value in headers.items():
        text = f"{name}: {value}"
        if "\r" in text or "\n" in text:
            raise ValueError(f"header {name!r} contains a line break")
        lines.append(text)
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
