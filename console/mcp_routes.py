"""``/api/mcp/servers``: register upstream MCP servers and see their health."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from broker.connections.service import Connections
from broker.kernel.identity.service import require
from broker.mcp.pool import UpstreamPool
from broker.mcp.servers import McpServerStore, UpstreamDefinition, auth_settings, tool_options_from
from broker.outbound import Outbound
from console.endpoints import ApiRoute, Call
from console.schemas import CreateMcpServer, UpdateMcpServer


class McpServerRoutes:
    """Handlers for upstream servers; environments are write-only."""

    def __init__(self, store: McpServerStore, pool: UpstreamPool, changed: Callable[[], Awaitable[None]],
                 outbound: Outbound, connections: Connections) -> None:
        self._connections = connections
        self._outbound = outbound
        self._store = store
        self._pool = pool
        self._changed = changed

    def routes(self) -> list[ApiRoute]:
        return [
            ApiRoute("GET", "/api/mcp/servers", self.index, "Upstream MCP servers with their health"
                     " (mcp_servers:read)", "mcp"),
            ApiRoute("POST", "/api/mcp/servers", self.create, "Register an upstream (mcp_servers:manage)", "mcp",
                     body=CreateMcpServer, status=201),
            ApiRoute("GET", "/api/mcp/servers/{name}", self.get, "One upstream with its tools (mcp_servers:read)",
                     "mcp"),
            ApiRoute("PATCH", "/api/mcp/servers/{name}", self.update, "Change an upstream (mcp_servers:manage)",
                     "mcp", body=UpdateMcpServer),
            ApiRoute("DELETE", "/api/mcp/servers/{name}", self.delete, "Remove an upstream (mcp_servers:manage)",
                     "mcp", status=204),
        ]

    async def index(self, call: Call) -> dict[str, Any]:
        require(call.actor, "mcp_servers:read")
        return {"items": [self._view(d, source) for d, source in await self._store.all()]}

    async def create(self, call: Call) -> dict[str, Any]:
        require(call.actor, "mcp_servers:manage")
        body: CreateMcpServer = call.body
        await self._outbound.check_field(body.url, "url")
        auth, secrets = auth_settings(body.auth.model_dump())
        definition = await self._store.create(UpstreamDefinition(
            body.name, body.transport, body.command, tuple(body.args), dict(body.env), body.url,
            body.timeout_seconds, body.enabled, tool_options_from(
                {tool: o.model_dump() for tool, o in body.tool_options.items()}), auth, secrets,
            label=body.label.strip(), template=body.template,
        ))
        await self._changed()
        return self._view(definition, "api")

    async def get(self, call: Call) -> dict[str, Any]:
        require(call.actor, "mcp_servers:read")
        definition, source = await self._store.get(call.path("name"))
        connection = self._pool.get(definition.name)
        tools = [t.name for t in connection.tools] if connection else []
        return {**self._view(definition, source), "tools": tools}

    async def update(self, call: Call) -> dict[str, Any]:
        require(call.actor, "mcp_servers:manage")
        changes = call.body.model_dump(exclude_unset=True)
        if "label" in changes:
            changes["label"] = (changes["label"] or "").strip()
        if "args" in changes:
            changes["args"] = tuple(changes["args"])
        if "tool_options" in changes:
            changes["tool_options"] = tool_options_from(changes["tool_options"])
        await self._outbound.check_field(changes.get("url"), "url")
        if changes.get("auth") is not None:
            current, _ = await self._store.get(call.path("name"))
            changes["auth"], secrets = auth_settings(changes["auth"])
            changes["auth_secrets"] = {**current.auth_secrets, **secrets}
        else:
            changes.pop("auth", None)
        definition = await self._store.update(call.path("name"), changes)
        if {"url", "auth"} & set(changes):
            await self._connections.server_changed(definition.name, removed=False)
        await self._changed()
        return self._view(definition, "api")


    async def delete(self, call: Call) -> None:
        require(call.actor, "mcp_servers:manage")
        await self._store.delete(call.path("name"))
        await self._connections.server_changed(call.path("name"), removed=True)
        await self._changed()

    def _view(self, definition: UpstreamDefinition, source: str) -> dict[str, Any]:
        connection = self._pool.get(definition.name)
        return {
            "name": definition.name, "label": definition.label or definition.name, "template": definition.template,
            "transport": definition.transport, "command": definition.command,
            "args": list(definition.args), "env_keys": sorted(definition.env), "url": definition.url,
            "timeout_seconds": definition.timeout_seconds, "enabled": definition.enabled, "source": source,
            "tool_options": {tool: o.as_dict() for tool, o in sorted(definition.tool_options.items())},
            "auth": {**definition.auth.as_dict(), "secrets_set": sorted(definition.auth_secrets)},
            "health": connection.health if connection else "unknown",
            "breaker": connection.breaker.state if connection else "closed",
            "tool_count": len(connection.tools) if connection else 0,
            "last_error": connection.last_error if connection else None,
        }
