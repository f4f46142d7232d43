"""The MCP broker as the composition root assembles it: definitions, pool, SDK session manager, ASGI app."""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass

import anyio
from redis.asyncio import Redis

from broker.authserver.server import AuthorizationServerSettings, McpAuthorizationServer
from broker.config import McpServerConfig, VirtualServerConfig, WardenConfig
from broker.connections.links import LinkStore
from broker.connections.locks import CredentialLocks, RedisLock, SharedLock, StoreLock
from broker.connections.oauth import OAuthClient
from broker.connections.pending import PendingAuthorizations
from broker.connections.service import ClientRegistrations, Connections, ConnectionsSettings
from broker.kernel.audit.capture import BodyCapture
from broker.kernel.audit.ports import AuditSink
from broker.kernel.bus.ports import Broadcast, Message
from broker.kernel.clock import Clock
from broker.kernel.crypto import KeyHasher, SecretBox
from broker.kernel.errors import Conflict, InvalidInput
from broker.kernel.identity.service import Identity
from broker.kernel.quota.engine import QuotaEngine
from broker.kernel.store.ports import Database
from broker.mcp.access import AccessPolicy, AccessRuleStore
from broker.mcp.consent import LinkConsent
from broker.mcp.endpoint import AuthenticatedMcpApp, BrokerExtras, McpBroker, key_of_request
from broker.mcp.live_calls import LiveCalls
from broker.mcp.pool import UpstreamPool
from broker.mcp.result_cache import MemoryResultCache, RedisResultCache, ResultCache
from broker.mcp.servers import McpServerStore, ToolOptions, UpstreamDefinition, auth_settings
from broker.mcp.session_manager import SharedSessionManager
from broker.mcp.session_store import (
    EventLog,
    MemoryEventLog,
    MemorySessionDirectory,
    RedisEventLog,
    RedisSessionDirectory,
    SessionDirectory,
)
from broker.mcp.user_upstreams import UserUpstreams
from broker.mcp.virtual import VirtualServer, VirtualServers, VirtualServerStore, VirtualTool
from broker.outbound import Outbound, OutboundPolicy
from broker.reconcile import reconcile_mcp_access_rules
from broker.storage import StartupError

SERVERS_CHANNEL = "mcp.servers"
ACCESS_CHANNEL = "mcp.access"
VIRTUAL_CHANNEL = "mcp.virtual"
LINKS_CHANNEL = "mcp.links"


def definition_from_config(item: McpServerConfig) -> UpstreamDefinition:
    auth, secrets = auth_settings(item.auth.model_dump())
    return UpstreamDefinition(item.name, item.transport, item.command, item.args, dict(item.env), item.url,
                              item.timeout_seconds, item.enabled,
                              {tool: ToolOptions(o.cache_ttl_seconds, o.requires_user_credential)
                               for tool, o in item.tool_options.items()}, auth, secrets, label=item.label)


def virtual_from_config(item: VirtualServerConfig) -> VirtualServer:
    return VirtualServer(item.name, tuple(VirtualTool(t.tool, t.name, t.description) for t in item.tools),
                         item.description)


@dataclass(frozen=True, slots=True)
class McpRuntime:
    """Everything ``/mcp`` needs while Warden runs."""

    store: McpServerStore
    pool: UpstreamPool
    broker: McpBroker
    access: AccessPolicy
    access_rules: AccessRuleStore
    app: AuthenticatedMcpApp
    broadcast: Broadcast
    virtual_store: VirtualServerStore
    virtuals: VirtualServers
    connections: Connections
    user_upstreams: UserUpstreams
    outbound: Outbound
    authorization: McpAuthorizationServer  # Warden as the OAuth authorization server of its own /mcp
    live_calls: LiveCalls  # tool calls as they run, for the console's live timeline

    async def servers_changed(self) -> None:
        """Re-read the definitions on every instance and bring the connections in line."""
        await self.broadcast.publish(SERVERS_CHANNEL, {})

    async def access_changed(self) -> None:
        await self.broadcast.publish(ACCESS_CHANNEL, {})

    async def virtuals_changed(self) -> None:
        await self.broadcast.publish(VIRTUAL_CHANNEL, {})

    async def _reload_virtuals(self, message: Message | None = None) -> None:
        self.virtuals.replace([server for server, _ in await self.virtual_store.all()])
        if message is not None:
            await self.broker.catalog_changed()

    async def _resync(self, message: Message) -> None:
        self.pool.sync([d for d, _ in await self.store.all()])
        await self.broker.catalog_changed()  # removals; additions announce themselves once connected

    async def _reload_access(self, message: Message | None = None) -> None:
        self.access.replace(await self.access_rules.all())

    async def _links_changed(self, message: Message) -> None:
        self.user_upstreams.forget(str(message.get("server")), str(message.get("user")))
        await self.broker.catalog_changed()


