"""The gateway's hot POST routes served beside Starlette: the same answers, metrics and error mapping, and
everything else (other methods, other paths, lifespan) still Starlette's."""

from __future__ import annotations

from prometheus_client import CollectorRegistry
from starlette.applications import Starlette
from starlette.middleware import Middleware
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from broker.edge.errors import EXCEPTION_HANDLERS
from broker.edge.hot_paths import HotPaths
from broker.edge.metrics import HttpMetrics, MetricsMiddleware
from broker.kernel.errors import PermissionDenied
from broker.kernel.store.errors import StoreUnavailable
from tests.conftest import asgi_client


async def echo(request: Request) -> Response:
    return JSONResponse({"got": (await request.json())["x"]})


async def forbidden(request: Request) -> Response:
    raise PermissionDenied("not you")


async def database_down(request: Request) -> Response:
    raise StoreUnavailable("connection refused")


async def broken(request: Request) -> Response:
    raise RuntimeError("a bug, with a secret in it")


async def test_hot_routes_answer_count_and_map_errors_as_starlette_would() -> None:
    metrics = HttpMetrics(CollectorRegistry())
    hot = {"/v1/echo": echo, "/v1/forbidden": forbidden, "/v1/down": database_down, "/v1/broken": broken}
    app = Starlette(routes=[Route(path, endpoint, methods=["POST"]) for path, endpoint in hot.items()],
                    middleware=[Middleware(MetricsMiddleware, metrics=metrics, listener="gateway")],
                    exception_handlers=EXCEPTION_HANDLERS)
    async with asgi_client(HotPaths(app, hot, metrics, "gateway"), "http://gateway.test") as client:
        assert (await client.post("/v1/echo", json={"x": 1})).json() == {"got": 1}
        refused = await client.post("/v1/forbidden", json={})
        assert refused.status_code == 403 and refused.json()["error"]["code"] == "permission_denied"
        down = await client.post("/v1/down", json={})
        assert down.status_code == 503 and down.headers["retry-after"] == "1"
        bug = await client.post("/v1/broken", json={})
        assert bug.status_code == 500 and "secret" not in bug.text
        assert (await client.get("/v1/echo")).status_code == 405  # other methods: Starlette's router
        assert (await client.post("/v1/elsewhere")).status_code == 404
    counted = metrics.registry.get_sample_value("warden_http_requests_total", {
        "listener": "gateway", "method": "POST", "route": "/v1/echo", "status": "200"})
    assert counted == 1
    assert metrics.registry.get_sample_value("warden_http_requests_total", {
        "listener": "gateway", "method": "POST", "route": "/v1/broken", "status": "500"}) == 1
