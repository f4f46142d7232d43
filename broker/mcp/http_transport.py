"""The HTTP hop to Streamable HTTP upstreams: aiohttp under the SDK's httpx2 client.

The SDK's client speaks through an ``httpx2.AsyncClient``; this transport lets it send every request with
aiohttp, which costs markedly less per request on the hot path (see bench/mcp_call.py), while the SDK keeps
all of the protocol: headers, sessions, SSE parsing, resumption. aiohttp's failures are mapped to the
httpx2 exceptions the SDK and the broker already handle.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from typing import Protocol

import aiohttp
import httpx2

from broker.outbound import Outbound

CONNECTIONS = 100  # per upstream: concurrent calls beyond this wait for a connection
_SET_BY_AIOHTTP = {b"host", b"content-length", b"transfer-encoding", b"connection"}


class RequestObserver(Protocol):
    def observe(self, method: str, headers: list[tuple[str, str]]) -> None: ...

    def use(self, connections: aiohttp.ClientSession | None) -> None: ...


class AiohttpTransport(httpx2.AsyncBaseTransport):
    """One aiohttp session (a keep-alive connection pool) per upstream connection; ``observer`` (the direct
    lane) sees each request's method and headers and shares the pool."""

    def __init__(self, outbound: Outbound, observer: RequestObserver | None = None) -> None:
        self._session: aiohttp.ClientSession | None = None
        self._outbound = outbound
        self._observer = observer

    async def handle_async_request(self, request: httpx2.Request) -> httpx2.Response:
        if self._session is None:
            self._session = self._outbound.session(limit=CONNECTIONS, timeout=None, auto_decompress=False)
            if self._observer is not None:
                self._observer.use(self._session)
        limits = request.extensions.get("timeout", {})
        timeout = aiohttp.ClientTimeout(total=None, sock_connect=limits.get("connect"),
                                        sock_read=limits.get("read"))
        body = await request.aread()
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in request.headers.raw
                   if k.lower() not in _SET_BY_AIOHTTP]
        if self._observer is not None:
            self._observer.observe(request.method, headers)
        with as_httpx_errors(request):
            response = await self._session.request(
                request.method, str(request.url), headers=headers, data=body or None, timeout=timeout,
                allow_redirects=False, skip_auto_headers=("User-Agent", "Accept-Encoding"))
        raw_headers = [(k, v) for k, v in response.raw_headers]
        return httpx2.Response(response.status, headers=raw_headers, stream=_Body(response, request),
                               request=request)

    async def aclose(self) -> None:
        if self._observer is not None:
            self._observer.use(None)
        if self._session is not None:
            await self._session.close()
            self._session = None


class _Body(httpx2.AsyncByteStream):
    def __init__(self, response: aiohttp.ClientResponse, request: httpx2.Request) -> None:
        self._response = response
        self._request = request

    async def __aiter__(self) -> AsyncIterator[bytes]:
        with as_httpx_errors(self._request):
            async for chunk in self._response.content.iter_any():
                yield chunk

    async def aclose(self) -> None:
        self._response.release()


@contextmanager
def as_httpx_errors(request: httpx2.Request | None = None) -> Iterator[None]:
    """aiohttp's failures as the httpx2 errors the SDK raises (and the broker maps to its own)."""
    try:
        yield
    except (TimeoutError, aiohttp.ServerTimeoutError) as exc:
        raise httpx2.ReadTimeout(str(exc) or "timed out", request=request) from exc
    except aiohttp.ClientConnectorError as exc:
        raise httpx2.ConnectError(str(exc), request=request) from exc
    except (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError) as exc:
        raise httpx2.RemoteProtocolError(str(exc), request=request) from exc
    except aiohttp.ClientError as exc:
        raise httpx2.TransportError(str(exc), request=request) from exc
