"""The gateway's hot POST routes (the ``/v1`` completion surfaces), served straight from the ASGI call.

Starlette's middleware layers, router and endpoint wrapper cost about 25 µs a request on a warm core and
several times that on a cold one, on the path every first token waits on. Here the same endpoints run with
the same metrics and the same error mapping (``EXCEPTION_HANDLERS``), without those layers; every other
request goes to the Starlette app as before.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from broker.edge.errors import EXCEPTION_HANDLERS
from broker.edge.metrics import HttpMetrics, StatusNotingSend
from broker.edge.request_context import context_of

Endpoint = Callable[[Request], Awaitable[Response]]


class HotPaths:
    def __init__(self, app: ASGIApp, routes: Mapping[str, Endpoint], metrics: HttpMetrics, listener: str) -> None:
        self._app = app
        self._routes = routes
        self._metrics = metrics
        self._listener = listener
        self._latency = {path: metrics.latency.labels(listener, path) for path in routes}
        self._counters: dict[tuple[str, int], Any] = {}  # (path, status) -> its counter, looked up once

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        endpoint = self._routes.get(scope["path"]) if scope["type"] == "http" and scope["method"] == "POST" \
            else None
        if endpoint is None:
            await self._app(scope, receive, send)
            return
        started = time.perf_counter()
        noted = StatusNotingSend(send, [(b"x-request-id", context_of(scope).request_id.encode())])
        request = Request(scope, receive)
        try:
            try:
                response = await endpoint(request)
            except Exception as exc:  # mapped exactly as the Starlette app maps it
                handler = next(EXCEPTION_HANDLERS[kind] for kind in type(exc).__mro__ if kind in EXCEPTION_HANDLERS)
                response = await handler(request, exc)
            await response(scope, receive, noted)
        finally:
            path = scope["path"]
            counter = self._counters.get((path, noted.status))
            if counter is None:
                counter = self._counters[(path, noted.status)] = self._metrics.requests.labels(
                    self._listener, "POST", path, str(noted.status))
            counter.inc()
            self._latency[path].observe(time.perf_counter() - started)
