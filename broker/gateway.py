"""The gateway listener (default port 3000): health, metrics and the client-facing surfaces."""

from __future__ import annotations

from typing import Any

from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route
from starlette.types import ASGIApp

from ai_proxy.chat import ChatCompletions
from ai_proxy.models import ModelList
from broker.edge.errors import EXCEPTION_HANDLERS
from broker.edge.health import HealthChecks
from broker.edge.hot_paths import HotPaths
from broker.edge.metrics import HttpMetrics, MetricsMiddleware
from broker.edge.request_context import RequestContexts


def build_gateway(health: HealthChecks, metrics: HttpMetrics, models: ModelList, chat: ChatCompletions,
                  mcp: ASGIApp, resource_metadata: dict[str, Any]) -> ASGIApp:
    async def protected_resource(request: Request) -> Response:
        """RFC 9728: where MCP clients learn which authorization server issues tokens for /mcp."""
        return JSONResponse(resource_metadata)

    completions = {"/v1/chat/completions": chat.chat_completions, "/v1/messages": chat.messages,
                   "/v1/messages/count_tokens": chat.count_tokens, "/v1/embeddings": chat.embeddings,
                   "/v1/responses": chat.responses}
    routes = [
        Route("/health/live", health.live, methods=["GET"]),
        Route("/health/ready", health.ready, methods=["GET"]),
        Route("/metrics", metrics.endpoint, methods=["GET"]),
        Route("/v1/models", models.endpoint, methods=["GET"]),
        *(Route(path, endpoint, methods=["POST"]) for path, endpoint in completions.items()),  # for the router's
        # answers to other methods (405); POSTs are served by HotPaths
        Route("/.well-known/oauth-protected-resource", protected_resource, methods=["GET"]),
        Route("/.well-known/oauth-protected-resource/mcp", protected_resource, methods=["GET"]),
        Route("/mcp", mcp, methods=["GET", "POST", "DELETE"]),
        Route("/mcp/{server}", mcp, methods=["GET", "POST", "DELETE"]),
    ]
    app = Starlette(
        routes=routes,
        middleware=[Middleware(MetricsMiddleware, metrics=metrics, listener="gateway")],
        exception_handlers=EXCEPTION_HANDLERS,
    )
    # The hot paths work out the request context (and echo x-request-id) themselves, with one send wrapper.
    return HotPaths(RequestContexts(app), completions, metrics, "gateway")
