"""Liveness and readiness: JSON, no secrets, and never blocked longer than a second by a slow dependency."""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable

import anyio
from starlette.requests import Request
from starlette.responses import JSONResponse, Response

Check = Callable[[], Awaitable[None]]
READY_DEADLINE = 0.9  # seconds per dependency; checks run concurrently, so the endpoint answers within 1 s


class HealthChecks:
    """Named dependency checks run concurrently, each under the deadline."""

    def __init__(self, checks: dict[str, Check], started_at: float) -> None:
        self._checks = checks
        self._started_at = started_at

    async def live(self, request: Request) -> Response:
        return JSONResponse({"status": "ok", "uptime_seconds": round(time.time() - self._started_at, 1)})

    async def ready(self, request: Request) -> Response:
        results = await self.results()
        ready = all(r["status"] == "ok" for r in results.values())
        return JSONResponse({"status": "ready" if ready else "unavailable", "checks": results},
                            200 if ready else 503)

    async def results(self) -> dict[str, dict[str, object]]:
        """Each dependency's status (``ok``, ``timeout`` or ``error`` with the exception's type) and latency."""
        results: dict[str, dict[str, object]] = {}

        async def run(name: str, check: Check) -> None:
            started = time.perf_counter()
            try:
                with anyio.fail_after(READY_DEADLINE):
                    await check()
                status: dict[str, object] = {"status": "ok"}
            except TimeoutError:
                status = {"status": "timeout"}
            except Exception as exc:
                status = {"status": "error", "error": type(exc).__name__}
            status["latency_ms"] = round((time.perf_counter() - started) * 1000, 1)
            results[name] = status

        async with anyio.create_task_group() as group:
            for name, check in self._checks.items():
                group.start_soon(run, name, check)
        return dict(sorted(results.items()))
