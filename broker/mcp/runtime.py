"""The MCP broker as the composition root assembles it: definitions, pool, SDK session manager, ASGI app."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio
from mcp.server.streamable_http_manager import StreamableHTTPSessionManager

from broker.config import McpServerConfig
from broker.kernel.bus.ports import Broadcast, Message
from broker.kernel.clock import Clock
from broker.kernel.crypto import SecretBox
from broker.kernel.errors import Conflict
from broker.kernel.identity.service import Identity
from broker.kernel.quota.engine import QuotaEngine
from broker.kernel.store.ports import Database
from broker.mcp.endpoint import AuthenticatedMcpApp, McpBroker
from broker.mcp.pool import UpstreamPool
from broker.mcp.servers import McpServerStore, UpstreamDefinition
from broker.storage import StartupError

SERVERS_CHANNEL = "mcp.servers"


def definition_from_config(item: McpServerConfig) -> UpstreamDefinition:
    return UpstreamDefinition(item.name, item.transport, item.command, item.args, dict(item.env), item.url,
                              item.timeout_seconds, item.enabled)


@dataclass(frozen=True, slots=True)
class McpRuntime:
    """Everything ``/mcp`` needs while Warden runs."""

    store: McpServerStore
    pool: UpstreamPool
    app: AuthenticatedMcpApp
    broadcast: Broadcast

    async def servers_changed(self) -> None:
        """Re-read the definitions on every instance and bring the connections in line."""
        await self.broadcast.publish(SERVERS_CHANNEL, {})

    async def _resync(self, message: Message) -> None:
        self.pool.sync([d for d, _ in await self.store.all()])


@asynccontextmanager
async def open_mcp(db: Database, box: SecretBox, identity: Identity, quotas: QuotaEngine, broadcast: Broadcast,
                   clock: Clock, declared: tuple[McpServerConfig, ...], version: str) -> AsyncIterator[McpRuntime]:
    """Reconcile declared servers, connect to every upstream, serve ``/mcp``; stop it all on exit."""
    store = McpServerStore(db, clock, box)
    try:
        await store.reconcile_config([definition_from_config(item) for item in declared])
    except Conflict as exc:
        raise StartupError(f"mcp_servers: {exc.message}") from exc
    pool = UpstreamPool(clock)
    broker = McpBroker(pool, quotas, version)
    manager = StreamableHTTPSessionManager(app=broker.server)
    runtime = McpRuntime(store, pool, AuthenticatedMcpApp(manager, identity), broadcast)
    broadcast.subscribe(SERVERS_CHANNEL, runtime._resync)
    definitions = [d for d, _ in await store.all()]
    async with anyio.create_task_group() as group, manager.run():
        group.start_soon(pool.run, definitions)
        try:
            yield runtime
        finally:
            group.cancel_scope.cancel()