@asynccontextmanager
async def open_mcp(db: Database, redis: Redis | None, box: SecretBox, hasher: KeyHasher, identity: Identity,
                   quotas: QuotaEngine, audit: AuditSink, broadcast: Broadcast, clock: Clock, config: WardenConfig,
                   version: str, pending: PendingAuthorizations, capture: BodyCapture | None = None
                   ) -> AsyncIterator[McpRuntime]:
    """Reconcile declared servers, connect to every upstream, serve ``/mcp``; stop it all on exit."""
    store = McpServerStore(db, clock, box)
    try:
        await store.reconcile_config([definition_from_config(item) for item in config.mcp_servers])
    except Conflict as exc:
        raise StartupError(f"mcp_servers: {exc.message}") from exc
    notify: list[McpBroker] = []

    async def catalog_changed() -> None:
        for broker in notify:
            await broker.catalog_changed()

    async def resource_updated(server: str, uri: str) -> None:
        for broker in notify:
            await broker.resource_updated(server, uri)

    outbound = Outbound(OutboundPolicy.from_entries(config.security.outbound_allow))
    pool = UpstreamPool(clock, on_tools_changed=catalog_changed, on_resource_updated=resource_updated,
                        outbound=outbound)
    access = AccessPolicy(default_allow=config.mcp.default_access == "allow")
    cache: ResultCache = (RedisResultCache(redis, config.redis.timeout_seconds) if redis is not None
                          else MemoryResultCache())
    async def link_changed(server: str, user_id: str) -> None:
        """A user's accounts on a server changed: every instance drops that user's sessions there."""
        await broadcast.publish(LINKS_CHANNEL, {"server": server, "user": user_id})

    connections = _connections(db, redis, box, clock, config, store, outbound, pending, link_changed)
    await connections.forget_removed_servers()
    authorization = McpAuthorizationServer(db, hasher, clock, identity, pending, AuthorizationServerSettings(
        config.server.console_url, config.server.gateway_url + "/mcp"))
    user_upstreams = UserUpstreams(clock, connections, outbound, catalog_changed)
    virtual_store, virtuals = VirtualServerStore(db, clock), VirtualServers()
    try:
        await virtual_store.reconcile_config([virtual_from_config(item) for item in config.mcp_virtual_servers])
    except Conflict as exc:
        raise StartupError(f"mcp_virtual_servers: {exc.message}") from exc
    except InvalidInput as exc:
        details = "; ".join(f"{f.field}: {f.message}" for f in exc.fields)
        raise StartupError(f"mcp_virtual_servers: {exc.message} ({details})") from exc
    if redis is not None:
        directory: SessionDirectory = RedisSessionDirectory(redis, config.redis.timeout_seconds)
        events: EventLog = RedisEventLog(redis, config.redis.timeout_seconds)
    else:
        directory, events = MemorySessionDirectory(), MemoryEventLog()
    live_calls = LiveCalls(broadcast)
    broker = McpBroker(pool, access, quotas, audit, version, BrokerExtras(
        cache=cache, credentials=connections, virtuals=virtuals, box=box, directory=directory, broadcast=broadcast,
        connections_url=connections.settings.connections_url, sessions_per_server=config.mcp.sessions_per_server,
        user_upstreams=user_upstreams, consent=LinkConsent(box, user_upstreams), capture=capture, live=live_calls))
    notify.append(broker)
    manager = SharedSessionManager(broker.server, directory, events, broadcast, key_of_request,
                                   only_a_response=broker.only_a_response)
    access_rules = AccessRuleStore(db, clock)
    await reconcile_mcp_access_rules(identity, access_rules, config.mcp.access_rules)
    runtime = McpRuntime(store, pool, broker, access, access_rules,
                         AuthenticatedMcpApp(manager, identity, pool, virtuals, authorization, audit,
                                             config.mcp.allowed_origins),
                         broadcast, virtual_store, virtuals, connections, user_upstreams, outbound, authorization,
                         live_calls)
    await runtime._reload_access()
    await runtime._reload_virtuals()
    broadcast.subscribe(VIRTUAL_CHANNEL, runtime._reload_virtuals)
    broadcast.subscribe(SERVERS_CHANNEL, runtime._resync)
    broadcast.subscribe(ACCESS_CHANNEL, runtime._reload_access)
    broadcast.subscribe(LINKS_CHANNEL, runtime._links_changed)
    definitions = [d for d, _ in await store.all()]
    async with anyio.create_task_group() as group, broker.running(), manager.run():
        group.start_soon(pool.run, definitions)
        group.start_soon(user_upstreams.run)
        try:
            yield runtime
        finally:
            group.cancel_scope.cancel()


def _connections(db: Database, redis: Redis | None, box: SecretBox, clock: Clock, config: WardenConfig,
                 servers: McpServerStore, outbound: Outbound, pending: PendingAuthorizations,
                 changed: Callable[[str, str], Awaitable[None]]) -> Connections:
    """Users' linked accounts, with the refresh locks in Redis when configured."""
    settings = ConnectionsSettings(config.server.console_url, config.mcp.refresh_ahead_seconds)
    oauth = OAuthClient(outbound, clock)
    shared: SharedLock = RedisLock(redis) if redis is not None else StoreLock(db, clock)
    return Connections(servers, LinkStore(db, box, clock), ClientRegistrations(db, box, clock, oauth, settings),
                       oauth, pending, CredentialLocks(shared), box, clock, settings, changed)
