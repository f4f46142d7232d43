"""Serving both listeners from one process, with signal-driven graceful shutdown that drains (bounded)."""

from __future__ import annotations

import contextlib
import gc
import logging
import signal
from collections.abc import Iterator

import anyio
import uvicorn
from starlette.types import ASGIApp

from broker.app import create_app
from broker.config import WardenConfig
from broker.edge.one_write import OneWriteHttpProtocol

log = logging.getLogger(__name__)


class _Listener(uvicorn.Server):
    """A uvicorn server that leaves signal handling to ``serve`` (two servers cannot both own SIGTERM)."""

    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


def _listener(app: ASGIApp, host: str, port: int, config: WardenConfig) -> _Listener:
    server = config.server
    return _Listener(uvicorn.Config(
        app, host=host, port=port, http=OneWriteHttpProtocol, lifespan="off", log_config=None, access_log=False,
        timeout_graceful_shutdown=int(server.shutdown_grace_seconds), server_header=False,
        proxy_headers=bool(server.forwarded_allow_ips), forwarded_allow_ips=list(server.forwarded_allow_ips),
        ssl_certfile=str(server.tls_cert_file) if server.tls_cert_file else None,
        ssl_keyfile=str(server.tls_key_file) if server.tls_key_file else None,
    ))


async def serve(config: WardenConfig) -> None:
    """Start Warden; return after SIGINT/SIGTERM once in-flight requests drained or the grace ran out."""
    async with create_app(config) as warden:
        gateway = _listener(warden.gateway, config.server.host, config.server.gateway_port, config)
        console = _listener(warden.console, config.server.console_bind, config.server.console_port, config)
        async with anyio.create_task_group() as group:
            group.start_soon(_stop_on_signal, [gateway, console])
            group.start_soon(_announce, [gateway, console], config)
            async with anyio.create_task_group() as listeners:
                # uvicorn exits the process (SystemExit) when a port cannot be bound: no half-started Warden.
                listeners.start_soon(gateway.serve)
                listeners.start_soon(console.serve)
            group.cancel_scope.cancel()
    log.info("Warden stopped")


async def _announce(servers: list[_Listener], config: WardenConfig) -> None:
    # uvicorn exposes only a ``started`` flag, no event to wait on.
    while not all(s.started for s in servers):  # noqa: ASYNC110
        await anyio.sleep(0.05)
    _settle_garbage_collector()
    log.info("Warden serving: gateway http://%s:%d  console http://%s:%d", config.server.host,
             config.server.gateway_port, config.server.console_bind, config.server.console_port)


def _settle_garbage_collector() -> None:
    """Once started: what start-up built (modules, schemas, the app) lives as long as the process, so it is moved
    out of the collector's sight, and the youngest generation is collected less often. Each request allocates
    many short-lived objects; with the defaults the collector's full passes over the start-up heap showed as
    latency spikes and cost ~10 % of tools/call throughput (bench/mcp_call.py)."""
    gc.freeze()
    gc.set_threshold(20_000, 50, 100)


async def _stop_on_signal(servers: list[_Listener]) -> None:
    with anyio.open_signal_receiver(signal.SIGINT, signal.SIGTERM) as signals:
        async for signum in signals:
            log.info("received %s: draining in-flight requests", signal.Signals(signum).name)
            for server in servers:
                server.should_exit = True
            return
