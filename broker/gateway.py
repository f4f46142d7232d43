"""The gateway listener (default port 3000): health, metrics and the client-facing surfaces."""

from __future__ import annotations

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.routing import Route
from starlette.types import ASGIApp

from ai_proxy.models import ModelList
from broker.edge.errors import EXCEPTION_HANDLERS
from broker.edge.health import HealthChecks
from broker.edge.metrics import HttpMetrics, MetricsMiddleware


def build_gateway(health: HealthChecks, metrics: HttpMetrics, models: ModelList, mcp: ASGIApp) -> Starlette:
    routes = [
        Route("/health/live", health.live, methods=["GET"]),
        Route("/health/ready", health.ready, methods=["GET"]),
        Route("/metrics", metrics.endpoint, methods=["GET"]),
        Route("/v1/models", models.endpoint, methods=["GET"]),
        Route("/mcp", mcp, methods=["GET", "POST", "DELETE"]),
        Route("/mcp/{server}", mcp, methods=["GET", "POST", "DELETE"]),
    ]
    return Starlette(
        routes=routes,
        middleware=[Middleware(MetricsMiddleware, metrics=metrics, listener="gateway")],
        exception_handlers=EXCEPTION_HANDLERS,
    )
