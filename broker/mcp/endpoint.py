"""The downstream ``/mcp`` endpoint: MCP Streamable HTTP served by the official SDK, authenticated by a
Warden API key with the ``mcp`` surface, with every tool call admitted by the quota kernel."""

from __future__ import annotations

import logging
from typing import Any

import mcp_types as types
from mcp.server.context import ServerRequestContext
from mcp.server.lowlevel import NotificationOptions, Server
from mcp.server.streamable_http_manager import StreamableHTTPASGIApp, StreamableHTTPSessionManager
from mcp.shared.exceptions import MCPError
from starlette.requests import Request
from starlette.types import Receive, Scope, Send

from broker.edge.credentials import presented_key
from broker.edge.errors import warden_error
from broker.kernel.errors import WardenError
from broker.kernel.identity.models import Principal
from broker.kernel.identity.service import Identity
from broker.kernel.quota.engine import QuotaEngine
from broker.kernel.quota.errors import LimiterUnavailable, QuotaExceeded
from broker.kernel.quota.models import QuotaRequest
from broker.kernel.quota.subjects import subjects_for
from broker.mcp.access import AccessPolicy
from broker.mcp.catalog import aggregate_tools, resolve
from broker.mcp.errors import BrokerError, UnknownTool
from broker.mcp.pool import UpstreamPool

log = logging.getLogger(__name__)
PRINCIPAL = "warden_principal"
FIRST_CONNECT_WAIT = 10.0


class McpBroker:
    """Handlers of the aggregate endpoint, over the upstream pool."""

    def __init__(self, pool: UpstreamPool, access: AccessPolicy, quotas: QuotaEngine, version: str) -> None:
        self._pool = pool
        self._access = access
        self._quotas = quotas
        self.server: Server[Any] = Server(
            "warden", version=version, on_list_tools=self.list_tools, on_call_tool=self.call_tool,
        )
        self.notification_options = NotificationOptions(tools_changed=True)

    async def list_tools(self, ctx: ServerRequestContext[Any], params: types.PaginatedRequestParams | None
                         ) -> types.ListToolsResult:
        principal = _principal(ctx)
        await self._pool.settle(FIRST_CONNECT_WAIT)
        tools = aggregate_tools(self._pool, lambda name: self._access.decide(principal, name).allowed)
        return types.ListToolsResult(tools=tools)

    async def call_tool(self, ctx: ServerRequestContext[Any], params: types.CallToolRequestParams
                        ) -> types.CallToolResult:
        principal = _principal(ctx)
        try:
            if not self._access.decide(principal, params.name).allowed:
                # The same answer as for a tool that does not exist: the catalog is exactly what may be called.
                raise UnknownTool(f"unknown tool {params.name!r}", tool=params.name)
            connection, tool = resolve(self._pool, params.name)
            await self._quotas.admit(QuotaRequest("mcp", subjects_for(
                principal, mcp_server=connection.name, tool=params.name)))
            return await connection.call_tool(tool, params.arguments, progress=ctx.session.report_progress)
        except BrokerError as exc:
            raise exc.to_mcp() from exc
        except (QuotaExceeded, LimiterUnavailable) as exc:
            error = exc.jsonrpc_error()
            raise MCPError(int(error["code"]), str(error["message"]), error["data"]) from exc  # type: ignore[call-overload]


def _principal(ctx: ServerRequestContext[Any]) -> Principal:
    request = ctx.request
    principal = request.scope.get("state", {}).get(PRINCIPAL) if isinstance(request, Request) else None
    if not isinstance(principal, Principal):
        raise MCPError(-32001, "request is not authenticated")
    return principal


class AuthenticatedMcpApp:
    """ASGI app for ``/mcp``: authenticate the key for the ``mcp`` surface, then hand over to the SDK."""

    def __init__(self, manager: StreamableHTTPSessionManager, identity: Identity) -> None:
        self._inner = StreamableHTTPASGIApp(manager)
        self._identity = identity

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        request = Request(scope, receive)
        try:
            principal = await self._identity.principal_for_key(presented_key(request), "mcp")
        except WardenError as exc:
            response = await warden_error(request, exc)
            await response(scope, receive, send)
            return
        scope.setdefault("state", {})[PRINCIPAL] = principal
        await self._inner(scope, receive, send)
