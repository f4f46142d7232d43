"""Prometheus metrics: one registry per Warden (no global state), an ASGI middleware counting requests."""

from __future__ import annotations

import hmac
import time
from collections.abc import Callable, Iterator, Mapping

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.exposition import CONTENT_TYPE_LATEST
from prometheus_client.registry import Collector
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from broker.kernel.breaker import BreakerState


class HttpMetrics:
    """Request counters and latency histograms, labelled by listener and route template.

    ``GET /metrics`` exists only when a scrape token is configured (404 otherwise, as for any unknown path) and
    answers only with that token as a bearer token: the metrics name users' models, providers and servers."""

    def __init__(self, registry: CollectorRegistry, scrape_token: str | None = None) -> None:
        self.registry = registry
        self._scrape_token = scrape_token.encode() if scrape_token else None
        self.requests = Counter(
            "warden_http_requests_total", "HTTP requests served", ["listener", "method", "route", "status"],
            registry=registry,
        )
        self.latency = Histogram(
            "warden_http_request_duration_seconds", "Time to the last response byte",
            ["listener", "route"], registry=registry,
            buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
        )

    async def endpoint(self, request: Request) -> Response:
        if self._scrape_token is None:
            raise HTTPException(404, "Not Found")
        scheme, _, presented = request.headers.get("authorization", "").partition(" ")
        if scheme.lower() != "bearer" or not hmac.compare_digest(presented.strip().encode(), self._scrape_token):
            raise HTTPException(401, "/metrics needs the scrape token as 'Authorization: Bearer <token>'",
                                headers={"WWW-Authenticate": 'Bearer realm="warden-metrics"'})
        return Response(generate_latest(self.registry), media_type=CONTENT_TYPE_LATEST)


class StatusNotingSend:
    """An ASGI ``send`` that passes every message on and notes the response's status (500 until one starts),
    adding ``extra_headers`` to the response's (one wrapper where a route needs both)."""

    def __init__(self, send: Send, extra_headers: list[tuple[bytes, bytes]] | None = None) -> None:
        self._send = send
        self._extra_headers = extra_headers
        self.status = 500

    async def __call__(self, message: Message) -> None:
        if message["type"] == "http.response.start":
            self.status = message["status"]
            if self._extra_headers:
                message["headers"] = [*message.get("headers", ()), *self._extra_headers]
        await self._send(message)


class MetricsMiddleware:
    """Counts every HTTP request; labels by route template so ids never explode cardinality."""

    def __init__(self, app: ASGIApp, metrics: HttpMetrics, listener: str) -> None:
        self.app = app
        self.metrics = metrics
        self.listener = listener

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = time.perf_counter()
        noted = StatusNotingSend(send)
        try:
            await self.app(scope, receive, noted)
        finally:
            route = _route_template(scope)
            self.metrics.requests.labels(self.listener, scope["method"], route, str(noted.status)).inc()
            self.metrics.latency.labels(self.listener, route).observe(time.perf_counter() - started)


def _route_template(scope: Scope) -> str:
    matched = scope.get("route")  # set by Starlette's router on a match
    if matched is not None:
        return str(getattr(matched, "path", "other"))
    app = scope.get("app")
    for route in getattr(getattr(app, "router", None), "routes", ()):
        match, _ = route.matches(scope)
        if match == Match.FULL:
            return str(getattr(route, "path", "other"))
    return "unmatched"


_STATE_VALUES: dict[BreakerState, float] = {"closed": 0.0, "half_open": 1.0, "open": 2.0}


class CircuitStates(Collector):
    """A gauge of circuit breakers on this instance, one series per subject: 0 closed, 1 half-open (a trial call
    allowed), 2 open. ``warden_ai_provider_circuit_state{provider}``, ``warden_mcp_upstream_circuit_state{server}``."""

    def __init__(self, name: str, label: str, states: Callable[[], Mapping[str, BreakerState]]) -> None:
        self._name = name
        self._label = label
        self._states = states

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily(self._name, f"Circuit breaker per {self._label} on this instance: 0 closed,"
                                   " 1 half-open, 2 open", labels=[self._label])
        for subject, state in sorted(self._states().items()):
            family.add_metric([subject], _STATE_VALUES[state])
        yield family


class HealthStates(Collector):
    """``warden_mcp_upstream_health{server, state}``: 1 for each upstream's current health, 0 for the others."""

    def __init__(self, states: Callable[[], Mapping[str, str]], known: tuple[str, ...]) -> None:
        self._states = states
        self._known = known

    def collect(self) -> Iterator[GaugeMetricFamily]:
        family = GaugeMetricFamily("warden_mcp_upstream_health", "Health of each upstream MCP server on this"
                                   " instance (1 for its current state)", labels=["server", "state"])
        for server, current in sorted(self._states().items()):
            for state in self._known:
                family.add_metric([server, state], 1.0 if state == current else 0.0)
        yield family
