"""``/api/mcp/virtual-servers``: admin-defined tool sets served at ``/mcp/<name>``."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from broker.kernel.identity.service import require
from broker.mcp.pool import UpstreamPool
from broker.mcp.virtual import VirtualServer, VirtualServerStore, VirtualTool
from console.endpoints import ApiRoute, Call
from console.schemas import CreateVirtualServer, ReplaceVirtualServer, VirtualToolBody


class McpVirtualRoutes:
    def __init__(self, store: VirtualServerStore, pool: UpstreamPool, changed: Callable[[], Awaitable[None]]) -> None:
        self._store = store
        self._pool = pool
        self._changed = changed

    def routes(self) -> list[ApiRoute]:
        return [
            ApiRoute("GET", "/api/mcp/virtual-servers", self.index, "Virtual MCP servers (mcp_servers:read)", "mcp"),
            ApiRoute("POST", "/api/mcp/virtual-servers", self.create, "Define a virtual server: chosen upstream"
                     " tools, optionally renamed, at /mcp/<name> (mcp_servers:manage)", "mcp",
                     body=CreateVirtualServer, status=201),
            ApiRoute("GET", "/api/mcp/virtual-servers/{name}", self.get, "One virtual server (mcp_servers:read)",
                     "mcp"),
            ApiRoute("PUT", "/api/mcp/virtual-servers/{name}", self.replace, "Replace a virtual server's tools"
                     " (mcp_servers:manage)", "mcp", body=ReplaceVirtualServer),
            ApiRoute("DELETE", "/api/mcp/virtual-servers/{name}", self.delete, "Remove a virtual server"
                     " (mcp_servers:manage)", "mcp", status=204),
        ]

    async def index(self, call: Call) -> dict[str, Any]:
        require(call.actor, "mcp_servers:read")
        return {"items": [self._view(server, source) for server, source in await self._store.all()]}

    async def create(self, call: Call) -> dict[str, Any]:
        require(call.actor, "mcp_servers:manage")
        body: CreateVirtualServer = call.body
        server = await self._store.create(VirtualServer(body.name, _tools(body.tools), body.description))
        await self._changed()
        return self._view(server, "api")

    async def get(self, call: Call) -> dict[str, Any]:
        require(call.actor, "mcp_servers:read")
        server, source = await self._store.get(call.path("name"))
        return self._view(server, source)

    async def replace(self, call: Call) -> dict[str, Any]:
        require(call.actor, "mcp_servers:manage")
        body: ReplaceVirtualServer = call.body
        server = await self._store.replace(VirtualServer(call.path("name"), _tools(body.tools), body.description))
        await self._changed()
        return self._view(server, "api")

    async def delete(self, call: Call) -> None:
        require(call.actor, "mcp_servers:manage")
        await self._store.delete(call.path("name"))
        await self._changed()

    def _view(self, server: VirtualServer, source: str) -> dict[str, Any]:
        def available(tool: VirtualTool) -> bool:
            connection = self._pool.get(tool.server)
            return connection is not None and any(t.name == tool.upstream_tool for t in connection.tools)

        return {"name": server.name, "description": server.description, "source": source,
                "endpoint": f"/mcp/{server.name}",
                "tools": [{"tool": t.source, "name": t.name, "description": t.description, "shown_as": t.shown,
                           "available": available(t)} for t in server.tools]}


def _tools(bodies: list[VirtualToolBody]) -> tuple[VirtualTool, ...]:
    return tuple(VirtualTool(b.tool, b.name, b.description) for b in bodies)
